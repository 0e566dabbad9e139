package attach

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// file returns n bytes: head, then seeded random bytes.
func file(head []byte, n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, head)
	return b
}

var jpeg = []byte{0xFF, 0xD8, 0xFF, 0xE0}

// chunkAll runs a chunker to the end and returns its manifest and chunks.
func chunkAll(t *testing.T, data []byte, kind Kind, finger string, max int64) (Manifest, [][]byte, error) {
	t.Helper()
	m, chunks, err := chunkFile(data, kind, finger, max)
	for i, b := range chunks {
		if err == nil && sha256.Sum256(b) != m.Chunks[i] {
			t.Fatal("chunk hash does not match its bytes")
		}
	}
	return m, chunks, err
}

func chunkFile(data []byte, kind Kind, finger string, max int64) (Manifest, [][]byte, error) {
	c := NewChunker(bytes.NewReader(data), kind, finger, max)
	var chunks [][]byte
	for {
		b, _, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, nil, err
		}
		chunks = append(chunks, bytes.Clone(b))
	}
	m, err := c.Manifest()
	return m, chunks, err
}

func TestChunkAndRoundTrip(t *testing.T) {
	for _, n := range []int{1 + 3, ChunkSize, ChunkSize + 1, 300_000, 5 * ChunkSize} {
		data := file(jpeg, n, uint64(n))
		m, chunks, err := chunkAll(t, data, KindPhoto, "", DefaultMaxBytes)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if m.Size != int64(n) || m.MediaType != MediaJPEG || m.SHA256 != sha256.Sum256(data) {
			t.Fatalf("%d bytes: manifest %+v", n, m)
		}
		if want := (n + ChunkSize - 1) / ChunkSize; len(chunks) != want || len(m.Chunks) != want {
			t.Fatalf("%d bytes: %d chunks, want %d", n, len(chunks), want)
		}
		if !bytes.Equal(bytes.Join(chunks, nil), data) {
			t.Fatalf("%d bytes: chunks do not rebuild the file", n)
		}
		for i := range chunks {
			if len(chunks[i]) != m.ChunkLen(i) {
				t.Fatalf("chunk %d: %d bytes, ChunkLen says %d", i, len(chunks[i]), m.ChunkLen(i))
			}
		}
		v, err := m.FieldValue()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeFieldValue(v)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if back.SHA256 != m.SHA256 || back.Size != m.Size || len(back.Chunks) != len(m.Chunks) || back.Field() != "attachment.photo" {
			t.Fatalf("round trip changed the manifest: %+v", back)
		}
	}
}

func TestFingerprintManifestFits(t *testing.T) {
	data := file([]byte("FMR\x00 20\x00"), 20_000, 7)
	m, _, err := chunkAll(t, data, KindFingerprint, "left_ring", DefaultMaxBytes)
	if err != nil || m.MediaType != MediaFMR || m.Field() != "attachment.fingerprint.left_ring" {
		t.Fatalf("%+v %v", m, err)
	}
	// The largest manifest still fits in one field value.
	big := Manifest{Kind: KindDocument, MediaType: MediaPDF, Size: MaxSize, ChunkSize: ChunkSize, Chunks: make([]Hash, MaxChunks)}
	for i := range big.Chunks {
		big.Chunks[i] = sha256.Sum256([]byte{byte(i), byte(i >> 8)})
	}
	v, err := big.FieldValue()
	if err != nil || len(v) > 64<<10 {
		t.Fatalf("largest manifest: %d bytes, %v", len(v), err)
	}
}

func TestChunkerRefuses(t *testing.T) {
	zeros := make([]byte, 3*ChunkSize)
	copy(zeros, jpeg)
	cases := []struct {
		name   string
		data   []byte
		kind   Kind
		finger string
		max    int64
		code   Code
	}{
		{"empty", nil, KindPhoto, "", DefaultMaxBytes, CodeEmpty},
		{"too large", file(jpeg, 200_000, 1), KindPhoto, "", 100_000, CodeTooLarge},
		{"photo that is a PDF", file([]byte("%PDF-1.7"), 1000, 2), KindPhoto, "", DefaultMaxBytes, CodeMediaType},
		{"photo of text", []byte("hello"), KindPhoto, "", DefaultMaxBytes, CodeMediaType},
		{"photo of a template", file([]byte("FMR\x00"), 1000, 2), KindPhoto, "", DefaultMaxBytes, CodeMediaType},
		{"fingerprint that is a PDF", file([]byte("%PDF-1.7"), 1000, 2), KindFingerprint, "right_thumb", DefaultMaxBytes, CodeMediaType},
		{"document of a WSQ", file([]byte{0xFF, 0xA0}, 1000, 2), KindDocument, "", DefaultMaxBytes, CodeMediaType},
		{"repeated block", zeros, KindPhoto, "", DefaultMaxBytes, CodeRepeated},
	}
	for _, tc := range cases {
		_, _, err := chunkAll(t, tc.data, tc.kind, tc.finger, tc.max)
		if e := Refusal(err); e == nil || e.Code != tc.code || !errors.Is(err, ErrRefused) || e.Vi == "" {
			t.Errorf("%s: %v, want code %s", tc.name, err, tc.code)
		}
	}
	// Each accepted type is accepted for its kinds.
	for _, tc := range []struct {
		kind Kind
		head []byte
	}{
		{KindPhoto, []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}},
		{KindPhoto, []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}},
		{KindPhoto, []byte{0xFF, 0x4F, 0xFF, 0x51}},
		{KindFingerprint, []byte{0xFF, 0xA0, 0xFF, 0xA8}},
		{KindFingerprint, jpeg},
		{KindDocument, []byte("%PDF-1.4")},
	} {
		finger := ""
		if tc.kind == KindFingerprint {
			finger = "right_index"
		}
		if _, _, err := chunkAll(t, file(tc.head, 5000, 3), tc.kind, finger, DefaultMaxBytes); err != nil {
			t.Errorf("%s with % x: %v", tc.kind, tc.head, err)
		}
	}
}

