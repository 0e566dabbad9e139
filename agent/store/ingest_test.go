package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// logOf signs n ops of one origin: creates of records 0..n-1 of that origin.
func logOf(t testing.TB, g *signer, n int) []crdt.Signed {
	t.Helper()
	out := make([]crdt.Signed, n)
	for i := range out {
		out[i] = g.next(t, recordID(g.origin, i), crdt.KindCreate, plain(map[string]string{"full_name": fmt.Sprintf("Vừ Mí %d", i), "sex": "nam"}), baseWall+int64(i))
	}
	return out
}

func withCreds(t testing.TB, s *Store, gs ...*signer) {
	t.Helper()
	for _, g := range gs {
		if err := s.PutCredential(g.origin, g.pub(), []byte("cred of "+g.origin)); err != nil {
			t.Fatal(err)
		}
	}
}

func wantApplied(t testing.TB, res IngestResult, want ...crdt.Range) {
	t.Helper()
	if !slices.Equal(res.Applied, want) {
		t.Fatalf("applied %v, want %v (refused %s)", res.Applied, want, refusalsString(res.Refused))
	}
}

func wantRefused(t testing.TB, res IngestResult, origin string, seq uint64, count int, cause error) {
	t.Helper()
	for _, r := range res.Refused {
		if r.Origin == origin && r.Seq == seq {
			if r.Count != count || !errors.Is(r.Err, cause) {
				t.Fatalf("refusal of %s %d: %d ops, %v; want %d, %v", origin, seq, r.Count, r.Err, count, cause)
			}
			return
		}
	}
	t.Fatalf("no refusal of %s %d among %s", origin, seq, refusalsString(res.Refused))
}

// storedNothingOf checks that the store holds no trace of origin.
func storedNothingOf(t testing.TB, s *Store, origin string, records ...string) {
	t.Helper()
	if h := s.Head(origin); h != (crdt.Head{}) {
		t.Fatalf("head of %s: %+v", origin, h)
	}
	if ops, err := s.ReadOps(origin, 1, 0, 0); err != nil || len(ops) != 0 {
		t.Fatalf("%d ops of %s stored (%v)", len(ops), origin, err)
	}
	for _, id := range records {
		if _, err := s.Record(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("record %s: %v", id, err)
		}
	}
}

func TestIngestDuplicatesSkipped(t *testing.T) {
	s, _ := openTest(t, nil)
	g := newSigner("dev1", 1)
	withCreds(t, s, g)
	log := logOf(t, g, 5)

	wantApplied(t, mustIngest(t, s, log[:3]), crdt.Range{Origin: "dev1", From: 1, To: 3})
	res := mustIngest(t, s, log)
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 4, To: 5})
	if res.Duplicates != 3 {
		t.Fatalf("duplicates %d", res.Duplicates)
	}
	before := allRecords(t, s)
	commits := s.commits.Load()
	res = mustIngest(t, s, append(slices.Clone(log), log...))
	wantApplied(t, res)
	if res.Duplicates != 10 || len(res.Refused) != 0 {
		t.Fatalf("second delivery: %+v", res)
	}
	if s.commits.Load() != commits {
		t.Fatal("a batch of duplicates wrote to disk")
	}
	after := allRecords(t, s)
	for id, r := range before {
		if err := sameRecord(r, after[id]); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.RecordCount(); n != 5 {
		t.Fatalf("records %d", n)
	}

	// Repeats inside one batch, as two relays' copies would arrive.
	s2, _ := openTest(t, nil)
	withCreds(t, s2, g)
	res = mustIngest(t, s2, []crdt.Signed{log[0], log[0], log[1], log[1], log[2]})
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 1, To: 3})
	if res.Duplicates != 2 {
		t.Fatalf("in-batch duplicates %d", res.Duplicates)
	}
}

