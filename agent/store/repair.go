package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// prepareFiles runs before badger opens the directory dir, under badger's
// own directory lock, so it never touches the files of a store another
// process has open (then it does nothing, and badger's open reports the
// lock). It checks the files against the record of the last clean close
// (closed.go), removes the empty log files a crash leaves
// (removeEmptyLogs), refuses files badger would misread or cut
// (checkFiles, integrity.go), and removes the close record before badger
// writes anything.
func prepareFiles(o Options) error {
	dir, log := o.Dir, o.logger()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil // a new store
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil // held by another process: badger's open says so
	}
	defer unlock()
	closed, err := readCloseRecord(dir)
	if err != nil {
		return err
	}
	if closed != nil {
		if old, err := stale(dir, closed); err != nil {
			return err
		} else if old {
			log.Warn("the store's record of its last clean close is older than its files; checking without it", "file", filepath.Join(dir, closeRecordName))
			closed = nil
		}
	}
	if closed != nil {
		if err := checkAgainstCloseRecord(dir, closed); err != nil {
			return err
		}
	}
	if _, err := removeEmptyLogs(dir, log); err != nil {
		return err
	}
	if err := checkFiles(o, closed != nil); err != nil {
		return err
	}
	return removeCloseRecord(dir)
}

// removeEmptyLogs deletes the empty value-log (*.vlog) and memtable-log
// (*.mem) file a process killed while creating it leaves behind, and
// returns its name. The caller holds the directory lock.
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
// to it: deleting it loses nothing. Only the newest value log can be one
// badger was creating; an empty value log with newer ones beside it lost its
// contents, and is refused. An older empty memtable log is one badger had
// flushed and truncated before removing it (the power-cut campaign cut
// there), and goes too. The kill -9 campaign (cmd/fieldsync,
// docs/testing.md) found this.
func removeEmptyLogs(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	newest := map[string]int{} // suffix -> highest file number
	type file struct {
		name, suffix string
		fid          int
	}
	var empty []file
	for _, e := range entries {
		name := e.Name()
		for _, suffix := range []string{".vlog", ".mem"} {
			num, ok := strings.CutSuffix(name, suffix)
			fid, err := strconv.Atoi(num)
			if !ok || err != nil || !e.Type().IsRegular() {
				continue
			}
			newest[suffix] = max(newest[suffix], fid)
			if info, err := e.Info(); err == nil && info.Size() == 0 {
				empty = append(empty, file{name, suffix, fid})
			}
		}
	}
	var removed []string
	for _, f := range empty {
		path := filepath.Join(dir, f.name)
		// An older empty memtable log is one badger flushed and truncated
		// and had not removed yet (a crash or a power cut in between): its
		// entries are in a table. A synced log is never empty otherwise.
		if f.suffix == ".vlog" && f.fid != newest[f.suffix] {
			return removed, &DamageError{File: path, Offset: 0, Reason: "empty, though newer files of its kind exist: it lost its contents"}
		}
		if err := os.Remove(path); err != nil {
			return removed, fmt.Errorf("remove empty %s: %w", path, err)
		}
		removed = append(removed, f.name)
		if log != nil {
			log.Warn("removed an empty log file left by a crash while the store was opening (it held nothing)", "file", path)
		}
	}
	if len(removed) == 0 {
		return nil, nil
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
