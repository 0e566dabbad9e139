package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// canaryChunk is a chunk of n bytes starting with a findable marker.
func canaryChunk(marker string, seed uint64, n int) ([32]byte, []byte) {
	_, b := randomChunk(seed, n)
	copy(b, marker)
	return sha256.Sum256(b), b
}

// filesContaining lists the files under dir holding needle.
func filesContaining(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			out = append(out, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// packedRecord is the record a chunk's pointer names, as the pack holds it
// (nonce and sealed bytes).
func packedRecord(t *testing.T, s *Store, h [32]byte) []byte {
	t.Helper()
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var found bool
		var err error
		if v, found, err = get(txn, packedKey(h)); err == nil && !found {
			err = ErrNoChunk
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePackPtr(v)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.packs.path(p.pack))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, p.n)
	if _, err := f.ReadAt(rec, int64(p.off)); err != nil {
		t.Fatal(err)
	}
	return rec
}

// A pruned file's chunks are gone from the data directory once the
// garbage collection has run, the chunks of files still to deliver stay, and the store
// remembers which files it pruned and how many bytes it freed.
func TestPruneFilesFreesTheBytesOnDisk(t *testing.T) {
	small := func(o *Options) {
		o.ValueLogFileSize = 1 << 20
		o.MemTableSize = 1 << 20
	}
	s, dir := openTest(t, small)
	const marker = "CANARY-DELIVERED-PHOTO"
	var pruned, kept [][32]byte
	sizes := map[[32]byte]int64{}
	// 44 chunks of 64 KiB fill two 1 MB value log files and three quarters
	// of a third: the GC rewrites files at least half garbage.
	for i := range 44 {
		h, data := canaryChunk(fmt.Sprintf("%s-%02d", marker, i), uint64(100+i), 64<<10)
		if err := s.PutChunk(h, data); err != nil {
			t.Fatal(err)
		}
		pruned = append(pruned, h)
		sizes[h] = int64(len(data))
	}
	for i := range 30 {
		h, data := canaryChunk(fmt.Sprintf("STILL-TO-DELIVER-%02d", i), uint64(200+i), 64<<10)
		if err := s.PutChunk(h, data); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, h)
	}
	if got := filesContaining(t, dir, []byte(marker)); len(got) != 0 {
		t.Fatalf("a chunk is in clear in %v", got)
	}
	// Received chunks are sealed in a pack: what must leave the disk is
	// their sealed bytes, as the pack holds them.
	var sealed [][]byte
	for _, h := range pruned {
		rec := packedRecord(t, s, h)
		if got := filesContaining(t, dir, rec[:64]); len(got) == 0 {
			t.Fatal("a sealed chunk is not in the data directory before the prune: the test proves nothing")
		}
		sealed = append(sealed, rec[:64])
	}
	file := sha256.Sum256([]byte("the delivered photo"))
	freed, err := s.PruneFiles([][32]byte{file}, sizes)
	if err != nil {
		t.Fatal(err)
	}
	if freed != 44*64<<10 {
		t.Fatalf("freed %d bytes, want %d", freed, 44*64<<10)
	}
	if missing, _ := s.MissingChunks(pruned); len(missing) != len(pruned) {
		t.Fatalf("%d of %d pruned chunks still readable", len(pruned)-len(missing), len(pruned))
	}
	// Pruning again frees nothing more and counts nothing twice.
	if again, err := s.PruneFiles([][32]byte{file}, sizes); err != nil || again != 0 {
		t.Fatalf("second prune freed %d (%v)", again, err)
	}
	if _, err := s.CollectGarbage(0.5); err != nil {
		t.Fatal(err)
	}
	for i, rec := range sealed {
		if got := filesContaining(t, dir, rec); len(got) != 0 {
			t.Fatalf("pruned chunk %d still on disk in %v", i, got)
		}
	}
	if missing, err := s.MissingChunks(kept); err != nil || len(missing) != 0 {
		t.Fatalf("%d chunks still to deliver lost (%v)", len(missing), err)
	}
	for _, h := range kept {
		data, err := s.Chunk(h)
		if err != nil || sha256.Sum256(data) != h {
			t.Fatalf("kept chunk unreadable after GC: %v", err)
		}
	}
	s = reopen(t, s, dir, small)
	if p, err := s.IsPruned(file); err != nil || !p {
		t.Fatalf("file not marked pruned: %v %v", p, err)
	}
	if n, err := s.PrunedBytes(); err != nil || n != freed {
		t.Fatalf("pruned bytes %d, want %d (%v)", n, freed, err)
	}
}
