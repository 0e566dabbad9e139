package membership

import (
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// conflictRecent is how long after it was last seen a conflict still counts
// (Conflicted, Conflicts): 5 minutes. memberlist reports a device at two
// addresses only when gossip about it passes, at each state exchange
// (PushPullInterval, 60s by default) or digest change, so the window spans
// several of those and a conflict stays reported while both copies run. It
// is no longer because a laptop whose IP address changed on a restart is
// seen at its old and new address until memberlist declares the old one
// dead and lets the name move (seconds, DeadNodeReclaimTime): that false
// conflict must fade soon after.
const conflictRecent = 5 * time.Minute

// maxConflicts bounds the conflicts remembered; names come from the network
// (anyone holding the gossip key), and a team has at most a dozen devices.
// Beyond it the conflict seen longest ago is forgotten.
const maxConflicts = 64

// AddressConflict is one device id seen alive at two gossip addresses at
// once: two processes run with one identity (a data directory copied to a
// second laptop), or, briefly, a laptop that came back at a new address.
type AddressConflict struct {
	DeviceID string
	// Own: the device id is this node's. Another process claims our
	// identity; Addrs holds ours and the other's.
	Own bool
	// Addrs are the two gossip addresses (HOST:PORT+1), sorted.
	Addrs [2]string
	// First is when this occurrence was first seen; Last when it was last
	// seen. An occurrence ends conflictRecent after Last, and one seen
	// again after that is a new one.
	First, Last time.Time
}

// conflictDelegate receives memberlist's name conflicts. memberlist calls it
// while holding its node lock: it must not block or call back into
// memberlist.
type conflictDelegate struct{ m *Membership }

var _ memberlist.ConflictDelegate = conflictDelegate{}

func (c conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	c.m.noteConflict(existing, other)
}

// noteConflict records that existing's name was claimed from other's
// address, and sends a Conflict event when an occurrence begins or its
// addresses change.
//
// About another device, only a claim against a member alive at the address
// memberlist holds counts: memberlist also reports a name coming back from
// a new address while the old one is dead but not yet reclaimable
// (DeadNodeReclaimTime), which is a laptop that moved, not a copy.
func (m *Membership) noteConflict(existing, other *memberlist.Node) {
	name := existing.Name
	own := name == m.cfg.DeviceID
	addrs := [2]string{nodeGossipAddr(existing), nodeGossipAddr(other)}
	slices.Sort(addrs[:])
	now := m.now()

	m.mu.Lock()
	defer m.mu.Unlock()
	if !own {
		if e, ok := m.members[name]; !ok || e.gossip != nodeGossipAddr(existing) {
			return
		}
	}
	c, had := m.conflicts[name]
	fresh := !had || now.Sub(c.Last) > conflictRecent
	if fresh {
		c = AddressConflict{DeviceID: name, Own: own, First: now}
	}
	moved := c.Addrs != addrs
	c.Addrs, c.Last = addrs, now
	m.conflicts[name] = c
	if len(m.conflicts) > maxConflicts {
		m.forgetStalestConflictLocked()
	}
	if !fresh && !moved {
		return
	}
	mem := Member{Meta: Meta{DeviceID: name}}
	if decoded, err := memberFromNode(other); err == nil {
		mem = decoded
	}
	m.emitLocked(Event{Kind: Conflict, Member: mem, Conflict: c})
}

func (m *Membership) forgetStalestConflictLocked() {
	stalest := ""
	for id, c := range m.conflicts {
		if stalest == "" || c.Last.Before(m.conflicts[stalest].Last) {
			stalest = id
		}
	}
	delete(m.conflicts, stalest)
}

// Conflicted reports whether deviceID (this node's own included) was seen at
// two addresses at once within the last few minutes (conflictRecent). It
// answers from what memberlist reported so far, without waiting.
func (m *Membership) Conflicted(deviceID string) bool {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.conflicts[deviceID]
	return ok && now.Sub(c.Last) <= conflictRecent
}

// Conflicts returns the recent conflicts (see Conflicted), sorted by
// DeviceID. The caller owns the slice.
func (m *Membership) Conflicts() []AddressConflict {
	now := m.now()
	m.mu.Lock()
	out := make([]AddressConflict, 0, len(m.conflicts))
	for _, c := range m.conflicts {
		if now.Sub(c.Last) <= conflictRecent {
			out = append(out, c)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b AddressConflict) int {
		switch {
		case a.DeviceID < b.DeviceID:
			return -1
		case a.DeviceID > b.DeviceID:
			return 1
		}
		return 0
	})
	return out
}