func TestIngestGapRefused(t *testing.T) {
	s, _ := openTest(t, nil)
	g, h := newSigner("dev1", 1), newSigner("dev2", 2)
	withCreds(t, s, g, h)
	gl, hl := logOf(t, g, 5), logOf(t, h, 2)

	res := mustIngest(t, s, []crdt.Signed{gl[2], gl[3], gl[4], hl[0], hl[1]})
	wantApplied(t, res, crdt.Range{Origin: "dev2", From: 1, To: 2})
	wantRefused(t, res, "dev1", 3, 3, crdt.ErrChain)
	storedNothingOf(t, s, "dev1", recordID("dev1", 2), recordID("dev1", 3))

	res = mustIngest(t, s, []crdt.Signed{gl[0], gl[1], gl[3], gl[4]})
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 1, To: 2})
	wantRefused(t, res, "dev1", 4, 2, crdt.ErrChain)
	if _, err := s.Record(recordID("dev1", 3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("op after the gap applied: %v", err)
	}
	if h := s.Head("dev1"); h.Seq != 2 {
		t.Fatalf("head %d", h.Seq)
	}
	// The sender resends from the head.
	wantApplied(t, mustIngest(t, s, gl[2:]), crdt.Range{Origin: "dev1", From: 3, To: 5})
	if n, _ := s.RecordCount(); n != 7 {
		t.Fatalf("records %d", n)
	}
}

// alter returns sg with one field value changed in its body, the signature
// kept: what a relay tampering with a dossier would send.
func alter(t testing.TB, sg crdt.Signed, field, value string) crdt.Signed {
	t.Helper()
	o, err := crdt.Open(sg)
	if err != nil {
		t.Fatal(err)
	}
	op := *o.Op
	op.Fields = maps(op.Fields)
	op.Fields[field] = crdt.FieldWrite{Value: value}
	body, err := crdt.EncodeOp(&op)
	if err != nil {
		t.Fatal(err)
	}
	return crdt.Signed{Body: body, Sig: sg.Sig}
}

func maps(m map[string]crdt.FieldWrite) map[string]crdt.FieldWrite {
	out := make(map[string]crdt.FieldWrite, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestIngestForgedRefused(t *testing.T) {
	s, _ := openTest(t, nil)
	g := newSigner("dev1", 1)
	withCreds(t, s, g)
	log := logOf(t, g, 3)

	altered := alter(t, log[0], "full_name", "Kẻ Giả Mạo")
	badSig := crdt.Signed{Body: log[0].Body, Sig: bytes.Clone(log[0].Sig)}
	badSig.Sig[7] ^= 1
	impostor := &signer{origin: "dev1", key: testKey(66)} // claims dev1's name, holds another key
	forgedByImpostor := impostor.next(t, recordID("dev1", 0), crdt.KindCreate, plain(map[string]string{"sex": "nữ"}), baseWall)
	stranger := newSigner("stranger", 9) // no credential stored
	fromStranger := stranger.next(t, "st-1", crdt.KindCreate, plain(map[string]string{"sex": "nữ"}), baseWall)

	for name, c := range map[string]struct {
		sg     crdt.Signed
		origin string
		cause  error
	}{
		"altered body":   {altered, "dev1", crdt.ErrSignature},
		"bad signature":  {badSig, "dev1", crdt.ErrSignature},
		"another key":    {forgedByImpostor, "dev1", crdt.ErrSignature},
		"unknown origin": {fromStranger, "stranger", ErrUnknownOrigin},
	} {
		res := mustIngest(t, s, []crdt.Signed{c.sg})
		wantApplied(t, res)
		wantRefused(t, res, c.origin, 1, 1, c.cause)
		storedNothingOf(t, s, c.origin, recordID("dev1", 0), "st-1")
		_ = name
	}
	res := mustIngest(t, s, []crdt.Signed{{Body: []byte("not cbor"), Sig: make([]byte, 64)}})
	if len(res.Refused) != 1 || res.Refused[0].Origin != "" || !errors.Is(res.Refused[0].Err, crdt.ErrMalformed) {
		t.Fatalf("garbage: %s", refusalsString(res.Refused))
	}

	// A tampered op in the middle of a run: what comes before it goes in,
	// it and everything after it (which no longer links) are refused.
	res = mustIngest(t, s, []crdt.Signed{log[0], alter(t, log[1], "commune", "Xã Giả"), log[2]})
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 1, To: 1})
	wantRefused(t, res, "dev1", 2, 2, crdt.ErrSignature)
	if _, err := s.Record(recordID("dev1", 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tampered op applied: %v", err)
	}
	// A damaged signature on the last op of a run.
	tail := crdt.Signed{Body: log[2].Body, Sig: bytes.Clone(log[2].Sig)}
	tail.Sig[0] ^= 0x80
	res = mustIngest(t, s, []crdt.Signed{log[1], tail})
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 2, To: 2})
	wantRefused(t, res, "dev1", 3, 1, crdt.ErrSignature)
	if ops, _ := s.ReadOps("dev1", 1, 0, 0); len(ops) != 2 || !bytes.Equal(ops[1].Sig, log[1].Sig) {
		t.Fatalf("stored %d ops", len(ops))
	}
}

