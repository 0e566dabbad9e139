package identity

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// File modes. Private keys and the deployment secret are readable by the
// owner only; public material is world-readable.
const (
	dirMode     fs.FileMode = 0o700
	privateMode fs.FileMode = 0o600
	publicMode  fs.FileMode = 0o644
)

// maxKeyFileSize bounds how much of a key file is read: every file this
// package writes is far smaller, and a huge file there is a mistake.
const maxKeyFileSize = 4096

// replaceFile atomically writes data to dir/name, replacing any existing
// file: after a crash the file holds either the old or the new content.
func replaceFile(dir, name string, data []byte, perm fs.FileMode) error {
	return writeAtomic(dir, name, data, perm, false)
}

// createFile atomically writes data to dir/name only if no such file
// exists; otherwise it returns an error wrapping fs.ErrExist and leaves the
// existing file untouched. The exclusivity comes from link(2), which fails
// if the target exists, so two concurrent runs cannot both succeed.
func createFile(dir, name string, data []byte, perm fs.FileMode) error {
	return writeAtomic(dir, name, data, perm, true)
}

func writeAtomic(dir, name string, data []byte, perm fs.FileMode, exclusive bool) (err error) {
	final := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if exclusive {
		err = linkNoClobber(tmpName, final)
	} else {
		err = os.Rename(tmpName, final)
	}
	if err != nil {
		return err
	}
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	return nil
}

// linkNoClobber makes tmp appear at final unless final exists, then removes
// the temporary name.
func linkNoClobber(tmp, final string) error {
	err := os.Link(tmp, final)
	if errors.Is(err, fs.ErrExist) {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", final, fs.ErrExist)
	}
	if err != nil {
		// Some file systems (FAT on a USB stick) have no hard links. Fall
		// back to check-then-rename: exclusive against everything but a
		// concurrent run on the same directory, which the caller's own
		// existence check already makes unlikely.
		if _, statErr := os.Lstat(final); statErr == nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("write %s: %w", final, fs.ErrExist)
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("write %s: %w", final, err)
		}
		return nil
	}
	// The key is in place; a leftover temporary name would only be a
	// second link to the same 0600 file, so a failure here is not fatal.
	_ = os.Remove(tmp)
	return nil
}

// syncDir makes a rename or link in dir durable. Windows cannot open a
// directory for syncing, and NTFS journals the rename itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// readFile reads a key file of at most maxKeyFileSize bytes. A missing file
// returns an error wrapping fs.ErrNotExist.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("read %s: file is larger than %d bytes: it is not a fieldsync key file", path, maxKeyFileSize)
	}
	return b, nil
}
