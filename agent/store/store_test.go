package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

func TestWriteReadRoundTrip(t *testing.T) {
	s, _ := openTest(t, nil)
	key := testKey(1)
	if err := s.PutCredential("dev1", pubOf(key), []byte("cred-1")); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	vals := dossier(r, 1)
	o1, err := s.Write("dev1", key, "rec1", crdt.KindCreate, vals, baseWall)
	if err != nil {
		t.Fatal(err)
	}
	if o1.Op.Seq != 1 || len(o1.Op.Prev) != 0 || o1.Op.Time.Wall != baseWall || o1.Op.Kind != crdt.KindCreate {
		t.Fatalf("first op: %+v", o1.Op)
	}
	if !ed25519.Verify(pubOf(key), o1.Body, o1.Sig) {
		t.Fatal("op not signed by the device key")
	}
	rec, err := s.Record("rec1")
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Values(); len(got) != len(vals) || got["full_name"] != vals["full_name"] || got["notes"] != vals["notes"] {
		t.Fatalf("values: %v, want %v", got, vals)
	}
	if rec.Created != (crdt.Dot{Origin: "dev1", Seq: 1}) {
		t.Fatalf("created %v", rec.Created)
	}

	// An update names the live value it replaces, and chains to the first op.
	o2, err := s.Write("dev1", key, "rec1", crdt.KindUpdate, map[string]string{"full_name": "Vừ Mí Chứ"}, baseWall-5)
	if err != nil {
		t.Fatal(err)
	}
	if o2.Op.Seq != 2 || !bytes.Equal(o2.Op.Prev, o1.Hash[:]) || o2.Op.Time.Compare(o1.Op.Time) <= 0 {
		t.Fatalf("second op: %+v", o2.Op)
	}
	if seen := o2.Op.Fields["full_name"].Seen; len(seen) != 1 || seen[0] != (crdt.Dot{Origin: "dev1", Seq: 1}) {
		t.Fatalf("seen %v", seen)
	}
	rec, _ = s.Record("rec1")
	if rec.Values()["full_name"] != "Vừ Mí Chứ" || len(rec.Conflicts()) != 0 {
		t.Fatalf("after update: %v conflicts %v", rec.Values(), rec.Conflicts())
	}

	ops, err := s.ReadOps("dev1", 1, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || !bytes.Equal(ops[0].Body, o1.Body) || !bytes.Equal(ops[0].Sig, o1.Sig) || !bytes.Equal(ops[1].Body, o2.Body) {
		t.Fatalf("read ops: %d", len(ops))
	}
	if h := s.Head("dev1"); h.Seq != 2 || h.Hash != o2.Hash {
		t.Fatalf("head %+v", h)
	}
	if vv := s.VersionVector(); !vv.Equal(crdt.VersionVector{"dev1": 2}) {
		t.Fatalf("vv %v", vv)
	}
	if n, _ := s.RecordCount(); n != 1 {
		t.Fatalf("count %d", n)
	}
	if s.Self() != "dev1" {
		t.Fatalf("self %q", s.Self())
	}

	if _, err := s.Write("dev1", key, "rec1", crdt.KindCreate, vals, baseWall); !errors.Is(err, ErrExists) {
		t.Fatalf("create existing: %v", err)
	}
	if _, err := s.Write("dev1", key, "nope", crdt.KindUpdate, vals, baseWall); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	if _, err := s.Record("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read missing: %v", err)
	}
	if _, err := s.Write("dev2", testKey(2), "rec2", crdt.KindCreate, vals, baseWall); !errors.Is(err, ErrNotSelf) {
		t.Fatalf("other origin: %v", err)
	}
	if _, err := s.Write("dev1", testKey(9), "rec2", crdt.KindCreate, vals, baseWall); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := s.Write("dev1", key, "rec2", crdt.KindCreate, map[string]string{}, baseWall); !errors.Is(err, crdt.ErrMalformed) {
		t.Fatalf("no fields: %v", err)
	}
	// Refused writes leave no trace.
	if h := s.Head("dev1"); h.Seq != 2 {
		t.Fatalf("head moved to %d", h.Seq)
	}

	pub, raw, ok, err := s.Credential("dev1")
	if err != nil || !ok || !bytes.Equal(pub, pubOf(key)) || string(raw) != "cred-1" {
		t.Fatalf("credential: %v %v %q %v", ok, err, raw, pub)
	}
	if _, _, ok, _ := s.Credential("nobody"); ok {
		t.Fatal("credential of unknown origin")
	}
}

