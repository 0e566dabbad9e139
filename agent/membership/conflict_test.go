package membership

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// gossipOf is the gossip address of a test node.
func gossipOf(t *testing.T, n *node) string {
	t.Helper()
	g, err := GossipAddr(n.cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// conflictOf returns n's recent conflict about device.
func conflictOf(n *node, device string) (AddressConflict, bool) {
	for _, c := range n.Conflicts() {
		if c.DeviceID == device {
			return c, true
		}
	}
	return AddressConflict{}, false
}

// Two processes with one identity (a data directory copied to a second
// laptop) join a third node one after the other: memberlist keeps the first
// and refuses the second, and the refusal is recorded on the third node as
// a conflict about that device, and on at least one twin as a conflict
// about its own name.
func TestTwoNodesWithOneNameConflict(t *testing.T) {
	key := testKey(21)
	third := startNode(t, testConfig(t, "dev-t", key))
	twin1 := startNode(t, testConfig(t, "dev-x", key))
	twin2 := startNode(t, testConfig(t, "dev-x", key))

	if _, err := twin1.Join([]string{third.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the third node to list the first twin", sees(third, "dev-x"))
	if third.Conflicted("dev-x") {
		t.Fatal("a conflict before the second twin came")
	}
	// The state exchange happens; memberlist only ignores the name.
	_, _ = twin2.Join([]string{third.cfg.Listen})

	ev := waitEvent(t, third, Conflict, "dev-x")
	want := []string{gossipOf(t, twin1), gossipOf(t, twin2)}
	slices.Sort(want)
	if ev.Conflict.Own || ev.Conflict.DeviceID != "dev-x" || !slices.Equal(ev.Conflict.Addrs[:], want) ||
		ev.Conflict.First.IsZero() || ev.Conflict.Last.Before(ev.Conflict.First) {
		t.Fatalf("third node's conflict event %+v, want one about dev-x at %v", ev.Conflict, want)
	}
	if !third.Conflicted("dev-x") || third.Conflicted("dev-t") || third.Conflicted("dev-y") {
		t.Fatalf("Conflicted: dev-x %v, dev-t %v, dev-y %v; want true, false, false",
			third.Conflicted("dev-x"), third.Conflicted("dev-t"), third.Conflicted("dev-y"))
	}
	if got := third.Conflicts(); len(got) != 1 || got[0].DeviceID != "dev-x" || got[0].Own {
		t.Fatalf("third node's conflicts %+v", got)
	}
	// The device is listed once, where memberlist first saw it.
	if got, ok := member(third, "dev-x"); !ok || got.Addr != twin1.cfg.Listen {
		t.Fatalf("third node lists dev-x as %+v, %v; want it at %s", got, ok, twin1.cfg.Listen)
	}

	eventually(t, "a twin to learn that its own name is claimed elsewhere", func() bool {
		return twin1.Conflicted("dev-x") || twin2.Conflicted("dev-x")
	})
	for _, twin := range []*node{twin1, twin2} {
		if c, ok := conflictOf(twin, "dev-x"); ok && (!c.Own || !slices.Equal(c.Addrs[:], want)) {
			t.Fatalf("%s's conflict %+v, want its own name at %v", twin.cfg.Listen, c, want)
		}
	}

	// memberlist warned one twin at most; told by the third node, both
	// know, whichever memberlist kept.
	if n := third.TellConflicts(); n != 2 {
		t.Fatalf("TellConflicts told %d copies, want 2", n)
	}
	eventually(t, "both twins to know their name is claimed twice", func() bool {
		return twin1.Conflicted("dev-x") && twin2.Conflicted("dev-x")
	})
	for _, twin := range []*node{twin1, twin2} {
		if c, _ := conflictOf(twin, "dev-x"); !c.Own || !slices.Equal(c.Addrs[:], want) {
			t.Fatalf("%s's conflict %+v, want its own name at %v", twin.cfg.Listen, c, want)
		}
	}
	if n := third.TellConflicts(); n != 0 {
		t.Fatalf("TellConflicts told %d copies again at once, want 0 before %v", n, tellEvery)
	}

	// memberlist reports the claim at every gossip round about the device;
	// one occurrence is one event.
	deadline := time.After(3 * third.cfg.PushPullInterval)
	for {
		select {
		case ev := <-third.events:
			if ev.Kind == Conflict {
				t.Fatalf("a second conflict event for one occurrence: %+v", ev)
			}
			continue
		case <-deadline:
		}
		break
	}
	if c, _ := conflictOf(third, "dev-x"); !c.First.Equal(ev.Conflict.First) {
		t.Fatalf("the occurrence's start moved from %v to %v", ev.Conflict.First, c.First)
	}
}

// clock is a settable time for conflict tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// loneNode is a node that joins no one, with its conflicts dated by c.
func loneNode(t *testing.T, id string, c *clock) *node {
	t.Helper()
	n := startNode(t, testConfig(t, id, testKey(22)))
	n.now = c.now // nothing gossips to a lone node, so nothing reads it yet
	return n
}

func mlNode(name string, port uint16) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: port}
}

func conflictEvents(n *node) []Event {
	var out []Event
	for {
		select {
		case ev := <-n.events:
			if ev.Kind == Conflict {
				out = append(out, ev)
			}
		default:
			return out
		}
	}
}

func TestConflictFadesAndRecurs(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	n := loneNode(t, "dev-x", c)
	first := c.t
	n.noteConflict(mlNode("dev-x", 7001), mlNode("dev-x", 7003))
	if !n.Conflicted("dev-x") {
		t.Fatal("own conflict not recorded")
	}
	evs := conflictEvents(n)
	if len(evs) != 1 || !evs[0].Conflict.Own || evs[0].Conflict.Addrs != [2]string{"127.0.0.1:7001", "127.0.0.1:7003"} {
		t.Fatalf("events %+v, want one own conflict", evs)
	}

	// Seen again within the window: the same occurrence, no event.
	c.t = c.t.Add(conflictRecent - time.Second)
	n.noteConflict(mlNode("dev-x", 7001), mlNode("dev-x", 7003))
	if evs := conflictEvents(n); len(evs) != 0 {
		t.Fatalf("events %+v for a conflict seen again", evs)
	}
	got, _ := conflictOf(n, "dev-x")
	if !got.First.Equal(first) || !got.Last.Equal(c.t) {
		t.Fatalf("conflict %+v, want first %v last %v", got, first, c.t)
	}

	// Another address for the other copy: an event, same occurrence.
	n.noteConflict(mlNode("dev-x", 7001), mlNode("dev-x", 7005))
	if evs := conflictEvents(n); len(evs) != 1 || !evs[0].Conflict.First.Equal(first) {
		t.Fatalf("events %+v after the other copy moved", evs)
	}

	// Not seen for longer than the window: over.
	c.t = c.t.Add(conflictRecent + time.Second)
	if n.Conflicted("dev-x") || len(n.Conflicts()) != 0 {
		t.Fatalf("conflict still reported after the window: %+v", n.Conflicts())
	}
	// Seen again: a new occurrence.
	n.noteConflict(mlNode("dev-x", 7001), mlNode("dev-x", 7003))
	evs = conflictEvents(n)
	if len(evs) != 1 || !evs[0].Conflict.First.Equal(c.t) || !n.Conflicted("dev-x") {
		t.Fatalf("events %+v, want a new occurrence from %v", evs, c.t)
	}
}

// memberlist also reports a name claimed from a new address while the old
// one is dead but not yet reclaimable: a laptop that moved, not a copy.
func TestConflictAboutAbsentMemberIgnored(t *testing.T) {
	n := loneNode(t, "dev-t", &clock{t: time.Now()})
	n.noteConflict(mlNode("dev-x", 7001), mlNode("dev-x", 7003))
	if n.Conflicted("dev-x") || len(conflictEvents(n)) != 0 {
		t.Fatal("a conflict about a device that is not a member counted")
	}
	// A member alive at another address than the one memberlist holds:
	// likewise stale.
	n.mu.Lock()
	n.members["dev-x"] = memberEntry{member: Member{Meta: Meta{DeviceID: "dev-x"}}, gossip: "127.0.0.1:7009"}
	n.mu.Unlock()
	n.noteConflict(mlNode("dev-x", 7001), mlNode("dev-x", 7003))
	if n.Conflicted("dev-x") {
		t.Fatal("a conflict against an address the member is not at counted")
	}
}

func TestConflictsAreBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	n := loneNode(t, "dev-t", c)
	for i := range maxConflicts + 5 {
		id := fmt.Sprintf("dev-%03d", i)
		n.mu.Lock()
		n.members[id] = memberEntry{member: Member{Meta: Meta{DeviceID: id}}, gossip: "127.0.0.1:7001"}
		n.mu.Unlock()
		c.t = c.t.Add(time.Millisecond)
		n.noteConflict(mlNode(id, 7001), mlNode(id, 7003))
	}
	got := n.Conflicts()
	if len(got) != maxConflicts || got[0].DeviceID != "dev-005" {
		t.Fatalf("%d conflicts kept, first %q; want %d from dev-005", len(got), got[0].DeviceID, maxConflicts)
	}
}

// A conflict message counts only when it is about this node's own name and
// one of its addresses is this node's.
func TestConflictMessageAboutSomeoneElseIgnored(t *testing.T) {
	n := loneNode(t, "dev-x", &clock{t: time.Now()})
	self := gossipOf(t, n)
	msg := func(id string, addrs ...string) []byte {
		b, err := metaEnc.Marshal(wireConflict{DeviceID: id, Addrs: addrs})
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{msgConflict}, b...)
	}
	for name, b := range map[string][]byte{
		"another device":    msg("dev-y", self, "127.0.0.1:7003"),
		"neither address":   msg("dev-x", "127.0.0.1:7001", "127.0.0.1:7003"),
		"one address":       msg("dev-x", self),
		"the same twice":    msg("dev-x", self, self),
		"another tag":       append([]byte{9}, msg("dev-x", self, "127.0.0.1:7003")[1:]...),
		"not CBOR":          {msgConflict, 0xff, 0x00},
		"empty":             {},
		"tag and nothing":   {msgConflict},
		"truncated message": msg("dev-x", self, "127.0.0.1:7003")[:8],
	} {
		n.takeMessage(b)
		if n.Conflicted("dev-x") || n.Conflicted("dev-y") {
			t.Fatalf("%s: counted as a conflict", name)
		}
	}
	n.takeMessage(msg("dev-x", "127.0.0.1:7003", self))
	if c, ok := conflictOf(n, "dev-x"); !ok || !c.Own {
		t.Fatalf("a genuine message not recorded: %+v, %v", c, ok)
	}
}
