package store

import (
	"errors"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// A hub verifies every signature: an op whose own signature a relay damaged
// is refused even though the hash chain and the run's last signature hold.
func TestVerifyEverySignatureRefusesADamagedMiddleSignature(t *testing.T) {
	g := newSigner("laptopa", 1)
	var batch []crdt.Signed
	for i := 0; i < 5; i++ {
		kind := crdt.KindCreate
		batch = append(batch, g.next(t, recordID("laptopa", i), kind, plain(map[string]string{"full_name": "Lò Văn Páo"}), int64(1000+i)))
	}
	batch[2].Sig = slices.Clone(batch[2].Sig)
	batch[2].Sig[10] ^= 0xff

	relay, _ := openTest(t, nil)
	hub, _ := openTest(t, func(o *Options) { o.VerifyEverySignature = true })
	for _, s := range []*Store{relay, hub} {
		if err := s.PutCredential("laptopa", g.pub(), []byte("cred")); err != nil {
			t.Fatal(err)
		}
	}
	// A relay checks the chain and the last signature: content is authentic.
	if res := mustIngest(t, relay, batch); res.AppliedOps() != 5 {
		t.Fatalf("relay applied %d", res.AppliedOps())
	}
	res := mustIngest(t, hub, batch)
	if res.AppliedOps() != 2 || len(res.Refused) != 1 || res.Refused[0].Seq != 3 || !errors.Is(res.Refused[0].Err, crdt.ErrSignature) {
		t.Fatalf("hub applied %d, refused %s", res.AppliedOps(), refusalsString(res.Refused))
	}
	if got := hub.VersionVector()["laptopa"]; got != 2 {
		t.Fatalf("hub head %d", got)
	}
}

// Deliveries and Undelivered count creates of every origin against receipts.
func TestDeliveriesAgainstReceipts(t *testing.T) {
	a, b := newSigner("laptopa", 1), newSigner("laptopb", 2)
	s, dir := openTest(t, nil)
	for _, g := range []*signer{a, b} {
		if err := s.PutCredential(g.origin, g.pub(), []byte("cred")); err != nil {
			t.Fatal(err)
		}
	}
	var batch []crdt.Signed
	for i := 0; i < 4; i++ {
		batch = append(batch, a.next(t, recordID("laptopa", i), crdt.KindCreate, plain(map[string]string{"sex": "nam"}), int64(10+i)))
	}
	// An update is not a dossier: it does not count as captured.
	batch = append(batch, a.next(t, recordID("laptopa", 0), crdt.KindUpdate, plain(map[string]string{"sex": "nữ"}), 20))
	batch = append(batch, b.next(t, recordID("laptopb", 0), crdt.KindCreate, plain(map[string]string{"sex": "nữ"}), 30))
	mustIngest(t, s, batch)
	receipts := crdt.VersionVector{"laptopa": 3}
	check := func(s *Store) {
		t.Helper()
		d := s.Deliveries(receipts)
		if d["laptopa"] != (Delivery{Captured: 4, Delivered: 3}) || d["laptopb"] != (Delivery{Captured: 1, Delivered: 0}) {
			t.Fatalf("deliveries %+v", d)
		}
		var ids []string
		if err := s.Undelivered(receipts, func(id string) bool { ids = append(ids, id); return true }); err != nil {
			t.Fatal(err)
		}
		if want := []string{recordID("laptopa", 3), recordID("laptopb", 0)}; !slices.Equal(ids, want) {
			t.Fatalf("undelivered %v, want %v", ids, want)
		}
	}
	check(s)
	if err := s.PutReceipt("hub1", []byte("signed receipt")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExported(crdt.VersionVector{"laptopa": 2}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, nil)
	check(s)
	if r, err := s.Receipts(); err != nil || string(r["hub1"]) != "signed receipt" {
		t.Fatalf("receipts %q %v", r, err)
	}
	if e, err := s.Exported(); err != nil || e["laptopa"] != 2 {
		t.Fatalf("exported %v %v", e, err)
	}
}

// A settling op from a device that may not settle is refused, with the rest
// of its origin's run; the history and duplicate indexes follow the records.
func TestSettlingAuthorityHistoryAndIndexes(t *testing.T) {
	officer := newSigner("officer", 3)
	keys := func(r *crdt.Record) []string {
		if r.RetiredInto() != "" {
			return nil
		}
		if pid := r.Values()["personal_id"]; pid != "" {
			return []string{"p:" + pid}
		}
		return nil
	}
	s, _ := openTest(t, func(o *Options) { o.MaySettle = func(string) bool { return false }; o.IndexKeys = keys })
	if err := s.PutCredential("officer", officer.pub(), []byte("cred")); err != nil {
		t.Fatal(err)
	}
	a := officer.next(t, "r1", crdt.KindCreate, plain(map[string]string{"personal_id": "002190000001"}), 10)
	b := officer.next(t, "r2", crdt.KindCreate, plain(map[string]string{"personal_id": "002190000001"}), 11)
	c := officer.next(t, "r2", crdt.KindUpdate, plain(map[string]string{"phone": "0912345678"}), 12)
	settle := officer.next(t, "r1", crdt.KindRetire, plain(map[string]string{crdt.FieldRetiredInto: "r2"}), 13)
	after := officer.next(t, "r1", crdt.KindUpdate, plain(map[string]string{"phone": "0900000000"}), 14)
	res := mustIngest(t, s, []crdt.Signed{a, b, c, settle, after})
	if res.AppliedOps() != 3 || len(res.Refused) != 1 || res.Refused[0].Seq != 4 || res.Refused[0].Count != 2 || !errors.Is(res.Refused[0].Err, ErrNotAuthorized) {
		t.Fatalf("applied %d, refused %s", res.AppliedOps(), refusalsString(res.Refused))
	}
	var groups [][]string
	if err := s.IndexGroups(func(key string, ids []string) bool {
		groups = append(groups, append([]string{key}, ids...))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || !slices.Equal(groups[0], []string{"p:002190000001", "r1", "r2"}) {
		t.Fatalf("groups %v", groups)
	}
	h, err := s.History("r2")
	if err != nil || len(h) != 2 || h[0].Op.Seq != 2 || h[1].Op.Seq != 3 {
		t.Fatalf("history of r2: %d ops (%v)", len(h), err)
	}
	// An admin (here: this device's own op) retires r1: it leaves the index.
	s2, _ := openTest(t, func(o *Options) { o.IndexKeys = keys })
	if err := s2.PutCredential("officer", officer.pub(), []byte("cred")); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, s2, []crdt.Signed{a, b})
	if _, err := s2.Settle("admin", testKey(9), "r1", crdt.KindRetire, map[string]string{crdt.FieldRetiredInto: "r2"}, nil, 20); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s2.IndexGroups(func(string, []string) bool { n++; return true }); err != nil || n != 0 {
		t.Fatalf("groups after retiring: %d (%v)", n, err)
	}
}
