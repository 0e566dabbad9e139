package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

func randomChunk(seed uint64, n int) ([32]byte, []byte) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return sha256.Sum256(b), b
}

func chunkCount(t *testing.T, s *Store) int {
	t.Helper()
	n, _, err := s.ChunkStats()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// manifestField is the test's stand-in for agent/attach: a field
// "attachment.x" whose value is "<file hash hex>:<chunk hex>,…".
func manifestField(field, value string) ([32]byte, bool) {
	var file [32]byte
	if !strings.HasPrefix(field, "attachment.") || len(value) < 64 {
		return file, false
	}
	copy(file[:], value[:32])
	return file, true
}

func TestPutChunkChecksHashAndDedups(t *testing.T) {
	s, _ := openTest(t, nil)
	h, data := randomChunk(1, 64<<10)
	bad := bytes.Clone(data)
	bad[100] ^= 1
	if err := s.PutChunk(h, bad); !errors.Is(err, ErrChunkHash) {
		t.Fatalf("altered chunk: %v", err)
	}
	if held, _ := s.HasChunk(h); held || chunkCount(t, s) != 0 {
		t.Fatal("a refused chunk was stored")
	}
	for range 3 {
		if err := s.PutChunk(h, data); err != nil {
			t.Fatal(err)
		}
	}
	n, size, err := s.ChunkStats()
	if err != nil || n != 1 || size < int64(len(data)) || size > int64(len(data))+64 {
		t.Fatalf("after three puts of one chunk: %d chunks, %d bytes, %v", n, size, err)
	}
	got, err := s.Chunk(h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	h2, _ := randomChunk(2, 100)
	if _, err := s.Chunk(h2); !errors.Is(err, ErrNoChunk) {
		t.Fatalf("unknown chunk: %v", err)
	}
	missing, err := s.MissingChunks([][32]byte{h2, h, h2})
	if err != nil || len(missing) != 2 || missing[0] != h2 {
		t.Fatalf("missing: %x %v", missing, err)
	}
}

func TestUploadCommitKeepsChunksAndIndexesManifest(t *testing.T) {
	s, dir := openTest(t, func(o *Options) { o.AttachmentFile = manifestField })
	key := testKey(1)
	rec := "01a209b2-def6-72db-8bba-a97078440c8a"
	if _, err := s.Write("dev-a", key, rec, crdt.KindCreate, map[string]string{"full_name": "A"}, baseWall); err != nil {
		t.Fatal(err)
	}
	// Two files sharing a chunk: it is stored once.
	shared, sharedData := randomChunk(10, 64<<10)
	for i, other := range []uint64{11, 12} {
		h, d := randomChunk(other, 5000)
		u := s.BeginUpload()
		for _, c := range []struct {
			h [32]byte
			d []byte
		}{{shared, sharedData}, {h, d}} {
			if err := u.Put(c.h, c.d); err != nil {
				t.Fatal(err)
			}
		}
		value := fmt.Sprintf("%064x|manifest %d", sha256.Sum256([]byte{byte(i)}), i)
		if _, err := u.Commit("dev-a", key, rec, map[string]string{"attachment.x": value}, baseWall+int64(i)+1); err != nil {
			t.Fatal(err)
		}
		var want [32]byte
		copy(want[:], value[:32])
		if got, found, err := s.Manifest(want); err != nil || !found || got != value {
			t.Fatalf("manifest index: %q %v %v", got, found, err)
		}
	}
	if n := chunkCount(t, s); n != 3 {
		t.Fatalf("%d chunks, want 3 (one shared)", n)
	}
	// Manifests lists both files with the wall time of their ops (in
	// milliseconds; the HLC's wall is the write's).
	listed := 0
	err := s.Manifests(func(file [32]byte, value string, wall int64) error {
		listed++
		if wall < baseWall || !strings.HasPrefix(value, string(file[:])) {
			t.Errorf("manifest %x: wall %d, value %q", file[:4], wall, value)
		}
		return nil
	})
	if err != nil || listed != 2 {
		t.Fatalf("Manifests listed %d: %v", listed, err)
	}
	s = reopen(t, s, dir, func(o *Options) { o.AttachmentFile = manifestField })
	if n := chunkCount(t, s); n != 3 {
		t.Fatalf("after reopen: %d chunks, want 3: committed chunks must survive the sweep", n)
	}
	r, err := s.Record(rec)
	if err != nil || len(r.Fields["attachment.x"].Live) != 1 {
		t.Fatalf("record: %+v %v", r, err)
	}
}

func TestUploadAbortAndCrashLeaveNothing(t *testing.T) {
	s, dir := openTest(t, nil)
	key := testKey(1)
	rec := "rec-1"
	if _, err := s.Write("dev-a", key, rec, crdt.KindCreate, map[string]string{"full_name": "A"}, baseWall); err != nil {
		t.Fatal(err)
	}
	old, oldData := randomChunk(20, 64<<10)
	if err := s.PutChunk(old, oldData); err != nil {
		t.Fatal(err)
	}
	// Abort: the new chunks go, the one held before stays.
	u := s.BeginUpload()
	for _, seed := range []uint64{21, 22} {
		h, d := randomChunk(seed, 64<<10)
		if err := u.Put(h, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Put(old, oldData); err != nil {
		t.Fatal(err)
	}
	if n := chunkCount(t, s); n != 3 {
		t.Fatalf("%d chunks during the upload", n)
	}
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := chunkCount(t, s); n != 1 {
		t.Fatalf("after abort: %d chunks, want the 1 held before", n)
	}
	// A commit on an unknown dossier aborts too.
	u = s.BeginUpload()
	h, d := randomChunk(23, 1000)
	if err := u.Put(h, d); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit("dev-a", key, "no-such-dossier", map[string]string{"attachment.x": "v"}, baseWall+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("commit on an unknown dossier: %v", err)
	}
	if n := chunkCount(t, s); n != 1 {
		t.Fatalf("after a refused commit: %d chunks", n)
	}
	// A crash mid-upload (the store closed with the upload open): the
	// next Open removes what it wrote.
	u = s.BeginUpload()
	for _, seed := range []uint64{24, 25, 26} {
		h, d := randomChunk(seed, 64<<10)
		if err := u.Put(h, d); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s, dir, nil)
	if n := chunkCount(t, s); n != 1 {
		t.Fatalf("after a cut upload and a restart: %d chunks, want 1", n)
	}
	if held, _ := s.HasChunk(old); !held {
		t.Fatal("the sweep removed a chunk no upload wrote")
	}
}

func TestConcurrentUploadsShareAChunk(t *testing.T) {
	s, dir := openTest(t, nil)
	key := testKey(1)
	if _, err := s.Write("dev-a", key, "rec", crdt.KindCreate, map[string]string{"full_name": "A"}, baseWall); err != nil {
		t.Fatal(err)
	}
	h, d := randomChunk(30, 64<<10)
	a, b := s.BeginUpload(), s.BeginUpload()
	if err := a.Put(h, d); err != nil { // a writes it
		t.Fatal(err)
	}
	if err := b.Put(h, d); err != nil { // b finds it held, by a's upload
		t.Fatal(err)
	}
	if err := a.Abort(); err != nil {
		t.Fatal(err)
	}
	if held, _ := s.HasChunk(h); !held {
		t.Fatal("a's abort removed a chunk b's upload uses")
	}
	if _, err := b.Commit("dev-a", key, "rec", map[string]string{"attachment.x": "v"}, baseWall+1); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, nil)
	if held, _ := s.HasChunk(h); !held {
		t.Fatal("b's committed chunk was swept at open")
	}
	// And the other way round: the writer commits, the other aborts.
	h2, d2 := randomChunk(31, 64<<10)
	a, b = s.BeginUpload(), s.BeginUpload()
	if err := a.Put(h2, d2); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(h2, d2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit("dev-a", key, "rec", map[string]string{"attachment.y": "v"}, baseWall+2); err != nil {
		t.Fatal(err)
	}
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	if held, _ := s.HasChunk(h2); !held {
		t.Fatal("an abort removed a committed chunk")
	}
}

// A batch is checked chunk by chunk and committed once: the chunk whose
// bytes do not match is reported by its position and not written, a chunk
// given twice or already held is written once, and every other chunk is
// there after a reopen.
func TestPutChunksCommitsABatchOnce(t *testing.T) {
	s, dir := openTest(t, nil)
	held, heldData := randomChunk(40, 64<<10)
	if err := s.PutChunk(held, heldData); err != nil {
		t.Fatal(err)
	}
	var batch []ChunkData
	for i := range 10 {
		h, d := randomChunk(uint64(41+i), 64<<10-i)
		batch = append(batch, ChunkData{Hash: h, Data: d})
	}
	altered := bytes.Clone(batch[3].Data)
	altered[7] ^= 0x80
	batch[3].Data = altered
	batch = append(batch, batch[5], ChunkData{Hash: held, Data: heldData})
	commits := s.commits.Load()
	bad, err := s.PutChunks(batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0] != 3 {
		t.Fatalf("bad %v, want [3]", bad)
	}
	if n := s.commits.Load() - commits; n != 1 {
		t.Fatalf("%d commits for one batch", n)
	}
	if n := chunkCount(t, s); n != 10 {
		t.Fatalf("%d chunks, want 10 (9 new and the one held before)", n)
	}
	s = reopen(t, s, dir, nil)
	for i, c := range batch {
		ok, err := s.HasChunk(c.Hash)
		if err != nil || ok == (i == 3) {
			t.Fatalf("chunk %d after reopen: held %v, %v", i, ok, err)
		}
	}
	got, err := s.Chunk(batch[9].Hash)
	if err != nil || !bytes.Equal(got, batch[9].Data) {
		t.Fatalf("read back: %v", err)
	}
	// Nothing new: no commit at all.
	commits = s.commits.Load()
	if bad, err := s.PutChunks(batch[:3]); err != nil || len(bad) != 0 {
		t.Fatalf("again: %v %v", bad, err)
	}
	if s.commits.Load() != commits {
		t.Fatal("a batch of chunks held already committed")
	}
}

// A batch larger than MaxChunkBatch is committed in several transactions,
// each within badger's limits, and all of it is kept.
func TestPutChunksSplitsABigBatch(t *testing.T) {
	s, dir := openTest(t, nil)
	n := 2*MaxChunkBatch/(64<<10) + 3
	batch := make([]ChunkData, n)
	for i := range batch {
		h, d := randomChunk(uint64(100+i), 64<<10)
		batch[i] = ChunkData{Hash: h, Data: d}
	}
	commits := s.commits.Load()
	if bad, err := s.PutChunks(batch); err != nil || len(bad) != 0 {
		t.Fatalf("%v %v", bad, err)
	}
	if c := s.commits.Load() - commits; c != 3 {
		t.Fatalf("%d commits for %d bytes, want 3", c, n*64<<10)
	}
	s = reopen(t, s, dir, nil)
	if got := chunkCount(t, s); got != n {
		t.Fatalf("%d chunks after reopen, want %d", got, n)
	}
}

// Every manifest op is listed in log order with its dossier, field and
// file, from any point on; the hub's watermark of whole attachments only
// rises and survives a reopen.
func TestManifestOpsListEveryAttachmentOpInOrder(t *testing.T) {
	s, dir := openTest(t, func(o *Options) { o.AttachmentFile = manifestField })
	key := testKey(1)
	rec := "01a209b2-def6-72db-8bba-a97078440c8a"
	if _, err := s.Write("dev-a", key, rec, crdt.KindCreate, map[string]string{"full_name": "A"}, baseWall); err != nil {
		t.Fatal(err)
	}
	var files [][32]byte
	for i := range 3 {
		value := fmt.Sprintf("%064x|manifest %d", sha256.Sum256([]byte{byte(i)}), i)
		field := fmt.Sprintf("attachment.f%d", i%2)
		if _, err := s.Write("dev-a", key, rec, crdt.KindUpdate, map[string]string{field: value, "note": "x"}, baseWall+int64(i)+1); err != nil {
			t.Fatal(err)
		}
		var f [32]byte
		copy(f[:], value[:32])
		files = append(files, f)
	}
	// A plain field change in between is not a manifest op.
	if _, err := s.Write("dev-a", key, rec, crdt.KindUpdate, map[string]string{"note": "y"}, baseWall+10); err != nil {
		t.Fatal(err)
	}
	var got []ManifestOp
	if err := s.ManifestOps("dev-a", 0, func(mo ManifestOp) bool { got = append(got, mo); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d manifest ops: %+v", len(got), got)
	}
	for i, mo := range got {
		if mo.Seq != uint64(i+2) || mo.Record != rec || mo.File != files[i] || mo.Field != fmt.Sprintf("attachment.f%d", i%2) || mo.Wall < baseWall {
			t.Fatalf("manifest op %d: %+v", i, mo)
		}
	}
	var after []uint64
	if err := s.ManifestOpsAfter(crdt.VersionVector{"dev-a": 2}, func(mo ManifestOp) bool { after = append(after, mo.Seq); return true }); err != nil {
		t.Fatal(err)
	}
	if len(after) != 2 || after[0] != 3 || after[1] != 4 {
		t.Fatalf("after seq 2: %v", after)
	}
	if err := s.SetAttached(crdt.VersionVector{"dev-a": 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAttached(crdt.VersionVector{"dev-a": 2, "dev-b": 1}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, func(o *Options) { o.AttachmentFile = manifestField })
	if w, err := s.Attached(); err != nil || w["dev-a"] != 3 || w["dev-b"] != 1 {
		t.Fatalf("watermark after reopen: %v %v", w, err)
	}
}
