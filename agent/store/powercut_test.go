package store

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// A power cut between badger creating a memtable log or a value log and
// syncing its first bytes leaves the file empty; the store must open with
// every op, as it held them. Found by the power-cut campaign
// (TestE2EPowerCuts): "while opening memtables err: while opening fid: 1
// err: Create a new file".
func TestOpenAfterPowerCutLeftEmptyLogs(t *testing.T) {
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		t.Run(name, func(t *testing.T) {
			key := bytes.Repeat([]byte{7}, 32)
			encrypted := func(o *Options) { o.EncryptionKey = key }
			s, dir := openTest(t, encrypted)
			me := testKey(1)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 5 {
				if _, err := s.Write("me", me, recordID("me", i), crdt.KindCreate, dossier(r, i), baseWall+int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			empty := filepath.Join(dir, name)
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			o := testOptions(dir)
			encrypted(&o)
			s, err := Open(o)
			if err != nil {
				t.Fatalf("open with an empty %s: %v", name, err)
			}
			defer s.Close()
			if got := s.VersionVector(); !got.Equal(crdt.VersionVector{"me": 5}) {
				t.Fatalf("version vector %v after the cut, want me:5", got)
			}
			if n, err := s.RecordCount(); err != nil || n != 5 {
				t.Fatalf("records %d (%v), want 5", n, err)
			}
			// It goes on writing.
			if _, err := s.Write("me", me, recordID("me", 5), crdt.KindCreate, dossier(r, 5), baseWall+5); err != nil {
				t.Fatal(err)
			}
		})
	}
}