// TestIngestMatchesReplica plays random captures and edits on three laptops,
// each with its own store, syncing partially among themselves; then a fourth
// store ingests every op in a random interleaving of origins, with
// duplicates, gaps and resends. Every store must end in the state of a
// crdt.Replica fed the same ops, and the conflict index must match it.
func TestIngestMatchesReplica(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			playAndCompare(t, rand.New(rand.NewPCG(seed, 0xf1e1d)))
		})
	}
}

func playAndCompare(t *testing.T, r *rand.Rand) {
	names := []string{"lap0", "lap1", "lap2"}
	keys := map[string]*signer{}
	stores := map[string]*Store{}
	for i, n := range names {
		keys[n] = newSigner(n, byte(10+i))
	}
	for _, n := range names {
		s, _ := openTest(t, nil)
		for _, g := range keys {
			withCreds(t, s, g)
		}
		stores[n] = s
	}
	// sync sends to a store part (or, with limit 0, all) of what it lacks.
	sync := func(from, to *Store, limit int) {
		for _, rg := range from.VersionVector().Missing(to.VersionVector()) {
			ops, err := from.ReadOps(rg.Origin, rg.From, limit, 0)
			if err != nil {
				t.Fatal(err)
			}
			if res := mustIngest(t, to, ops); len(res.Refused) > 0 {
				t.Fatalf("sync refused: %s", refusalsString(res.Refused))
			}
		}
	}
	fields := []string{"full_name", "sex", "commune", "phone", "notes"}
	values := []string{"Mùa A Dế", "Mùa Á Dề", "nữ", "nam", "Sủng Máng", "Lũng Pù", "0912345678", ""}
	wall := baseWall
	var ids []string
	for step := 0; step < 120; step++ {
		wall += int64(r.IntN(3))
		n := names[r.IntN(len(names))]
		s := stores[n]
		switch a := r.IntN(10); {
		case a < 3:
			id := fmt.Sprintf("hs-%03d", len(ids))
			ids = append(ids, id)
			if _, err := s.Write(n, keys[n].key, id, crdt.KindCreate, map[string]string{"full_name": "Sùng Thị Mỷ", "sex": "nữ"}, wall); err != nil {
				t.Fatal(err)
			}
		case a < 7:
			var known []string
			if err := s.Records("", func(rec *crdt.Record) bool { known = append(known, rec.ID); return true }); err != nil {
				t.Fatal(err)
			}
			if len(known) == 0 {
				continue
			}
			vals := map[string]string{}
			for k := 1 + r.IntN(2); k > 0; k-- {
				if v := values[r.IntN(len(values))]; v != "" {
					vals[fields[r.IntN(len(fields))]] = v
				}
			}
			if len(vals) == 0 {
				continue
			}
			if _, err := s.Write(n, keys[n].key, known[r.IntN(len(known))], crdt.KindUpdate, vals, wall); err != nil {
				t.Fatal(err)
			}
		default:
			sync(stores[names[r.IntN(len(names))]], s, 1+r.IntN(8))
		}
	}

	// The reference: a replica fed every op, in a random order.
	ref := crdt.NewReplica()
	logs := map[string][]crdt.Signed{}
	var all []*crdt.Op
	for _, n := range names {
		ops, err := stores[n].ReadOps(n, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		logs[n] = ops
		for _, sg := range ops {
			o, err := crdt.Open(sg)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, o.Op)
		}
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, op := range all {
		ref.Deliver(op)
	}

	// A fresh observer ingests chunks of random origins: chunks may start
	// below its head (duplicates) or above it (a gap, refused, resent later).
	obs, _ := openTest(t, nil)
	for _, g := range keys {
		withCreds(t, obs, g)
	}
	dups, gaps := 0, 0
	for round := 0; round < 1000 && !obs.VersionVector().Equal(ref.VV); round++ {
		var batch []crdt.Signed
		for k := 1 + r.IntN(3); k > 0; k-- {
			n := names[r.IntN(len(names))]
			have := int(obs.Head(n).Seq)
			if have == len(logs[n]) {
				continue
			}
			from := max(0, have-2+r.IntN(5)) // 0-based index
			from = min(from, len(logs[n])-1)
			to := min(len(logs[n]), from+1+r.IntN(12))
			batch = append(batch, logs[n][from:to]...)
		}
		res, err := obs.Ingest(batch, wall)
		if err != nil {
			t.Fatal(err)
		}
		dups += res.Duplicates
		for _, rf := range res.Refused {
			if !errors.Is(rf.Err, crdt.ErrChain) {
				t.Fatalf("refused for another reason than a gap: %s", refusalsString(res.Refused))
			}
			gaps++
		}
	}
	if dups == 0 || gaps == 0 {
		t.Fatalf("observer saw %d duplicates and %d gaps: the interleaving is too tame", dups, gaps)
	}
	// Full exchange between the laptops: each gets all from each other.
	for _, a := range names {
		for _, b := range names {
			if a != b {
				sync(stores[a], stores[b], 0)
			}
		}
	}

	check := func(name string, s *Store) {
		t.Helper()
		if vv := s.VersionVector(); !vv.Equal(ref.VV) {
			t.Fatalf("%s: vv %v, want %v", name, vv, ref.VV)
		}
		got := allRecords(t, s)
		if len(got) != len(ref.Records) {
			t.Fatalf("%s: %d records, want %d", name, len(got), len(ref.Records))
		}
		if n, _ := s.RecordCount(); n != len(ref.Records) {
			t.Fatalf("%s: record count %d, want %d", name, n, len(ref.Records))
		}
		var wantConflicted []string
		for id, want := range ref.Records {
			if err := sameRecord(got[id], want); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(want.Conflicts()) > 0 {
				wantConflicted = append(wantConflicted, id)
			}
		}
		slices.Sort(wantConflicted)
		var conflicted []string
		if err := s.ConflictedRecords(func(id string) bool { conflicted = append(conflicted, id); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(conflicted, wantConflicted) {
			t.Fatalf("%s: conflicted %v, want %v", name, conflicted, wantConflicted)
		}
	}
	conflicted := 0
	for _, rec := range ref.Records {
		if len(rec.Conflicts()) > 0 {
			conflicted++
		}
	}
	t.Logf("%d ops, %d records, %d in conflict; observer skipped %d duplicates, refused %d gaps", len(all), len(ref.Records), conflicted, dups, gaps)
	check("observer", obs)
	for _, n := range names {
		check(n, stores[n])
	}
}

// A batch too big for one badger transaction is committed in several, each
// holding whole ops; all of it is there after a reopen.
func TestIngestSplitsWhenTxnTooBig(t *testing.T) {
	tiny := func(o *Options) { o.MemTableSize = 1 << 20 } // ~1,600 entries per transaction
	s, dir := openTest(t, tiny)
	g := newSigner("dev1", 1)
	withCreds(t, s, g)
	r := rand.New(rand.NewPCG(5, 5))
	const n = 1200
	log := make([]crdt.Signed, n)
	for i := range log {
		log[i] = g.next(t, recordID("dev1", i), crdt.KindCreate, plain(dossier(r, i)), baseWall+int64(i))
	}
	commits := s.commits.Load()
	res := mustIngest(t, s, log)
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 1, To: n})
	if c := s.commits.Load() - commits; c < 2 {
		t.Fatalf("%d commits: the batch did not spill over one transaction", c)
	}
	s = reopen(t, s, dir, tiny)
	checkLog(t, s, "dev1", g.pub(), n)
	if cnt, _ := s.RecordCount(); cnt != n {
		t.Fatalf("records %d", cnt)
	}
	if got := len(allRecords(t, s)); got != n {
		t.Fatalf("%d records stored", got)
	}
}

// An op whose writes do not fit even in an empty transaction is refused, not
// a storage failure that would stall the sync for everyone.
func TestIngestRefusesOpTooLarge(t *testing.T) {
	s, _ := openTest(t, func(o *Options) {
		o.MemTableSize = 1 << 20
		o.ValueThreshold = 150 << 10 // big values counted whole in the transaction
	})
	g, h := newSigner("dev1", 1), newSigner("dev2", 2)
	withCreds(t, s, g, h)
	small := g.next(t, "r1", crdt.KindCreate, plain(map[string]string{"sex": "nam"}), baseWall)
	big := map[string]string{}
	for i := 0; i < 200; i++ {
		big[fmt.Sprintf("f%03d", i)] = strings.Repeat("ă", 300)
	}
	huge := g.next(t, "r2", crdt.KindCreate, plain(big), baseWall)
	after := g.next(t, "r3", crdt.KindCreate, plain(map[string]string{"sex": "nữ"}), baseWall)
	other := h.next(t, "r4", crdt.KindCreate, plain(map[string]string{"sex": "nữ"}), baseWall)
	res := mustIngest(t, s, []crdt.Signed{small, huge, after, other})
	wantApplied(t, res, crdt.Range{Origin: "dev1", From: 1, To: 1}, crdt.Range{Origin: "dev2", From: 1, To: 1})
	wantRefused(t, res, "dev1", 2, 2, ErrTooLarge)
	if h := s.Head("dev1"); h.Seq != 1 {
		t.Fatalf("head %d", h.Seq)
	}
	if _, err := s.Record("r2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oversized op applied: %v", err)
	}
	if n, _ := s.RecordCount(); n != 2 {
		t.Fatalf("records %d", n)
	}
}

