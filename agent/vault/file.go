package vault

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// writeFile atomically writes data to dir/name (0600): temporary file,
// fsync, rename (or, with exclusive, a hard link that fails if the name
// exists), fsync of the directory. After a crash the file holds the old or
// the new content. identity/files.go does the same for key files; the vault
// keeps its own copy so that it depends on nothing of identity.
func writeFile(dir, name string, data []byte, exclusive bool) (err error) {
	final := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		_ = tmp.Close()
		if err != nil || exclusive {
			_ = os.Remove(tmpName)
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		err = os.Link(tmpName, final)
		if err != nil && !errors.Is(err, os.ErrExist) {
			// No hard links (FAT): check, then rename.
			if _, statErr := os.Lstat(final); statErr == nil {
				return fmt.Errorf("write %s: %w", final, os.ErrExist)
			}
			err = os.Rename(tmpName, final)
		}
	} else {
		err = os.Rename(tmpName, final)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	return SyncDir(dir)
}

// SyncDir makes renames in dir durable. Windows cannot open a directory for
// syncing, and NTFS journals the rename itself.
func SyncDir(dir string) error {
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

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrMalformed, limit)
	}
	return b, nil
}
