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

// removeEmptyLogs deletes, before badger opens dir, the memtable logs
// (*.mem) and value logs (*.vlog) that are empty. badger creates each of
// them, then sizes it and writes its header through a memory map made
// durable by the first sync; a power cut in between can leave the new name
// durable and the file empty (a journaling file system commits the create
// with any later fsync in the directory). badger then refuses to open the
// store: "while opening memtables err: while opening fid: N err: Create a
// new file", or "Open existing file" for a value log (dgraph-io/badger#2207).
// Found by the power-cut campaign (TestE2EPowerCuts, docs/testing.md), and
// by the deterministic simulation as a kill -9 while badger truncates and
// removes a flushed log (TestOpenAfterAKillLeftAnEmptyLogFile).
//
// An empty log holds no entry, so nothing acknowledged: every commit syncs
// the log it wrote before it returns, and a synced log has at least its
// header. Removing it loses nothing; badger makes a fresh one. A log with
// any byte is left to badger's own recovery, which truncates it at its last
// whole entry.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return err
	}
	// Only while no other process has the store open: its badger may be
	// creating a log file this instant.
	unlock, ok := lockDir(dir)
	defer unlock()
	if !ok {
		return nil // badger's own open reports the lock
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog")) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if info.Size() != 0 {
			continue
		}
		path := filepath.Join(dir, name)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove empty log left by a power cut: %w", err)
		}
		log.Warn("removed an empty log file a power cut left; it held nothing", "component", "store", "file", path)
		removed = true
	}
	if !removed {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
