package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// A process killed while badger creates a value-log or memtable file leaves
// it at 0 bytes (created, not yet given its size). badger refused to open
// such a directory, so the agent stopped at its next start (found by the
// kill -9 campaign, killing the agent while it opened its store). The store
// removes the empty file, which holds nothing, and opens with every op.
func TestOpenAfterKillWhileCreatingALogFile(t *testing.T) {
	for _, suffix := range []string{".vlog", ".mem"} {
		t.Run(suffix, func(t *testing.T) {
			key := testKey(1)
			enc := func(o *Options) { o.EncryptionKey = make([]byte, 32); o.EncryptionKey[0] = 7 }
			s, dir := openTest(t, enc)
			r := rand.New(rand.NewPCG(5, 6))
			write := func(s *Store, i int) {
				t.Helper()
				if _, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, dossier(r, i), baseWall+int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 5; i++ {
				write(s, i)
			}
			head := s.Head("me")
			// What the kill leaves: the next file of that kind, empty.
			width := map[string]string{".vlog": "%06d", ".mem": "%05d"}[suffix]
			empty := filepath.Join(dir, fmt.Sprintf(width+suffix, maxFid(t, dir, suffix)+1))
			s = reopen(t, s, dir, func(o *Options) {
				enc(o)
				if err := os.WriteFile(empty, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			})
			if h := s.Head("me"); h != head {
				t.Fatalf("head %+v after open, want %+v", h, head)
			}
			if n, err := s.RecordCount(); err != nil || n != 5 {
				t.Fatalf("%d records (%v)", n, err)
			}
			// Gone, or made again by badger (the next number is free).
			if fi, err := os.Stat(empty); err == nil && fi.Size() == 0 {
				t.Fatalf("%s still empty", empty)
			}
			// An empty file beside a store open in this process is left
			// alone: badger's directory lock keeps removeEmptyLogs out.
			busy := filepath.Join(dir, fmt.Sprintf(width+suffix, maxFid(t, dir, suffix)+5))
			if err := os.WriteFile(busy, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := prepareFiles(testOptions(dir)); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(busy); err != nil || fi.Size() != 0 {
				t.Fatalf("%s touched while the store is open: %v", busy, err)
			}
			if err := os.Remove(busy); err != nil {
				t.Fatal(err)
			}
			write(s, 5)
			head = s.Head("me")
			s = reopen(t, s, dir, enc)
			ops, err := s.ReadOps("me", 1, 100, 1<<20)
			if err != nil || len(ops) != 6 || s.Head("me") != head {
				t.Fatalf("%d ops (%v), head %+v, want 6 and %+v", len(ops), err, s.Head("me"), head)
			}
		})
	}
}

// maxFid returns the highest number of badger's files ending in suffix.
func maxFid(t *testing.T, dir, suffix string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if num, ok := strings.CutSuffix(e.Name(), suffix); ok {
			if v, err := strconv.Atoi(num); err == nil {
				n = max(n, v)
			}
		}
	}
	return n
}
