package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
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
