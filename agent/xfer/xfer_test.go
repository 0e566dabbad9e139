package xfer

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
)

// file makes a manifest of n chunks (the last one short) whose chunk hashes
// are derived from name.
func file(kind attach.Kind, name string, n int) attach.Manifest {
	m := attach.Manifest{Kind: kind, Size: int64(n-1)*attach.ChunkSize + 100, ChunkSize: attach.ChunkSize,
		SHA256: sha256.Sum256([]byte(name))}
	for i := range n {
		m.Chunks = append(m.Chunks, sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, i))))
	}
	return m
}

func TestOrderKindsThenAge(t *testing.T) {
	s := New()
	s.Window = 100
	doc := file(attach.KindDocument, "doc", 2)
	oldPhoto := file(attach.KindPhoto, "old photo", 2)
	newPhoto := file(attach.KindPhoto, "new photo", 1)
	fp := file(attach.KindFingerprint, "fp", 1)
	s.Add(File{Manifest: doc, Time: 1}, doc.Chunks)
	s.Add(File{Manifest: newPhoto, Time: 30}, newPhoto.Chunks)
	s.Add(File{Manifest: oldPhoto, Time: 20}, oldPhoto.Chunks)
	s.Add(File{Manifest: fp, Time: 40}, fp.Chunks)
	got := s.Next("p", time.Now())
	want := []Hash{fp.Chunks[0], oldPhoto.Chunks[0], oldPhoto.Chunks[1], newPhoto.Chunks[0], doc.Chunks[0], doc.Chunks[1]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order:\n got %x\nwant %x", got, want)
	}
	st := s.Stats()
	if st.PendingBytes[attach.KindPhoto] != attach.ChunkSize+100+100 || st.PendingBytes[attach.KindFingerprint] != 100 ||
		st.PendingBytes[attach.KindDocument] != attach.ChunkSize+100 || st.Incomplete != 4 || st.Complete != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWindowAndNoDoubleRequests(t *testing.T) {
	s := New()
	now := time.Now()
	m := file(attach.KindPhoto, "big", 20)
	s.Add(File{Manifest: m}, m.Chunks)
	a := s.Next("a", now)
	b := s.Next("b", now)
	if len(a) != DefaultWindow || len(b) != DefaultWindow {
		t.Fatalf("window: a %d, b %d", len(a), len(b))
	}
	seen := map[Hash]bool{}
	for _, h := range append(a, b...) {
		if seen[h] {
			t.Fatalf("chunk %x asked twice", h[:4])
		}
		seen[h] = true
	}
	if more := s.Next("a", now); len(more) != 0 {
		t.Fatalf("a's window is full, got %d more", len(more))
	}
	// c gets what is left; nothing asked of a or b.
	if c := s.Next("c", now); len(c) != 4 || seen[c[0]] {
		t.Fatalf("c: %d", len(c))
	}
	// An answer frees room for one more, none left unasked now.
	s.Got("a", a[0])
	if s.Asked("a", a[0]) {
		t.Fatal("a chunk held is still in flight")
	}
	if more := s.Next("a", now); len(more) != 0 {
		t.Fatalf("every missing chunk is in flight, got %d", len(more))
	}
	// b's session ends: its chunks go to a, in order.
	s.Drop("b")
	more := s.Next("a", now)
	if len(more) != 1 || more[0] != b[0] {
		t.Fatalf("after b dropped, a gets %x", more)
	}
}

func TestLacksAskElsewhereThenAgain(t *testing.T) {
	s := New()
	now := time.Now()
	m := file(attach.KindFingerprint, "fp", 1)
	s.Add(File{Manifest: m}, m.Chunks)
	h := m.Chunks[0]
	if got := s.Next("a", now); len(got) != 1 {
		t.Fatal("not asked")
	}
	if got := s.Next("b", now); len(got) != 0 {
		t.Fatal("asked of two peers at once")
	}
	s.Lacks("a", h, now)
	if got := s.Next("a", now); len(got) != 0 {
		t.Fatal("asked again of a peer that lacks it")
	}
	if got := s.Next("b", now); len(got) != 1 {
		t.Fatal("not asked of the other peer")
	}
	s.Lacks("b", h, now)
	if got := s.Next("a", now.Add(DefaultLackFor)); len(got) != 1 {
		t.Fatal("not asked again after LackFor")
	}
	// An unasked chunk is refused; an asked one taken.
	if s.Asked("b", h) || !s.Asked("a", h) {
		t.Fatal("Asked wrong")
	}
	s.Got("a", h)
	st := s.Stats()
	if s.Wanted() || st.Complete != 1 || st.Incomplete != 0 || st.Received != 1 || st.PendingBytes[attach.KindFingerprint] != 0 {
		t.Fatalf("after got: %+v", st)
	}
}

func TestTimeoutFreesChunk(t *testing.T) {
	s := New()
	now := time.Now()
	m := file(attach.KindPhoto, "p", 1)
	s.Add(File{Manifest: m}, m.Chunks)
	s.Next("silent", now)
	if got := s.Next("b", now.Add(DefaultTimeout)); len(got) != 1 {
		t.Fatal("a request unanswered past the timeout still holds the chunk")
	}
}

func TestSharedChunkAndPartlyHeld(t *testing.T) {
	s := New()
	now := time.Now()
	x := file(attach.KindPhoto, "x", 3)
	y := file(attach.KindDocument, "y", 1)
	y.Chunks[0] = x.Chunks[1]              // shared
	s.Add(File{Manifest: x}, x.Chunks[1:]) // chunk 0 held already
	s.Add(File{Manifest: y}, y.Chunks)
	got := s.Next("a", now)
	if len(got) != 2 {
		t.Fatalf("asked %d chunks, want 2 (one held, one shared)", len(got))
	}
	for _, h := range got {
		s.Got("a", h)
	}
	if st := s.Stats(); st.Complete != 2 || st.Incomplete != 0 {
		t.Fatalf("%+v", st)
	}
}

// A file is whole once registered and every chunk is held; forgetting a
// pruned file stops asking for its chunks, but not for a chunk another file
// still wants.
func TestWholeAndForget(t *testing.T) {
	s := New()
	s.Window = 100
	a := file(attach.KindPhoto, "a", 3)
	b := file(attach.KindPhoto, "b", 1)
	b.Chunks = append(b.Chunks, a.Chunks[2]) // shares a's last chunk
	if s.Whole(a.SHA256) {
		t.Fatal("an unregistered file is whole")
	}
	s.Add(File{Manifest: a, Time: 1}, a.Chunks[1:])
	s.Add(File{Manifest: b, Time: 2}, b.Chunks)
	done := file(attach.KindFingerprint, "held", 1)
	s.Add(File{Manifest: done, Time: 3}, nil)
	if s.Whole(a.SHA256) || !s.Whole(done.SHA256) {
		t.Fatalf("whole: a %v, held %v", s.Whole(a.SHA256), s.Whole(done.SHA256))
	}
	s.Forget(a.SHA256)
	got := s.Next("p", time.Now())
	if len(got) != 2 || !slices.Contains(got, b.Chunks[0]) || !slices.Contains(got, a.Chunks[2]) {
		t.Fatalf("after forgetting a: %x", got)
	}
	if st := s.Stats(); st.Complete+st.Incomplete != 2 {
		t.Fatalf("stats after forget: %+v", st)
	}
	for _, h := range got {
		s.Got("p", h)
	}
	if !s.Whole(b.SHA256) || s.Wanted() {
		t.Fatalf("b whole %v, still wanted %v", s.Whole(b.SHA256), s.Wanted())
	}
}
