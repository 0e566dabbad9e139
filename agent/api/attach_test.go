package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/crdt"
)

// storeAttacher is a fakeBackend whose attachments live in a real store on
// disk: chunks, the manifest op and its index, as the agent keeps them.
type storeAttacher struct {
	*fakeBackend
	st   *store.Store
	key  ed25519.PrivateKey
	read int64 // bytes Attach read from bodies
}

const testOrigin = "dev-a"

func newStoreAttacher(t *testing.T) *storeAttacher {
	t.Helper()
	o := store.DefaultOptions(filepath.Join(t.TempDir(), "store"))
	o.AttachmentFile = func(field, value string) ([32]byte, bool) {
		m, err := attach.DecodeFieldValue(value)
		return m.SHA256, err == nil && m.Field() == field
	}
	st, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var seed [32]byte
	seed[0] = 7
	b := &storeAttacher{fakeBackend: newFakeBackend(), st: st, key: ed25519.NewKeyFromSeed(seed[:])}
	if _, err := st.Write(testOrigin, b.key, "rec-1", crdt.KindCreate, map[string]string{"full_name": "A"}, 1_750_000_000_000); err != nil {
		t.Fatal(err)
	}
	return b
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func (b *storeAttacher) Attach(_ context.Context, req AttachRequest) (Attached, error) {
	if _, err := b.st.Record(req.Record); errors.Is(err, store.ErrNotFound) {
		return Attached{}, ErrNotFound
	}
	c := attach.NewChunker(countingReader{req.Body, &b.read}, req.Kind, req.Finger, req.MaxBytes)
	up := b.st.BeginUpload()
	defer up.Abort()
	for {
		data, h, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Attached{}, err
		}
		if err := up.Put(h, data); err != nil {
			return Attached{}, err
		}
	}
	m, err := c.Manifest()
	if err != nil {
		return Attached{}, err
	}
	v, _ := m.FieldValue()
	op, err := up.Commit(testOrigin, b.key, req.Record, map[string]string{m.Field(): v}, 1_750_000_000_001)
	if err != nil {
		return Attached{}, err
	}
	return Attached{Record: req.Record, SHA256: m.SHA256Hex(), Size: m.Size, Kind: string(m.Kind), Finger: m.Finger,
		Chunks: len(m.Chunks), MediaType: m.MediaType, Seq: op.Op.Seq}, nil
}

func (b *storeAttacher) Attachments(_ context.Context, id string) ([]Attachment, error) {
	rec, err := b.st.Record(id)
	if err != nil {
		return nil, ErrNotFound
	}
	var out []Attachment
	for name, reg := range rec.Fields {
		for _, sib := range reg.Live {
			if m, err := attach.DecodeFieldValue(sib.Value); err == nil && m.Field() == name {
				out = append(out, Attachment{Kind: string(m.Kind), Finger: m.Finger, SHA256: m.SHA256Hex(), Size: m.Size, Complete: true})
			}
		}
	}
	return out, nil
}

func (b *storeAttacher) AttachmentFile(_ context.Context, sha [32]byte) (attach.Manifest, func(int) ([]byte, error), error) {
	v, found, err := b.st.Manifest(sha)
	if err != nil || !found {
		return attach.Manifest{}, nil, ErrAttachmentNotFound
	}
	m, err := attach.DecodeFieldValue(v)
	if err != nil {
		return attach.Manifest{}, nil, err
	}
	return m, func(i int) ([]byte, error) { return b.st.Chunk(m.Chunks[i]) }, nil
}

func writeTestFile(t *testing.T, head []byte, n int, seed uint64) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	copy(data, head)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("f%d", seed))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestAttachOverHTTP(t *testing.T) {
	b := newStoreAttacher(t)
	s, logs := newTestServer(t, b)
	s.cfg.AttachmentMaxBytes = 1 << 20
	c := startAPI(t, s)
	ctx := context.Background()

	path, data := writeTestFile(t, []byte{0xFF, 0xD8, 0xFF, 0xE0}, 300_000, 1)
	res, err := c.Attach(ctx, "rec-1", attach.KindPhoto, "", path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if res.SHA256 != hex.EncodeToString(sum[:]) || res.Size != 300_000 || res.Chunks != 5 || res.MediaType != "image/jpeg" || res.Seq != 2 {
		t.Fatalf("attached %+v", res)
	}
	body, media, size, err := c.AttachmentFile(ctx, res.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, data) || media != "image/jpeg" || size != 300_000 {
		t.Fatalf("read back %d bytes, %q, %d: %v", len(got), media, size, err)
	}
	list, err := c.Attachments(ctx, "rec-1")
	if err != nil || len(list) != 1 || list[0].SHA256 != res.SHA256 {
		t.Fatalf("list %+v %v", list, err)
	}
	if strings.Contains(logs.String(), string(data[100:120])) {
		t.Fatal("the log holds file bytes")
	}

	chunksBefore, _, _ := b.st.ChunkStats()
	big, _ := writeTestFile(t, []byte{0xFF, 0xD8, 0xFF}, 2<<20, 2)
	pdf, _ := writeTestFile(t, []byte("%PDF-1.7"), 100_000, 3)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		name         string
		id           string
		kind         attach.Kind
		finger, path string
		status       int
		maxRead      int64 // bytes of body the backend may have read
	}{
		{"too large", "rec-1", attach.KindPhoto, "", big, http.StatusRequestEntityTooLarge, 0},
		{"empty", "rec-1", attach.KindPhoto, "", empty, http.StatusBadRequest, 0},
		{"not a photo", "rec-1", attach.KindPhoto, "", pdf, http.StatusUnsupportedMediaType, attach.ChunkSize},
		{"unknown kind", "rec-1", "selfie", "", path, http.StatusBadRequest, 0},
		{"unknown finger", "rec-1", attach.KindFingerprint, "right_toe", path, http.StatusBadRequest, 0},
		{"no finger", "rec-1", attach.KindFingerprint, "", path, http.StatusBadRequest, 0},
		{"finger on a document", "rec-1", attach.KindDocument, "left_thumb", pdf, http.StatusBadRequest, 0},
		{"unknown dossier", "no-such", attach.KindPhoto, "", path, http.StatusNotFound, 0},
	} {
		b.read = 0
		_, err := c.Attach(ctx, tc.id, tc.kind, tc.finger, tc.path)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.MessageVI == "" {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
		if b.read > tc.maxRead {
			t.Errorf("%s: the backend read %d bytes of the body, want at most %d", tc.name, b.read, tc.maxRead)
		}
	}
	if n, _, _ := b.st.ChunkStats(); n != chunksBefore {
		t.Fatalf("refused uploads left chunks: %d, before %d", n, chunksBefore)
	}
	// A streamed body with no declared length, over the limit: refused
	// while read, and nothing kept.
	req, _ := http.NewRequest("POST", c.base+"/v1/records/rec-1/attachments?kind=photo",
		io.MultiReader(bytes.NewReader([]byte{0xFF, 0xD8, 0xFF}), io.LimitReader(zeroReader{}, 3<<20)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge && resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("unbounded body: status %d", resp.StatusCode)
	}
	if n, _, _ := b.st.ChunkStats(); n != chunksBefore {
		t.Fatalf("an unbounded body left chunks: %d", n)
	}
	// Unknown file and bad hashes.
	if _, _, _, err := c.AttachmentFile(ctx, strings.Repeat("ab", 32)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown file: %v", err)
	}
	if _, _, _, err := c.AttachmentFile(ctx, "xyz"); err == nil {
		t.Fatal("a malformed hash answered")
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
