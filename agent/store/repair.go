package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyLogs deletes the empty value-log (*.vlog) and memtable-log
// (*.mem) files of the badger directory dir, which a process killed while
// creating them leaves behind, and returns their names.
//
// badger creates each of these files with open(O_CREAT), then gives it its
// size with ftruncate, then writes a header into it through a memory map. A
// kill between the first two steps leaves a file of 0 bytes, and badger
// refuses to open a directory holding one ("Open existing file … Create a
// new file", "while opening memtables … Create a new file"): the agent
// stops at its next start. badger's failed open does grow the file, so a
// second start goes through, but the value-log file stays behind for good
// as 128 MB of zeros (sparse) that a backup copying the directory copies
// whole. A file of 0 bytes holds nothing, not even the header badger writes
// before any entry, so no value pointer and no acknowledged write can refer
// to it: deleting it loses nothing. Files of any other size are left to
// badger. The kill -9 campaign (cmd/fieldsync, docs/testing.md) found this.
//
// It runs under badger's own directory lock (lockDir), so it never touches
// the files of a store another process has open: then it does nothing and
// badger's open reports the lock.
func removeEmptyLogs(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // a new store
	}
	if err != nil {
		return nil, err
	}
	var empty []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(name, ".vlog") || strings.HasSuffix(name, ".mem")) {
			if info, err := e.Info(); err == nil && info.Size() == 0 {
				empty = append(empty, name)
			}
		}
	}
	if len(empty) == 0 {
		return nil, nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, nil // held by another process: badger's open says so
	}
	defer unlock()
	var removed []string
	for _, name := range empty {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(path); err != nil {
			return removed, fmt.Errorf("remove empty %s: %w", path, err)
		}
		removed = append(removed, name)
		if log != nil {
			log.Warn("removed an empty log file left by a crash while the store was opening (it held nothing)", "file", path)
		}
	}
	return removed, syncDir(dir)
}

// syncDir makes the directory's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
