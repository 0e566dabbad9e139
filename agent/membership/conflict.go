package membership

import (
	"net/netip"
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

// conflictEntry is a conflict as Membership keeps it.
type conflictEntry struct {
	AddressConflict
	told time.Time // when TellConflicts last told the two copies
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
	mem := Member{Meta: Meta{DeviceID: name}}
	if decoded, err := memberFromNode(other); err == nil {
		mem = decoded
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !own {
		if e, ok := m.members[name]; !ok || e.gossip != nodeGossipAddr(existing) {
			return
		}
	}
	m.recordConflictLocked(mem, own, addrs)
}

// recordConflictLocked records a sighting of mem.DeviceID at addrs, and
// sends a Conflict event when an occurrence begins or its addresses change.
func (m *Membership) recordConflictLocked(mem Member, own bool, addrs [2]string) {
	slices.Sort(addrs[:])
	now := m.now()
	name := mem.DeviceID
	e, had := m.conflicts[name]
	fresh := !had || now.Sub(e.Last) > conflictRecent
	if fresh {
		e = conflictEntry{AddressConflict: AddressConflict{DeviceID: name, Own: own, First: now}}
	}
	moved := e.Addrs != addrs
	e.Addrs, e.Last = addrs, now
	m.conflicts[name] = e
	if len(m.conflicts) > maxConflicts {
		m.forgetStalestConflictLocked()
	}
	if fresh || moved {
		m.emitLocked(Event{Kind: Conflict, Member: mem, Conflict: e.AddressConflict})
	}
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
			out = append(out, c.AddressConflict)
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

// tellEvery is how often TellConflicts tells the copies of one device about
// each other while the conflict lasts: 1 minute, well within
// conflictRecent, so that a copy memberlist never warned (every peer saw it
// first and refused the other) stays aware while both run, at one message
// per copy a minute.
const tellEvery = time.Minute

// msgConflict tags the one application message this package sends over
// memberlist (a user message, encrypted and labelled like all gossip):
//
//	byte 1, then a CBOR map: 1: device id (text), 2: the two gossip
//	addresses it was seen at (array of two texts)
//
// A node that sees a device at two addresses sends it to both, and a copy
// that learns another claims its name sends it to that one. Like the
// metadata it is a hint: a forged one makes a device open its sessions
// itself and show an alert, nothing more.
const msgConflict byte = 1

type wireConflict struct {
	DeviceID string   `cbor:"1,keyasint"`
	Addrs    []string `cbor:"2,keyasint"`
}

// TellConflicts tells the copies of every device recently seen at two
// addresses that the other exists, once every tellEvery per device:
// memberlist warns only the copy whose claim it refused, so without this a
// copy that every peer saw first would never learn that its identity runs
// twice. This node's own conflict is told to the other copy. It returns how
// many copies were told. It blocks for up to TCPTimeout per unreachable
// copy; it starts nothing itself.
func (m *Membership) TellConflicts() int {
	if m.usable() != nil {
		return 0
	}
	now := m.now()
	var due []AddressConflict
	m.mu.Lock()
	for id, e := range m.conflicts {
		if now.Sub(e.Last) > conflictRecent || now.Sub(e.told) < tellEvery {
			continue
		}
		e.told = now
		m.conflicts[id] = e
		due = append(due, e.AddressConflict)
	}
	m.mu.Unlock()

	told := 0
	for _, c := range due {
		msg, err := metaEnc.Marshal(wireConflict{DeviceID: c.DeviceID, Addrs: c.Addrs[:]})
		if err != nil {
			m.log.Debug("encode a conflict message", "device_id", c.DeviceID, "err", err)
			continue
		}
		msg = append([]byte{msgConflict}, msg...)
		for _, addr := range c.Addrs {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || addr == m.self {
				continue
			}
			to := &memberlist.Node{Name: c.DeviceID, Addr: ap.Addr().AsSlice(), Port: ap.Port()}
			if err := m.ml.SendReliable(to, msg); err != nil {
				m.log.Debug("tell a copy of a device seen at two addresses", "device_id", c.DeviceID, "addr", addr, "err", err)
				continue
			}
			told++
		}
	}
	return told
}

// takeMessage handles an application message from gossip (memberlist's
// NotifyMsg: it must not block). Only a claim on this node's own name, at
// an address that is this node's, is news: memberlist reports the others'.
func (m *Membership) takeMessage(b []byte) {
	if len(b) < 2 || b[0] != msgConflict {
		return
	}
	var w wireConflict
	if err := metaDec.Unmarshal(b[1:], &w); err != nil || len(w.Addrs) != 2 || w.Addrs[0] == w.Addrs[1] {
		return
	}
	if w.DeviceID != m.cfg.DeviceID || (w.Addrs[0] != m.self && w.Addrs[1] != m.self) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recordConflictLocked(Member{Meta: Meta{DeviceID: w.DeviceID}}, true, [2]string{w.Addrs[0], w.Addrs[1]})
}
