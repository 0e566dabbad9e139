package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The close record: what a store's files held when it was last closed
// cleanly, so the next open can tell damage from a crash.
//
// After a crash, a log file that ends in an entry that does not check is the
// last write, cut, and badger rightly drops it; a file cut short reads the
// same. After a clean close nothing was being written: every log entry
// checks to the end and every file is as long as it was. So Close writes,
// once badger has closed, the size of each value log, table, MANIFEST and
// key registry into closeRecordName, and the next Open checks the files
// against it, then removes it before badger writes anything. A store with
// a record refuses a file cut short or a log whose last entry does not
// check, naming the file; a store without one (killed, or closed by an
// older build) gets the checks of integrity.go alone.

const (
	closeRecordName  = "FIELDSYNC-CLOSED"
	closeRecordMagic = "fieldsync store closed v1"
)

// writeCloseRecord records the sizes of the files of the closed store in
// dir, durably.
func writeCloseRecord(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(closeRecordMagic + "\n")
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !recordedFile(name) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d\n", name, info.Size())
	}
	fmt.Fprintf(&b, "crc32c %08x\n", crc32.Checksum(b.Bytes(), castagnoli))
	tmp := filepath.Join(dir, closeRecordName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, closeRecordName)); err != nil {
		return err
	}
	return syncDir(dir)
}

func recordedFile(name string) bool {
	return strings.HasSuffix(name, ".vlog") || strings.HasSuffix(name, ".sst") || name == "MANIFEST" || name == "KEYREGISTRY"
}

// readCloseRecord returns the sizes the close record in dir holds, nil when
// there is none. A record that does not check is ignored (it only ever
// makes checks stricter).
func readCloseRecord(dir string) (map[string]int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, closeRecordName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndex(bytes.TrimRight(b, "\n"), []byte("\n"))
	if i < 0 || !bytes.HasPrefix(b, []byte(closeRecordMagic+"\n")) {
		return nil, nil
	}
	body, last := b[:i+1], strings.TrimSpace(string(b[i+1:]))
	if last != fmt.Sprintf("crc32c %08x", crc32.Checksum(body, castagnoli)) {
		return nil, nil
	}
	sizes := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(body[len(closeRecordMagic)+1:]))
	for sc.Scan() {
		name, size, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if !ok || err != nil || !recordedFile(name) {
			return nil, nil
		}
		sizes[name] = n
	}
	return sizes, nil
}

// stale reports whether the store was opened since the record was written
// (by a build that does not keep records): a log or table file it does not
// list exists, since badger makes a new value log at every open. A stale
// record says nothing about the files.
func stale(dir string, sizes map[string]int64) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		name := e.Name()
		if _, ok := sizes[name]; !ok && (recordedFile(name) || strings.HasSuffix(name, ".mem")) {
			return true, nil
		}
	}
	return false, nil
}

// checkAgainstCloseRecord refuses a recorded file that is missing or
// shorter than it was at close.
func checkAgainstCloseRecord(dir string, sizes map[string]int64) error {
	for name, size := range sizes {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return &DamageError{File: path, Offset: -1, Reason: fmt.Sprintf("missing: it held %d bytes when the store was last closed", size)}
		}
		if err != nil {
			return err
		}
		if info.Size() < size {
			return &DamageError{File: path, Offset: info.Size(), Reason: fmt.Sprintf("cut short: %d bytes, %d when the store was last closed", info.Size(), size)}
		}
	}
	return nil
}

// removeCloseRecord removes the close record, durably, before badger
// writes to the files it describes.
func removeCloseRecord(dir string) error {
	err := os.Remove(filepath.Join(dir, closeRecordName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", closeRecordName, err)
	}
	return syncDir(dir)
}
