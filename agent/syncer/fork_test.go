package syncer

import (
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

// A second hello showing less of an origin (the peer gave up a branch of a
// forked log) makes the session offer that origin again from there, and a
// batch of it in flight no longer stalls the origin when its ack shows less.
func TestRehelloLowersWhatThePeerHolds(t *testing.T) {
	s := New(Config{Window: 4, MaxOps: 100, MaxBytes: 1 << 20})
	local := crdt.VersionVector{"dev": 5, "other": 3}
	s.OnHello(crdt.VersionVector{"dev": 3})
	plan := s.Plan(local)
	n := s.Sent(plan, 5, nil)
	s.OnHello(crdt.VersionVector{"other": 0, "dev": 1})
	if got := s.PeerHas()["dev"]; got != 1 {
		t.Fatalf("peer holds %d of dev after the second hello", got)
	}
	if refused := s.OnAck(n, crdt.VersionVector{"dev": 1, "other": 3}); len(refused) != 0 {
		t.Fatalf("a batch sent before the second hello stalled %v", refused)
	}
	plan = s.Plan(local)
	if len(plan) != 1 || plan[0] != (crdt.Range{Origin: "dev", From: 2, To: 5}) {
		t.Fatalf("plan after the second hello: %+v", plan)
	}
	if s.Stats().Flights != 1 {
		t.Fatalf("flights %d: a second hello is not a round trip", s.Stats().Flights)
	}
}
