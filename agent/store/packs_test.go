package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, packDirName, "*"+packSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func putBatch(t *testing.T, s *Store, seed uint64, n int) [][32]byte {
	t.Helper()
	var chunks []ChunkData
	var hashes [][32]byte
	for i := range n {
		h, data := randomChunk(seed+uint64(i), 64<<10)
		chunks = append(chunks, ChunkData{Hash: h, Data: data})
		hashes = append(hashes, h)
	}
	if bad, err := s.PutChunks(chunks); err != nil || len(bad) != 0 {
		t.Fatalf("put chunks: bad %v, %v", bad, err)
	}
	return hashes
}

func readAll(t *testing.T, s *Store, hashes [][32]byte) {
	t.Helper()
	for i, h := range hashes {
		data, err := s.Chunk(h)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if got := sha256.Sum256(data); got != h {
			t.Fatalf("chunk %d reads back other bytes", i)
		}
	}
}

// Received chunks go to packs, encrypted, and read back whole after a
// reopen; a pack is closed at its target size, and each open writes a new
// pack, never after what an earlier one left at the end of its file.
func TestPacksKeepChunksAcrossReopensAndRoll(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	enc := func(o *Options) { o.EncryptionKey = key }
	s, dir := openTest(t, enc)
	s.packs.target = 1 << 20
	var first [][32]byte
	for i := range 4 { // 2.5 MiB in batches of 640 KiB: a pack closes after two
		first = append(first, putBatch(t, s, 1+uint64(10*i), 10)...)
	}
	if n := len(packFiles(t, dir)); n != 2 {
		t.Fatalf("%d packs after 2.5 MiB with a target of 1 MiB, want 2", n)
	}
	_, b := randomChunk(1, 64<<10)
	if got := filesContaining(t, dir, b[:256]); len(got) != 0 {
		t.Fatalf("a chunk is in clear in %v", got)
	}
	s = reopen(t, s, dir, enc)
	second := putBatch(t, s, 100, 3)
	if n := len(packFiles(t, dir)); n != 3 {
		t.Fatalf("%d packs after a reopen and a write, want 3", n)
	}
	readAll(t, s, append(first, second...))
	if n, bytes, err := s.ChunkStats(); err != nil || n != 43 || bytes != 43*64<<10 {
		t.Fatalf("stats %d chunks %d bytes (%v)", n, bytes, err)
	}
}

// A flipped byte in a pack is never served: reading that chunk fails with a
// DamageError naming the pack, and every other chunk still reads.
func TestDamagedPackRecordIsRefusedNamingThePack(t *testing.T) {
	s, dir := openTest(t, func(o *Options) { o.EncryptionKey = bytes.Repeat([]byte{3}, 32) })
	hashes := putBatch(t, s, 7, 5)
	rec := packedRecord(t, s, hashes[2])
	files := packFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("packs %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, rec)
	b[at+nonceSize+1000] ^= 0x40
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Chunk(hashes[2])
	var de *DamageError
	if !errors.As(err, &de) || de.File != files[0] || de.Offset != int64(at) {
		t.Fatalf("damaged chunk: %v, want a DamageError naming %s at %d", err, files[0], at)
	}
	readAll(t, s, append(hashes[:2:2], hashes[3:]...))
}

// Bytes a crash left in a pack without their pointer (written, synced, the
// commit cut) are not a held chunk, and the collection deletes them.
func TestPackBytesWithoutPointerAreCollected(t *testing.T) {
	s, dir := openTest(t, nil)
	kept := putBatch(t, s, 1, 3)
	h, data := randomChunk(500, 64<<10)
	s.wmu.Lock()
	_, err := s.packs.append([]ChunkData{{Hash: h, Data: data}}) // and no commit: the crash
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, nil)
	if held, err := s.HasChunk(h); err != nil || held {
		t.Fatalf("a chunk without its pointer counts as held: %v %v", held, err)
	}
	orphan := putBatch(t, s, 900, 1) // the new open's pack
	if _, err := s.CollectGarbage(0.5); err != nil {
		t.Fatal(err)
	}
	// The first pack: 3 live chunks of 4, kept; nothing of it deleted.
	readAll(t, s, append(kept, orphan...))
	if _, err := s.PruneFiles(nil, map[[32]byte]int64{kept[0]: 1, kept[1]: 1, kept[2]: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectGarbage(0.5); err != nil {
		t.Fatal(err)
	}
	if got := filesContaining(t, dir, packedRecord(t, s, orphan[0])[:64]); len(got) != 1 {
		t.Fatalf("the live chunk is in %v", got)
	}
	if n := len(packFiles(t, dir)); n != 1 {
		t.Fatalf("%d packs after the first lost every chunk, want 1", n)
	}
	readAll(t, s, orphan)
}

// Copying a store (device encrypt) reseals its packs under the new key:
// every chunk reads back in the copy, and none of the source's sealed
// bytes is in it.
func TestCopyResealsPacks(t *testing.T) {
	s, dir := openTest(t, nil)
	hashes := putBatch(t, s, 40, 20)
	sealed := packedRecord(t, s, hashes[0])[:64]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dst := testOptions(filepath.Join(t.TempDir(), "store"))
	dst.EncryptionKey = bytes.Repeat([]byte{5}, 32)
	if _, err := Copy(testOptions(dir), dst); err != nil {
		t.Fatal(err)
	}
	if got := filesContaining(t, dst.Dir, sealed); len(got) != 0 {
		t.Fatalf("the source's sealed bytes are in the copy: %v", got)
	}
	c, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readAll(t, c, hashes)
}
