package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// A process killed while badger creates a log file (made empty, then
// extended) or deletes a flushed write-ahead log (truncated to nothing,
// then removed) leaves an empty *.mem or *.vlog file, which badger refuses
// to open. The store opens anyway, with every op. Found by the
// deterministic simulation (docs/testing.md): a kill -9 snapshot taken
// between badger's truncate and remove.
func TestOpenAfterAKillLeftAnEmptyLogFile(t *testing.T) {
	for _, name := range []string{"00007.mem", "000007.vlog"} {
		t.Run(name, func(t *testing.T) {
			s, dir := openTest(t, nil)
			key := testKey(1)
			if err := s.PutCredential("dev", pubOf(key), []byte("cred")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write("dev", key, "r1", crdt.KindCreate, map[string]string{"full_name": "Lò Văn Páo"}, baseWall); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			o := testOptions(dir)
			s2, err := Open(o)
			if err != nil {
				t.Fatalf("open with an empty %s: %v", name, err)
			}
			defer s2.Close()
			if r, err := s2.Record("r1"); err != nil || r.Values()["full_name"] != "Lò Văn Páo" {
				t.Fatalf("record after reopening: %v %v", r, err)
			}
		})
	}
}

// A store open in another process may be creating a log file this instant:
// nothing is removed while its directory is locked.
func TestEmptyLogsStayWhileTheStoreIsOpen(t *testing.T) {
	_, dir := openTest(t, nil)
	empty := filepath.Join(dir, "00009.mem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareFiles(testOptions(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(empty); err != nil {
		t.Fatalf("an empty log of an open store was removed: %v", err)
	}
	_ = os.Remove(empty)
}