// checkLog re-verifies origin's whole stored log from an empty head: every
// op present, each linked to the one before, the last signature good, and
// the stored head naming the last op.
func checkLog(t testing.TB, s *Store, origin string, pub []byte, want int) {
	t.Helper()
	ops, err := s.ReadOps(origin, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != want {
		t.Fatalf("%s: %d ops stored, want %d", origin, len(ops), want)
	}
	run := make([]crdt.Opened, len(ops))
	for i, sg := range ops {
		if run[i], err = crdt.Open(sg); err != nil {
			t.Fatalf("%s op %d: %v", origin, i+1, err)
		}
	}
	if n, err := crdt.VerifyRun(crdt.Head{}, run, pub); n != len(run) || err != nil {
		t.Fatalf("%s: %d of %d ops verify: %v", origin, n, len(run), err)
	}
	if want > 0 {
		if h := s.Head(origin); h.Seq != uint64(want) || h.Hash != run[want-1].Hash {
			t.Fatalf("%s: head %+v does not name the last op", origin, h)
		}
	}
}

// A laptop reinstalled with its old key gets its own log back from peers:
// once it knows itself again, its own creates count for AtRisk, and its next
// op continues the log.
func TestSelfLogRestoredFromPeers(t *testing.T) {
	a, _ := openTest(t, nil)
	key := testKey(1)
	for i := 0; i < 3; i++ {
		if _, err := a.Write("me", key, recordID("me", i), crdt.KindCreate, map[string]string{"sex": "nam"}, baseWall); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Write("me", key, recordID("me", 0), crdt.KindUpdate, map[string]string{"sex": "nữ"}, baseWall); err != nil {
		t.Fatal(err)
	}
	log, err := a.ReadOps("me", 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	b, dir := openTest(t, nil)
	if err := b.PutCredential("me", pubOf(key), nil); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, b, log)
	if h, r, _ := b.AtRisk("me"); h != 0 || r != 0 {
		t.Fatalf("before self is known: %d, %d", h, r)
	}
	b = reopen(t, b, dir, func(o *Options) { o.Self = "me" })
	if h, r, _ := b.AtRisk("me"); h != 0 || r != 3 {
		t.Fatalf("after adopting self: %d held, %d at risk", h, r)
	}
	o, err := b.Write("me", key, recordID("me", 9), crdt.KindCreate, map[string]string{"sex": "nam"}, baseWall)
	if err != nil {
		t.Fatal(err)
	}
	if o.Op.Seq != 5 {
		t.Fatalf("next seq %d", o.Op.Seq)
	}
	if h, r, _ := b.AtRisk("me"); h != 0 || r != 4 {
		t.Fatalf("after a new capture: %d held, %d at risk", h, r)
	}
	checkLog(t, b, "me", pubOf(key), 5)
}
