package store

import (
	"errors"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// forked builds one origin's log that forks after a common prefix of two
// creates: branch a (written first) and branch b (written an hour later),
// each signer continuing from the same prefix with the same key.
func forked(t *testing.T) (prefix, a, b []crdt.Signed) {
	t.Helper()
	g := newSigner("dev", 1)
	prefix = []crdt.Signed{
		g.next(t, "r-0", crdt.KindCreate, plain(map[string]string{"full_name": "Giàng Thị Mỷ"}), baseWall),
		g.next(t, "r-1", crdt.KindCreate, plain(map[string]string{"full_name": "Vừ Mí Chứ"}), baseWall+1),
	}
	ga, gb := *g, *g
	a = []crdt.Signed{
		ga.next(t, "a-0", crdt.KindCreate, plain(map[string]string{"full_name": "Lò Văn Páo"}), baseWall+10),
		ga.next(t, "r-0", crdt.KindUpdate, map[string]crdt.FieldWrite{"commune": {Value: "Pả Vi"}}, baseWall+11),
		ga.next(t, "a-1", crdt.KindCreate, plain(map[string]string{"full_name": "Thò Thị Súng"}), baseWall+12),
	}
	hour := int64(3600_000)
	b = []crdt.Signed{
		gb.next(t, "b-0", crdt.KindCreate, plain(map[string]string{"full_name": "Sùng Seo Dính"}), baseWall+hour),
		gb.next(t, "r-1", crdt.KindUpdate, map[string]crdt.FieldWrite{"full_name": {Value: "Vừ Mí Chớ", Seen: []crdt.Dot{{Origin: "dev", Seq: 2}}}}, baseWall+hour+1),
	}
	return prefix, a, b
}

func withCred(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.PutCredential("dev", pubOf(testKey(1)), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func cat(parts ...[]crdt.Signed) []crdt.Signed { return slices.Concat(parts...) }

func checkSameRecords(t *testing.T, got, want *Store) {
	t.Helper()
	g, w := allRecords(t, got), allRecords(t, want)
	if len(g) != len(w) {
		t.Fatalf("%d records, want %d", len(g), len(w))
	}
	for id, r := range w {
		if g[id] == nil {
			t.Fatalf("record %s missing", id)
		}
		if err := sameRecord(g[id], r); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := got.RecordCount(); n != len(w) {
		t.Fatalf("record counter %d, want %d", n, len(w))
	}
}

// A replica holding the losing branch that receives the winning one moves
// its branch out of the log, rebuilds the records it touched and ends up
// exactly as a replica that only ever held the winner.
func TestForkInIngestWinnerReplacesBranch(t *testing.T) {
	prefix, a, b := forked(t)
	s, dir := openTest(t, nil)
	withCred(t, s)
	mustIngest(t, s, cat(prefix, b))
	res := mustIngest(t, s, a)
	if len(res.Forks) != 1 || res.Forks[0].Seq != 3 || !slices.Equal(res.Rewound, []string{"dev"}) {
		t.Fatalf("forks %+v, rewound %v, refused %s", res.Forks, res.Rewound, refusalsString(res.Refused))
	}
	if got := s.Head("dev"); got.Seq != 5 || got.Hash != crdt.Hash(a[2].Body) {
		t.Fatalf("head %+v", got)
	}
	ref := withCred(t, func() *Store { r, _ := openTest(t, nil); return r }())
	mustIngest(t, ref, cat(prefix, a))
	checkSameRecords(t, s, ref)
	if n, _, _ := s.OrphanCount("dev"); n != 2 {
		t.Fatalf("%d orphans kept", n)
	}
	s = reopen(t, s, dir, nil)
	checkSameRecords(t, s, ref)
	checkLog(t, s, "dev", pubOf(testKey(1)), 5)
	forks, err := s.Forks()
	if err != nil || len(forks) != 1 || forks[0].Origin != "dev" || forks[0].Seq != 3 || !slices.Equal(forks[0].Winner.Body, a[0].Body) {
		t.Fatalf("forks after reopen: %+v, %v", forks, err)
	}
	// The losing branch coming back is refused, not merged.
	res = mustIngest(t, s, b)
	if len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, ErrForked) || len(res.Forks) != 0 {
		t.Fatalf("the loser again: %+v", res)
	}
}

// A replica holding the winner refuses the loser and keeps the evidence;
// a third replica holding the loser that is handed the evidence moves its
// branch out, then takes the winner like any continuation.
func TestForkEvidenceSpreads(t *testing.T) {
	prefix, a, b := forked(t)
	win := withCred(t, func() *Store { r, _ := openTest(t, nil); return r }())
	mustIngest(t, win, cat(prefix, a))
	res := mustIngest(t, win, b)
	if len(res.Forks) != 1 || len(res.Rewound) != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, ErrForked) {
		t.Fatalf("winner ingesting the loser: %+v", res)
	}
	if win.Head("dev").Seq != 5 {
		t.Fatalf("winner's head moved: %+v", win.Head("dev"))
	}

	lose := withCred(t, func() *Store { r, _ := openTest(t, nil); return r }())
	mustIngest(t, lose, cat(prefix, b))
	f := res.Forks[0]
	if _, err := lose.TakeFork(f.Winner, f.Winner); !errors.Is(err, ErrNotFork) {
		t.Fatalf("one op twice taken as a fork: %v", err)
	}
	forged := crdt.Signed{Body: f.Loser.Body, Sig: slices.Clone(f.Winner.Sig)}
	if _, err := lose.TakeFork(f.Winner, forged); !errors.Is(err, ErrNotFork) {
		t.Fatalf("a forged op taken as a fork: %v", err)
	}
	fr, err := lose.TakeFork(f.Loser, f.Winner)
	if err != nil || !fr.New || !fr.Rewound || fr.Fork.Seq != 3 {
		t.Fatalf("take fork: %+v, %v", fr, err)
	}
	if lose.Head("dev").Seq != 2 {
		t.Fatalf("head after rewind %+v", lose.Head("dev"))
	}
	if res := mustIngest(t, lose, a); res.AppliedOps() != 3 {
		t.Fatalf("winner after rewind: %+v", res)
	}
	checkSameRecords(t, lose, win)
}

// The device that forked writes its orphaned ops again on the tip of the
// winning chain: same records and values, seen dots renamed, normal ops
// any replica takes.
func TestResignOrphans(t *testing.T) {
	key := testKey(1)
	self, _ := openTest(t, func(o *Options) { o.Self = "dev" })
	withCred(t, self)
	g := newSigner("dev", 1)
	prefix := []crdt.Signed{g.next(t, "r-0", crdt.KindCreate, plain(map[string]string{"full_name": "Giàng Thị Mỷ"}), baseWall)}
	mustIngest(t, self, prefix)
	// The restored laptop writes an hour after the chain its peers hold.
	hour := int64(3600_000)
	if _, err := self.Write("dev", key, "b-0", crdt.KindCreate, map[string]string{"full_name": "Sùng Seo Dính"}, baseWall+hour); err != nil {
		t.Fatal(err)
	}
	if _, err := self.Write("dev", key, "b-0", crdt.KindUpdate, map[string]string{"full_name": "Sùng Seo Dìn"}, baseWall+hour+1); err != nil {
		t.Fatal(err)
	}
	a := []crdt.Signed{
		g.next(t, "a-0", crdt.KindCreate, plain(map[string]string{"full_name": "Lò Văn Páo"}), baseWall+10),
		g.next(t, "a-1", crdt.KindCreate, plain(map[string]string{"full_name": "Thò Thị Súng"}), baseWall+11),
	}
	res := mustIngest(t, self, a)
	if !slices.Equal(res.Rewound, []string{"dev"}) || self.Head("dev").Seq != 3 {
		t.Fatalf("rewound %v, head %+v", res.Rewound, self.Head("dev"))
	}
	if _, err := self.Record("b-0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b-0 before resigning: %v", err)
	}
	if _, pending, _ := self.OrphanCount("dev"); pending != 2 {
		t.Fatalf("%d orphans pending", pending)
	}
	out, err := self.Resign("dev", key)
	if err != nil || len(out) != 2 || out[0].Op.Seq != 4 || out[1].Op.Seq != 5 {
		t.Fatalf("resign: %d ops, %v", len(out), err)
	}
	if seen := out[1].Op.Fields["full_name"].Seen; !slices.Equal(seen, []crdt.Dot{{Origin: "dev", Seq: 4}}) {
		t.Fatalf("seen not renamed: %v", seen)
	}
	rec, err := self.Record("b-0")
	if err != nil || rec.Values()["full_name"] != "Sùng Seo Dìn" || rec.Conflicts() != nil {
		t.Fatalf("b-0 after resigning: %+v, %v", rec, err)
	}
	if again, err := self.Resign("dev", key); err != nil || len(again) != 0 {
		t.Fatalf("second resign: %d, %v", len(again), err)
	}
	if _, pending, _ := self.OrphanCount("dev"); pending != 0 {
		t.Fatalf("%d orphans pending after resigning", pending)
	}
	if h, r, _ := self.AtRisk("dev"); h+r != 4 {
		t.Fatalf("own creates %d+%d", h, r)
	}

	peer := withCred(t, func() *Store { r, _ := openTest(t, nil); return r }())
	mustIngest(t, peer, cat(prefix, a))
	log, err := self.ReadOps("dev", 4, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res := mustIngest(t, peer, log); res.AppliedOps() != 2 {
		t.Fatalf("peer took %d re-signed ops: %s", res.AppliedOps(), refusalsString(res.Refused))
	}
	checkSameRecords(t, peer, self)
}
