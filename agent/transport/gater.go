package transport

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxRemembered bounds each of the peer memories below: a stranger can mint
// peer ids for free, and each refusal must not grow our memory for ever.
const maxRemembered = 4096

// peerMemory remembers peers for a while: the ones we refused (the deny list
// the gater enforces) or the ones that refused us (so that a later dropped
// connection is explained, and mDNS does not keep dialling them).
type peerMemory struct {
	mu      sync.Mutex
	entries map[peer.ID]memoryEntry
}

type memoryEntry struct {
	until  time.Time
	reason string
}

func newPeerMemory() *peerMemory {
	return &peerMemory{entries: make(map[peer.ID]memoryEntry)}
}

// add remembers p with reason until now+d.
func (m *peerMemory) add(p peer.ID, reason string, now time.Time, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[p]; !ok && len(m.entries) >= maxRemembered {
		m.pruneLocked(now)
		if len(m.entries) >= maxRemembered {
			// Drop the entry closest to expiry rather than refuse to
			// remember the newest offender.
			var victim peer.ID
			var soonest time.Time
			for id, e := range m.entries {
				if victim == "" || e.until.Before(soonest) {
					victim, soonest = id, e.until
				}
			}
			delete(m.entries, victim)
		}
	}
	m.entries[p] = memoryEntry{until: now.Add(d), reason: reason}
}

// get reports whether p is remembered at now, and why.
func (m *peerMemory) get(p peer.ID, now time.Time) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[p]
	if !ok {
		return "", false
	}
	if !now.Before(e.until) {
		delete(m.entries, p)
		return "", false
	}
	return e.reason, true
}

func (m *peerMemory) pruneLocked(now time.Time) {
	for id, e := range m.entries {
		if !now.Before(e.until) {
			delete(m.entries, id)
		}
	}
}

// gater refuses peers on the deny list as early as libp2p can tell who they
// are: before dialling them, and right after the Noise handshake of an
// inbound connection (before the muxer, before any stream), so a refused
// laptop retrying costs one TCP and one Noise handshake.
type gater struct {
	deny *peerMemory
	log  *slog.Logger
	now  func() time.Time
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func (g *gater) InterceptPeerDial(p peer.ID) bool {
	if reason, denied := g.deny.get(p, g.now()); denied {
		g.log.Debug("not dialling denied peer", "peer", p.String(), "reason", reason)
		return false
	}
	return true
}

func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	if reason, denied := g.deny.get(p, g.now()); denied {
		g.log.Debug("refused denied peer", "peer", p.String(),
			"addr", hostPort(addrs.RemoteMultiaddr()), "direction", dir.String(), "reason", reason)
		return false
	}
	return true
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
