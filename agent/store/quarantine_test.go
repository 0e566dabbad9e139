package store

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// Ops of an origin held before it was quarantined stay merged; the ones that
// arrive afterwards are kept apart, verified, survive a restart, and never
// reach the records or the version vector.
func TestQuarantineKeepsLaterOpsApart(t *testing.T) {
	var revoked atomic.Bool
	mod := func(o *Options) {
		o.Quarantine = func(origin string) bool { return revoked.Load() && origin == "lost" }
	}
	s, dir := openTest(t, mod)
	lost := newSigner("lost", 7)
	other := newSigner("other", 8)
	for _, g := range []*signer{lost, other} {
		if err := s.PutCredential(g.origin, g.pub(), []byte("cred-"+g.origin)); err != nil {
			t.Fatal(err)
		}
	}
	before := []crdt.Signed{
		lost.next(t, "rec-1", crdt.KindCreate, plain(map[string]string{"full_name": "Vừ Mí Chứ"}), baseWall),
		lost.next(t, "rec-1", crdt.KindUpdate, plain(map[string]string{"commune": "Pả Vi"}), baseWall+1),
	}
	if res := mustIngest(t, s, before); res.AppliedOps() != 2 || res.Quarantined != 0 {
		t.Fatalf("before: %+v", res)
	}
	revoked.Store(true)
	later := []crdt.Signed{
		lost.next(t, "rec-2", crdt.KindCreate, plain(map[string]string{"full_name": "Giàng Thị Mỷ"}), baseWall+2),
		lost.next(t, "rec-2", crdt.KindUpdate, plain(map[string]string{"commune": "Lũng Pù"}), baseWall+3),
	}
	mixed := append(append([]crdt.Signed{before[1]}, later...), other.next(t, "rec-3", crdt.KindCreate, plain(map[string]string{"full_name": "Lò Văn Páo"}), baseWall))
	res := mustIngest(t, s, mixed)
	if res.Quarantined != 2 || res.AppliedOps() != 1 || res.Duplicates != 1 || len(res.Refused) != 0 {
		t.Fatalf("later: %+v %s", res, refusalsString(res.Refused))
	}
	if s.Head("lost").Seq != 2 || s.QuarantineCount() != 2 {
		t.Fatalf("head %d, quarantined %d", s.Head("lost").Seq, s.QuarantineCount())
	}
	if _, err := s.Record("rec-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a quarantined dossier was merged: %v", err)
	}
	// Sent again: duplicates of the quarantine, nothing added.
	if res := mustIngest(t, s, later); res.Quarantined != 0 || res.Duplicates != 2 {
		t.Fatalf("again: %+v", res)
	}
	// A forged op continuing the quarantine is refused.
	forger := &signer{origin: "lost", key: testKey(99), head: lost.head}
	if res := mustIngest(t, s, []crdt.Signed{forger.next(t, "rec-9", crdt.KindCreate, plain(map[string]string{"full_name": "X"}), baseWall)}); res.Quarantined != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, crdt.ErrSignature) {
		t.Fatalf("forged: %+v", res)
	}
	s = reopen(t, s, dir, mod)
	if s.QuarantineCount() != 2 {
		t.Fatalf("after restart: %d quarantined", s.QuarantineCount())
	}
	var got []crdt.Signed
	if err := s.Quarantined(func(sg crdt.Signed) bool { got = append(got, sg); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Body, later[0].Body) || !bytes.Equal(got[1].Sig, later[1].Sig) {
		t.Fatalf("quarantine holds %d ops, not the ones sent", len(got))
	}
	next := lost.next(t, "rec-2", crdt.KindUpdate, plain(map[string]string{"sex": "nữ"}), baseWall+4)
	if res := mustIngest(t, s, []crdt.Signed{next}); res.Quarantined != 1 {
		t.Fatalf("after restart, the quarantine does not continue: %+v %s", res, refusalsString(res.Refused))
	}
}

func TestRevocationKept(t *testing.T) {
	s, dir := openTest(t, nil)
	if raw, _, err := s.Revocation(); err != nil || raw != nil {
		t.Fatalf("fresh store: %x, %v", raw, err)
	}
	if err := s.PutRevocation([]byte{1, 2, 3}, 42); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, nil)
	if raw, at, err := s.Revocation(); err != nil || !bytes.Equal(raw, []byte{1, 2, 3}) || at != 42 {
		t.Fatalf("after restart: %x %d %v", raw, at, err)
	}
}
