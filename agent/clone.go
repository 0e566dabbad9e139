package agent

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/membership"
)

// Clones (docs/protocol.md, "Forks"). A data directory copied to a second
// laptop gives two processes with one identity: one device id, one libp2p
// peer id, one memberlist name. Online one after the other they are a fork
// (fork.go); online at once, memberlist keeps one of the two addresses and
// reports the other as a conflict (membership.Conflicted), and each peer
// would see one session from that peer id replace the other's. While the
// conflict is recent the agent:
//
//   - raises a "clone" alert in status and the web page, and logs each
//     occurrence once at ERROR;
//   - on a peer, runs a session arriving from the conflicted device's peer
//     id beside the one already running (a.extra) instead of replacing it,
//     so both copies sync at once and the fork machinery sees both
//     branches;
//   - tells both copies about each other (membership.TellConflicts):
//     memberlist warns only the copy whose claim it refused;
//   - on a copy that learns its own identity is claimed elsewhere, opens
//     its sessions itself whatever the peer-id order says: the peer's own
//     dial reaches one copy only, whichever libp2p picks.

// cloneState remembers which conflict occurrences were logged.
type cloneState struct {
	mu      sync.Mutex
	logged  map[string]time.Time // device id -> start of the occurrence logged
	telling atomic.Bool          // a tellClones goroutine runs
}

// cloned reports whether deviceID (this device's own included) was seen at
// two addresses at once lately.
// Sessions ask it from the transport's callbacks, which may run before
// New has made the membership.
func (a *Agent) cloned(deviceID string) bool {
	m := a.gossip.Load()
	return m != nil && m.Conflicted(deviceID)
}

// noteClones logs each conflict occurrence once, tells the copies, and when
// this device's own identity is claimed elsewhere, opens the sessions this
// side would otherwise wait for. Called on Conflict events and on every
// safety pass, so an event dropped on a full channel costs at most one
// pass.
func (a *Agent) noteClones() {
	conflicts := a.members.Conflicts()
	var fresh []membership.AddressConflict
	a.clones.mu.Lock()
	logged := make(map[string]time.Time, len(conflicts))
	for _, c := range conflicts {
		if !a.clones.logged[c.DeviceID].Equal(c.First) {
			fresh = append(fresh, c)
		}
		logged[c.DeviceID] = c.First
	}
	a.clones.logged = logged // occurrences over are forgotten
	a.clones.mu.Unlock()

	ownNew := false
	for _, c := range fresh {
		if c.Own {
			ownNew = true
			a.log.Error("this device's identity is online at another address too: its data directory was copied to another laptop (cảnh báo: danh tính của máy này đang chạy trên hai máy); stop one copy and provision the other anew",
				"device_id", c.DeviceID, "addrs", c.Addrs[:])
		} else {
			a.log.Error("one device identity is online at two addresses at once: its data directory was copied to another laptop (cảnh báo: một danh tính dùng trên hai máy); stop one copy and provision the other anew",
				"peer", a.deviceName(c.DeviceID), "device_id", c.DeviceID, "addrs", c.Addrs[:])
		}
	}
	if ownNew {
		for _, p := range a.host.Admitted() {
			a.ensureSession(p.PeerID)
		}
	}
	if len(conflicts) > 0 {
		a.tellClones()
	}
}

// tellClones runs membership.TellConflicts in the background, one at a
// time: it dials each copy, which the membership watcher and the safety
// pass must not wait for.
func (a *Agent) tellClones() {
	if !a.clones.telling.CompareAndSwap(false, true) {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.clones.telling.Store(false)
		if n := a.members.TellConflicts(); n > 0 {
			a.log.Debug("told the copies of a cloned identity about each other", "copies", n)
		}
	}()
}

// cloneAlerts lists the recent conflicts as alerts.
func (a *Agent) cloneAlerts() []api.Alert {
	if a.members == nil {
		return nil
	}
	var out []api.Alert
	for _, c := range a.members.Conflicts() {
		since := c.First.UTC()
		out = append(out, api.Alert{Kind: api.AlertClone, Device: c.DeviceID, Addrs: c.Addrs[:], Since: &since})
	}
	return out
}
