package membership

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// EventKind says what happened to a member.
type EventKind int

const (
	// Joined: the member became alive (new, back, or its metadata became
	// readable).
	Joined EventKind = iota + 1
	// Left: the member left, was declared dead, or its metadata became
	// unreadable. Event.Member holds what was last known of it.
	Left
	// Updated: the member's metadata changed, typically its Digest.
	Updated
	// Conflict: a device id was seen alive at two addresses at once
	// (Event.Conflict says which and where). Sent when an occurrence begins
	// or its addresses change, not at every sighting; Conflicted answers at
	// any time.
	Conflict
)

func (k EventKind) String() string {
	switch k {
	case Joined:
		return "joined"
	case Left:
		return "left"
	case Updated:
		return "updated"
	case Conflict:
		return "conflict"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a change of membership, sent on Config.Events.
type Event struct {
	Kind EventKind
	// Member is the member the event is about. For a Conflict, it is what
	// the claim from the other address said (DeviceID at least).
	Member Member
	// Conflict is set for Kind Conflict.
	Conflict AddressConflict
}

// eventDelegate receives memberlist's membership notifications. memberlist
// calls it one at a time while holding its node lock: it must not block or
// call back into memberlist.
type eventDelegate struct{ m *Membership }

var _ memberlist.EventDelegate = eventDelegate{}

func (e eventDelegate) NotifyJoin(n *memberlist.Node)   { e.m.observe(n) }
func (e eventDelegate) NotifyUpdate(n *memberlist.Node) { e.m.observe(n) }
func (e eventDelegate) NotifyLeave(n *memberlist.Node)  { e.m.depart(n) }

// observe records that node n is alive with its current metadata.
func (m *Membership) observe(n *memberlist.Node) {
	if n.Name == m.cfg.DeviceID {
		return
	}
	mem, err := memberFromNode(n)
	gossip := nodeGossipAddr(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.members[n.Name]
	if err != nil {
		// Ignored, so RejoinAbsent does not remember its address either.
		if !m.badLogged[n.Name] {
			if len(m.badLogged) >= maxBadLogged {
				clear(m.badLogged)
			}
			m.badLogged[n.Name] = true
			m.log.Warn("ignoring member with unreadable metadata",
				"node", n.Name, "addr", gossip, "err", err)
		}
		if had {
			delete(m.members, n.Name)
			m.emitLocked(Event{Kind: Left, Member: old.member})
		}
		return
	}
	delete(m.badLogged, n.Name)
	if gossip != "" {
		m.rememberLocked(gossip, n.Name)
	}
	m.members[n.Name] = memberEntry{member: mem, gossip: gossip}
	switch {
	case !had:
		m.log.Info("member joined", "device", mem.DeviceID, "addr", mem.Addr)
		m.emitLocked(Event{Kind: Joined, Member: mem})
	case old.member != mem:
		m.emitLocked(Event{Kind: Updated, Member: mem})
	}
}

// depart records that node n left or was declared dead.
func (m *Membership) depart(n *memberlist.Node) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.members[n.Name]
	if !had {
		return
	}
	delete(m.members, n.Name)
	m.log.Info("member left", "device", old.member.DeviceID, "addr", old.member.Addr)
	m.emitLocked(Event{Kind: Left, Member: old.member})
}

// emitLocked sends ev without ever blocking memberlist: on a full channel
// the event is dropped and counted, since the agent re-reads Members on its
// periodic pass anyway.
func (m *Membership) emitLocked(ev Event) {
	if m.events == nil || m.closed {
		return
	}
	select {
	case m.events <- ev:
	default:
		m.dropped.Add(1)
	}
}

// delegate provides this node's metadata to memberlist and takes the one
// application message, about a device seen at two addresses (conflict.go).
// The other methods are unused: gossip carries hints only, never records.
type delegate struct{ m *Membership }

var _ memberlist.Delegate = delegate{}

// NodeMeta returns the encoded metadata. It never exceeds limit: memberlist
// panics if it does.
func (d delegate) NodeMeta(limit int) []byte {
	own := d.m.own.Load()
	if len(own.enc) > limit {
		d.m.log.Error("own metadata too large, gossiping none", "size", len(own.enc), "limit", limit)
		return nil
	}
	return own.enc
}

func (d delegate) NotifyMsg(b []byte)                       { d.m.takeMessage(b) }
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}
