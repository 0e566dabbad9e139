package agent

import (
	"time"

	"github.com/fieldsync/fieldsync/agent/membership"
	"github.com/fieldsync/fieldsync/agent/transport"
)

// watchMembers turns LAN membership into data connections: a device that
// joins the gossip is dialled over libp2p, where it must present its
// credential before any data flows.
func (a *Agent) watchMembers() {
	for {
		select {
		case <-a.stop:
			return
		case ev := <-a.events:
			switch ev.Kind {
			case membership.Joined, membership.Updated:
				a.reach(ev.Member)
			case membership.Left:
				a.log.Info("peer left the LAN", "peer", a.deviceName(ev.Member.DeviceID))
			case membership.Conflict:
				a.noteClones()
			}
		}
	}
}

// reach makes sure there is a data connection and a sync session with a
// member. Dials run in their own goroutine, one at a time per peer.
func (a *Agent) reach(m membership.Member) {
	if m.PeerID == "" || m.PeerID == a.host.PeerID() || a.isRevoked(m.DeviceID) {
		return
	}
	if a.host.IsAdmitted(m.PeerID) {
		a.ensureSession(m.PeerID)
		return
	}
	a.mu.Lock()
	if a.dialing[m.PeerID] {
		a.mu.Unlock()
		return
	}
	a.dialing[m.PeerID] = true
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.dialing, m.PeerID)
			a.mu.Unlock()
		}()
		ctx, cancel := a.untilStop(15 * time.Second)
		defer cancel()
		if err := a.host.Connect(ctx, m.PeerID, m.Addr); err != nil {
			a.log.Warn("could not connect to peer", "device_id", m.DeviceID, "addr", m.Addr, "err", err)
		}
	}()
}

// onAdmitted runs when a peer passed the credential handshake. Of the two
// sides, the one with the smaller peer id opens the sync session, so each
// pair has one session.
func (a *Agent) onAdmitted(p transport.Peer) {
	a.log.Info("peer connected", "peer", p.Name, "device_id", p.DeviceID, "addr", p.Addr)
	a.ensureSession(p.PeerID)
}

func (a *Agent) onGone(p transport.Peer) {
	a.log.Info("peer disconnected", "peer", p.Name, "device_id", p.DeviceID)
}

// safetyLoop is the slow periodic pass: sessions for every admitted peer,
// re-joining peers that dropped out of membership (memberlist never re-probes
// a node it declared dead), and a fresh digest. While configured join targets
// are unreachable it retries sooner, backing off to the normal interval.
func (a *Agent) safetyLoop() {
	retry := time.Second
	for {
		joined := a.pass()
		wait := a.cfg.SafetyInterval
		if !joined {
			wait = min(retry, a.cfg.SafetyInterval)
			retry *= 2
		} else {
			retry = time.Second
		}
		select {
		case <-a.stop:
			return
		case <-time.After(wait):
		}
	}
}

// pass runs one safety pass and reports whether the configured join targets
// are reached (true when there are none).
func (a *Agent) pass() bool {
	a.noteClones()
	for _, p := range a.host.Admitted() {
		a.ensureSession(p.PeerID)
	}
	members := a.members.Members()
	for _, m := range members {
		a.reach(m)
	}
	for _, addr := range a.cfg.Join {
		a.reachAddr(addr)
	}
	joined := true
	if len(a.cfg.Join) > 0 && len(members) == 0 {
		if n, err := a.members.Join(a.cfg.Join); err != nil || n == 0 {
			joined = false
			if time.Since(a.joinWarnAt) > time.Minute {
				a.joinWarnAt = time.Now()
				a.log.Warn("join refused or unreachable: no agent of this deployment answered (is it running, and provisioned by the same authority?)",
					"join", a.cfg.Join, "err", err)
			}
		}
	}
	if n, err := a.members.RejoinAbsent(); n > 0 {
		a.log.Info("re-joined peers", "count", n)
	} else if err != nil {
		a.log.Debug("re-join absent peers", "err", err)
	}
	a.members.SetDigest(a.store.VersionVector().Digest())
	a.store.Trim()
	a.pruneDelivered()
	a.collectGarbage()
	return joined
}

// reachAddr connects to a configured address (--join) directly over the data
// transport, learning the peer id from the address, so that the credential
// handshake happens even where gossip cannot pass (another deployment's
// gossip is refused before any credential is shown; this way both sides log
// the credential refusal).
func (a *Agent) reachAddr(addr string) {
	key := "addr:" + addr
	a.mu.Lock()
	peerID, known := a.joinPeers[addr]
	if a.dialing[key] || (known && a.host.IsAdmitted(peerID)) {
		a.mu.Unlock()
		return
	}
	a.dialing[key] = true
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.dialing, key)
			a.mu.Unlock()
		}()
		ctx, cancel := a.untilStop(15 * time.Second)
		defer cancel()
		id, err := a.host.ConnectAddr(ctx, addr)
		if id != "" {
			a.mu.Lock()
			a.joinPeers[addr] = id
			a.mu.Unlock()
		}
		if err != nil {
			a.log.Debug("could not connect to join address", "addr", addr, "err", err)
		}
	}()
}

// gcEvery is how often the safety pass reclaims value-log space left by
// replaced record states: 10 minutes, and only when nothing changed for a
// full pass, so it never competes with a sync in progress.
const gcEvery = 10 * time.Minute

func (a *Agent) collectGarbage() {
	gen := a.changes.Load()
	quiet := gen == a.gcSeenGen
	a.gcSeenGen = gen
	if !quiet || time.Since(a.gcAt) < gcEvery {
		return
	}
	a.gcAt = time.Now()
	if n, err := a.store.CollectGarbage(0.5); err != nil {
		a.log.Warn("value log garbage collection", "err", err)
	} else if n > 0 {
		a.log.Info("reclaimed value log space", "files_rewritten", n)
	}
}