func TestCheckKindAndFields(t *testing.T) {
	for _, tc := range []struct {
		kind   Kind
		finger string
		code   Code
	}{
		{"selfie", "", CodeKind},
		{KindFingerprint, "", CodeFinger},
		{KindFingerprint, "right_toe", CodeFinger},
		{KindPhoto, "right_thumb", CodeFinger},
		{KindDocument, "left_little", CodeFinger},
	} {
		if e := Refusal(CheckKind(tc.kind, tc.finger)); e == nil || e.Code != tc.code {
			t.Errorf("CheckKind(%q, %q) = %v, want %s", tc.kind, tc.finger, e, tc.code)
		}
	}
	valid := []string{"attachment.photo", "attachment.document"}
	for _, f := range Fingers {
		valid = append(valid, "attachment.fingerprint."+f)
	}
	for _, name := range valid {
		if _, _, ok := ParseField(name); !ok {
			t.Errorf("ParseField(%q) refused", name)
		}
	}
	for _, name := range []string{"attachment.", "attachment.fingerprint", "attachment.fingerprint.", "attachment.photo.right_thumb",
		"attachment.fingerprint.right_thumb.x", "attachment.selfie", "attachment.Photo", "photo", "attachments.photo"} {
		if _, _, ok := ParseField(name); ok {
			t.Errorf("ParseField(%q) accepted", name)
		}
	}
}

func TestDecodeRefusesImpossibleManifests(t *testing.T) {
	data := file(jpeg, 3*ChunkSize+10, 9)
	good, _, err := chunkAll(t, data, KindPhoto, "", DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(w wire) []byte {
		b, err := crdt.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := func() wire {
		w := wire{Version: Version, Kind: "photo", MediaType: MediaJPEG, Size: uint64(good.Size), ChunkSize: ChunkSize, SHA256: good.SHA256[:]}
		for _, h := range good.Chunks {
			w.Chunks = append(w.Chunks, h[:]...)
		}
		return w
	}
	if _, err := Decode(enc(base())); err != nil {
		t.Fatalf("the good manifest: %v", err)
	}
	for name, edit := range map[string]func(*wire){
		"size 0":              func(w *wire) { w.Size = 0 },
		"size over the limit": func(w *wire) { w.Size = MaxSize + 1 },
		"too few chunks":      func(w *wire) { w.Size += ChunkSize },
		"too many chunks":     func(w *wire) { w.Size -= ChunkSize },
		"chunk size":          func(w *wire) { w.ChunkSize = 1 << 20 },
		"duplicate hash":      func(w *wire) { copy(w.Chunks[32:64], w.Chunks[:32]) },
		"short hash":          func(w *wire) { w.Chunks = w.Chunks[:len(w.Chunks)-1] },
		"short file hash":     func(w *wire) { w.SHA256 = w.SHA256[:31] },
		"version":             func(w *wire) { w.Version = 2 },
		"kind":                func(w *wire) { w.Kind = "selfie" },
		"finger on a photo":   func(w *wire) { w.Finger = "right_thumb" },
		"media type":          func(w *wire) { w.MediaType = MediaPDF },
	} {
		w := base()
		w.Chunks = bytes.Clone(w.Chunks)
		edit(&w)
		_, err := Decode(enc(w))
		if e := Refusal(err); e == nil || e.Code != CodeManifest || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Not canonical: a manifest with an extra key, or not CBOR at all.
	if _, err := Decode(append(enc(base()), 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := DecodeFieldValue("not base64!"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad base64: %v", err)
	}
	if _, err := DecodeFieldValue(strings.Repeat("A", 70<<10)); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge value: %v", err)
	}
}

func FuzzDecodeManifest(f *testing.F) {
	m, _, _ := chunkFile(file(jpeg, 2*ChunkSize+5, 4), KindPhoto, "", DefaultMaxBytes)
	b, _ := m.Encode()
	f.Add(b)
	fp, _, _ := chunkFile(file([]byte("FMR\x00"), 900, 5), KindFingerprint, "left_thumb", DefaultMaxBytes)
	b2, _ := fp.Encode()
	f.Add(b2)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error that is not ErrMalformed: %v", err)
			}
			return
		}
		// What decodes is valid and encodes back to the same bytes.
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded an invalid manifest: %v", err)
		}
		again, err := m.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

// The package is pure: the standard library without I/O or randomness,
// crdt (for its canonical CBOR) and the CBOR library, nothing else.
func TestImportsStayPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range strings.Fields(string(out)) {
		switch {
		case imp == "github.com/fieldsync/fieldsync/crdt", strings.HasPrefix(imp, "github.com/fxamacker/cbor/"):
		case strings.Contains(strings.Split(imp, "/")[0], "."):
			t.Errorf("imports %s: attach is pure", imp)
		case imp == "os" || imp == "net" || strings.HasPrefix(imp, "net/") || imp == "syscall" || imp == "time" ||
			strings.HasPrefix(imp, "math/rand") || imp == "crypto/rand":
			t.Errorf("imports %s: no I/O, clock or randomness in attach", imp)
		}
	}
}