// Two laptops edit the same field without having seen each other's edit:
// both values survive as siblings on both, the record is listed as in
// conflict, and a later edit that saw both settles it everywhere.
func TestConcurrentUpdatesBecomeSiblings(t *testing.T) {
	a, _ := openTest(t, nil)
	b, _ := openTest(t, nil)
	ka, kb := testKey(1), testKey(2)
	for _, s := range []*Store{a, b} {
		if err := s.PutCredential("laptopA", pubOf(ka), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCredential("laptopB", pubOf(kb), nil); err != nil {
			t.Fatal(err)
		}
	}
	// exchange sends everything from one store the other lacks, the way
	// sync does: ranges from the version vectors, ops read as stored.
	exchange := func(from, to *Store) {
		t.Helper()
		for _, rg := range from.VersionVector().Missing(to.VersionVector()) {
			ops, err := from.ReadOps(rg.Origin, rg.From, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			res := mustIngest(t, to, ops)
			if len(res.Refused) > 0 || res.AppliedOps() != int(rg.Len()) {
				t.Fatalf("exchange %v: %+v %s", rg, res, refusalsString(res.Refused))
			}
		}
	}
	if _, err := a.Write("laptopA", ka, "hs-1", crdt.KindCreate, map[string]string{"full_name": "Giàng Seo Páo", "commune": "Pả Vi"}, baseWall); err != nil {
		t.Fatal(err)
	}
	exchange(a, b)
	if _, err := a.Write("laptopA", ka, "hs-1", crdt.KindUpdate, map[string]string{"full_name": "Giàng Seo Pao"}, baseWall+10); err != nil {
		t.Fatal(err)
	}
	ob, err := b.Write("laptopB", kb, "hs-1", crdt.KindUpdate, map[string]string{"full_name": "Giàng Sèo Páo"}, baseWall+20)
	if err != nil {
		t.Fatal(err)
	}
	if seen := ob.Op.Fields["full_name"].Seen; len(seen) != 1 || seen[0] != (crdt.Dot{Origin: "laptopA", Seq: 1}) {
		t.Fatalf("B's update saw %v, want A's create only", seen)
	}
	exchange(a, b)
	exchange(b, a)
	for name, s := range map[string]*Store{"A": a, "B": b} {
		rec, err := s.Record("hs-1")
		if err != nil {
			t.Fatal(err)
		}
		live := rec.Fields["full_name"].Live
		if len(live) != 2 || live[0].Value != "Giàng Seo Pao" || live[1].Value != "Giàng Sèo Páo" {
			t.Fatalf("%s: full_name siblings %+v", name, live)
		}
		if c := rec.Conflicts(); len(c) != 1 || c[0] != "full_name" {
			t.Fatalf("%s: conflicts %v", name, c)
		}
		var ids []string
		if err := s.ConflictedRecords(func(id string) bool { ids = append(ids, id); return true }); err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 || ids[0] != "hs-1" {
			t.Fatalf("%s: conflicted records %v", name, ids)
		}
	}
	if err := sameRecord(mustRecord(t, a, "hs-1"), mustRecord(t, b, "hs-1")); err != nil {
		t.Fatal(err)
	}

	// A settles it, having seen both siblings.
	oa, err := a.Settle("laptopA", ka, "hs-1", crdt.KindResolve, map[string]string{"full_name": "Giàng Seo Páo"}, nil, baseWall+30)
	if err != nil {
		t.Fatal(err)
	}
	if seen := oa.Op.Fields["full_name"].Seen; len(seen) != 2 {
		t.Fatalf("settling write saw %v", seen)
	}
	exchange(a, b)
	for name, s := range map[string]*Store{"A": a, "B": b} {
		rec := mustRecord(t, s, "hs-1")
		if v := rec.Values()["full_name"]; v != "Giàng Seo Páo" || len(rec.Conflicts()) != 0 {
			t.Fatalf("%s: after settling %q, conflicts %v", name, v, rec.Conflicts())
		}
		n := 0
		if err := s.ConflictedRecords(func(string) bool { n++; return true }); err != nil || n != 0 {
			t.Fatalf("%s: %d conflicted records left (%v)", name, n, err)
		}
	}
}

func mustRecord(t testing.TB, s *Store, id string) *crdt.Record {
	t.Helper()
	rec, err := s.Record(id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestReopenPreservesState(t *testing.T) {
	s, dir := openTest(t, nil)
	key := testKey(1)
	peer := newSigner("peer", 2)
	if err := s.PutCredential("me", pubOf(key), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCredential(peer.origin, peer.pub(), []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var last crdt.Opened
	for i := 0; i < 5; i++ {
		o, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, dossier(r, i), baseWall+int64(i))
		if err != nil {
			t.Fatal(err)
		}
		last = o
	}
	// A peer whose clock runs an hour ahead pulls the clock forward.
	ahead := baseWall + 3_600_000
	var batch []crdt.Signed
	for i := 0; i < 3; i++ {
		batch = append(batch, peer.next(t, recordID("peer", i), crdt.KindCreate, plain(dossier(r, i)), ahead))
	}
	mustIngest(t, s, batch)
	if err := s.NotePeerHolds("peer", 3); err != nil {
		t.Fatal(err)
	}
	vv := s.VersionVector()
	held, atRisk, _ := s.AtRisk("me")

	s = reopen(t, s, dir, nil)
	if got := s.VersionVector(); !got.Equal(vv) || !got.Equal(crdt.VersionVector{"me": 5, "peer": 3}) {
		t.Fatalf("vv after reopen %v, before %v", got, vv)
	}
	if h := s.Head("me"); h.Seq != 5 || h.Hash != last.Hash {
		t.Fatalf("head after reopen %+v", h)
	}
	if n, _ := s.RecordCount(); n != 8 {
		t.Fatalf("records after reopen %d", n)
	}
	if h2, r2, _ := s.AtRisk("me"); h2 != held || r2 != atRisk || h2 != 3 || r2 != 2 {
		t.Fatalf("at risk after reopen %d/%d, before %d/%d", h2, r2, held, atRisk)
	}
	if s.Self() != "me" || s.PeerHolds("peer") != 3 {
		t.Fatalf("self %q, peer holds %d", s.Self(), s.PeerHolds("peer"))
	}
	creds, err := s.Credentials()
	if err != nil || len(creds) != 2 || string(creds["me"]) != "mine" || string(creds["peer"]) != "theirs" {
		t.Fatalf("credentials %q %v", creds, err)
	}
	// The clock survived: the next op is later than everything issued or
	// observed, though this laptop's wall clock is behind them.
	o, err := s.Write("me", key, recordID("me", 0), crdt.KindUpdate, map[string]string{"phone": "0912345678"}, baseWall)
	if err != nil {
		t.Fatal(err)
	}
	if o.Op.Seq != 6 || o.Op.Time.Compare(crdt.Timestamp{Wall: ahead}) <= 0 || o.Op.Time.Compare(last.Op.Time) <= 0 {
		t.Fatalf("op after reopen: seq %d time %v", o.Op.Seq, o.Op.Time)
	}
	// A far-future peer clock (beyond the allowed drift) does not drag it.
	far := newSigner("far", 3)
	if err := s.PutCredential(far.origin, far.pub(), nil); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, s, []crdt.Signed{far.next(t, "far-1", crdt.KindCreate, plain(map[string]string{"sex": "nữ"}), baseWall+2*MaxClockDriftMillis)})
	o2, err := s.Write("me", key, recordID("me", 0), crdt.KindUpdate, map[string]string{"phone": "0987654321"}, baseWall)
	if err != nil {
		t.Fatal(err)
	}
	if o2.Op.Time.Wall != ahead || o2.Op.Time.Compare(o.Op.Time) <= 0 {
		t.Fatalf("clock dragged by a far-future peer: %v", o2.Op.Time)
	}
	// Opening with another self is refused.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o3 := testOptions(dir)
	o3.Self = "someone-else"
	if s, err := Open(o3); !errors.Is(err, ErrNotSelf) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with another self: %v", err)
	}
}

func TestAtRisk(t *testing.T) {
	s, _ := openTest(t, nil)
	key := testKey(1)
	var createSeqs []uint64
	for i := 0; i < 5; i++ {
		o, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, map[string]string{"full_name": "Lò Thị Mỷ"}, baseWall)
		if err != nil {
			t.Fatal(err)
		}
		createSeqs = append(createSeqs, o.Op.Seq)
		if i%2 == 0 { // updates take seqs too, and are not dossiers
			if _, err := s.Write("me", key, recordID("me", i), crdt.KindUpdate, map[string]string{"sex": "nữ"}, baseWall); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(wantHeld, wantRisk int) {
		t.Helper()
		held, atRisk, err := s.AtRisk("me")
		if err != nil || held != wantHeld || atRisk != wantRisk {
			t.Fatalf("AtRisk = %d held, %d at risk (%v); want %d, %d", held, atRisk, err, wantHeld, wantRisk)
		}
	}
	check(0, 5)
	if err := s.NotePeerHolds("laptop-2", createSeqs[2]); err != nil {
		t.Fatal(err)
	}
	check(3, 2)
	if err := s.NotePeerHolds("laptop-2", 1); err != nil { // lower: ignored
		t.Fatal(err)
	}
	if s.PeerHolds("laptop-2") != createSeqs[2] {
		t.Fatalf("peer holds lowered to %d", s.PeerHolds("laptop-2"))
	}
	check(3, 2)
	if err := s.NotePeerHolds("hub", createSeqs[4]-1); err != nil {
		t.Fatal(err)
	}
	check(4, 1)
	if err := s.NotePeerHolds("laptop-3", s.Head("me").Seq); err != nil {
		t.Fatal(err)
	}
	check(5, 0)
	if h, r, _ := s.AtRisk("other"); h != 0 || r != 0 {
		t.Fatalf("AtRisk of another origin: %d, %d", h, r)
	}
	if err := s.NotePeerHolds("", 3); err == nil {
		t.Fatal("empty peer id accepted")
	}
}

func TestReadOpsLimits(t *testing.T) {
	s, _ := openTest(t, nil)
	key := testKey(1)
	var sizes []int
	for i := 0; i < 10; i++ {
		o, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, map[string]string{"notes": strings.Repeat("ghi chú ", 10+i*10)}, baseWall)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(o.Body)+len(o.Sig))
	}
	seqs := func(ops []crdt.Signed) []uint64 {
		var out []uint64
		for _, sg := range ops {
			o, err := crdt.Open(sg)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o.Op.Seq)
		}
		return out
	}
	read := func(from uint64, maxOps, maxBytes int) []uint64 {
		t.Helper()
		ops, err := s.ReadOps("me", from, maxOps, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		return seqs(ops)
	}
	for _, c := range []struct {
		from             uint64
		maxOps, maxBytes int
		want             []uint64
	}{
		{1, 0, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{0, 2, 0, []uint64{1, 2}},
		{3, 4, 0, []uint64{3, 4, 5, 6}},
		{9, 100, 0, []uint64{9, 10}},
		{11, 5, 0, nil},
		{4, 0, 1, []uint64{4}}, // at least one op, however small the limit
		{4, 0, sizes[3] + sizes[4], []uint64{4, 5}},
		{4, 0, sizes[3] + sizes[4] + sizes[5] - 1, []uint64{4, 5}},
		{4, 2, 1 << 20, []uint64{4, 5}},
	} {
		if got := read(c.from, c.maxOps, c.maxBytes); !slices.Equal(got, c.want) {
			t.Errorf("ReadOps(from %d, %d ops, %d bytes) = %v, want %v", c.from, c.maxOps, c.maxBytes, got, c.want)
		}
	}
	if ops, err := s.ReadOps("nobody", 1, 10, 0); err != nil || len(ops) != 0 {
		t.Fatalf("unknown origin: %d ops, %v", len(ops), err)
	}
	// The caller owns what it gets: scribbling on it changes nothing stored.
	ops, _ := s.ReadOps("me", 1, 1, 0)
	want := bytes.Clone(ops[0].Body)
	ops[0].Body[10] ^= 0xff
	again, _ := s.ReadOps("me", 1, 1, 0)
	if !bytes.Equal(again[0].Body, want) {
		t.Fatal("ReadOps returned the store's own buffer")
	}
}

func TestCredentials(t *testing.T) {
	s, _ := openTest(t, nil)
	k1, k2 := testKey(1), testKey(2)
	if err := s.PutCredential("dev1", pubOf(k1), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCredential("dev1", pubOf(k1), []byte("v1")); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.PutCredential("dev1", pubOf(k1), []byte("renewed")); err != nil {
		t.Fatal(err)
	}
	if _, raw, _, _ := s.Credential("dev1"); string(raw) != "renewed" {
		t.Fatalf("renewed credential reads %q", raw)
	}
	if err := s.PutCredential("dev1", pubOf(k2), []byte("x")); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other key for a known origin: %v", err)
	}
	for _, bad := range []string{"", "a/b", strings.Repeat("x", crdt.MaxOriginLen+1)} {
		if err := s.PutCredential(bad, pubOf(k1), nil); !errors.Is(err, ErrBadOrigin) {
			t.Fatalf("origin %q: %v", bad, err)
		}
	}
	if err := s.PutCredential("dev3", pubOf(k1)[:5], nil); err == nil {
		t.Fatal("short public key accepted")
	}
}

func TestClosed(t *testing.T) {
	s, _ := openTest(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Write("me", testKey(1), "r", crdt.KindCreate, map[string]string{"sex": "nam"}, baseWall); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := s.Ingest(nil, baseWall); !errors.Is(err, ErrClosed) {
		t.Fatalf("ingest after close: %v", err)
	}
	if _, err := s.Record("r"); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := s.ReadOps("me", 1, 1, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read ops after close: %v", err)
	}
}

func TestOpenRefusesBadOptions(t *testing.T) {
	o := DefaultOptions(filepath.Join(t.TempDir(), "s"))
	o.NumCompactors = 1
	if _, err := Open(o); err == nil || !strings.Contains(err.Error(), "open store") {
		t.Fatalf("one compactor: %v", err)
	}
	o = DefaultOptions(filepath.Join(t.TempDir(), "s"))
	o.ValueThreshold = o.MemTableSize
	if _, err := Open(o); err == nil {
		t.Fatal("value threshold above a transaction accepted")
	}
}

// Reads run while writes commit: each reader sees whole ops only (a stored
// head always names a stored op, the record count never runs ahead of the
// records). Run with -race.
func TestReadsDuringWrites(t *testing.T) {
	s, _ := openTest(t, nil)
	g := newSigner("peer", 2)
	withCreds(t, s, g)
	key := testKey(1)
	r := rand.New(rand.NewPCG(8, 8))
	log := make([]crdt.Signed, 600)
	for i := range log {
		log[i] = g.next(t, recordID("peer", i), crdt.KindCreate, plain(dossier(r, i)), baseWall)
	}
	done := make(chan struct{})
	errs := make(chan error, 3)
	go func() {
		defer close(done)
		for i := 0; i < len(log); i += 50 {
			if _, err := s.Ingest(log[i:i+50], baseWall); err != nil {
				errs <- err
				return
			}
			if _, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, map[string]string{"sex": "nam"}, baseWall); err != nil {
				errs <- err
				return
			}
		}
	}()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		h := s.Head("peer")
		if h.Seq > 0 {
			ops, err := s.ReadOps("peer", h.Seq, 1, 0)
			if err != nil || len(ops) != 1 || crdt.Hash(ops[0].Body) != h.Hash {
				t.Fatalf("head %d not readable: %d ops, %v", h.Seq, len(ops), err)
			}
			if _, err := s.Record(recordID("peer", int(h.Seq)-1)); err != nil {
				t.Fatalf("record of op %d: %v", h.Seq, err)
			}
		}
		vv := s.VersionVector() // before the snapshot Records reads
		n := 0
		if err := s.Records("", func(*crdt.Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		if n < int(vv["peer"]) {
			t.Fatalf("%d records listed after %d ops were acknowledged", n, vv["peer"])
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if n, _ := s.RecordCount(); n != len(log)+len(log)/50 {
		t.Fatalf("records %d", n)
	}
}

// Record rewrites leave garbage in the value log; collecting it keeps every
// live value readable.
func TestCollectGarbage(t *testing.T) {
	small := func(o *Options) {
		o.ValueLogFileSize = 1 << 20
		o.MemTableSize = 1 << 20
		o.NumLevelZeroTables, o.NumLevelZeroTablesStall = 1, 3 // compact early
	}
	s, dir := openTest(t, small)
	key := testKey(1)
	r := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 50; i++ {
		if _, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, dossier(r, i), baseWall); err != nil {
			t.Fatal(err)
		}
	}
	// Rewrite every record many times, closing between rounds so that each
	// round's keys land in their own level-0 table (Close flushes).
	for round := 0; round < 30; round++ {
		for i := 0; i < 50; i++ {
			if _, err := s.Write("me", key, recordID("me", i), crdt.KindUpdate, map[string]string{"notes": fmt.Sprintf("lần sửa %d %s", round, strings.Repeat("ghi chú ", 60))}, baseWall); err != nil {
				t.Fatal(err)
			}
		}
		if round%10 == 9 {
			s = reopen(t, s, dir, small)
		}
	}
	if _, err := s.CollectGarbage(0); err == nil {
		t.Fatal("discard ratio 0 accepted")
	}
	// badger learns which values are garbage when compaction drops the keys
	// pointing at them.
	if err := s.db.Flatten(2); err != nil {
		t.Fatal(err)
	}
	n, err := s.CollectGarbage(0.5)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no value log file rewritten, though most record states are garbage")
	}
	s = reopen(t, s, dir, small)
	checkLog(t, s, "me", pubOf(key), 50*31)
	for i := 0; i < 50; i++ {
		if v := mustRecord(t, s, recordID("me", i)).Values()["notes"]; !strings.HasPrefix(v, "lần sửa 29 ") {
			t.Fatalf("record %d notes %q", i, v)
		}
	}
}
