package agent

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/crdt"
)

// Forks (docs/protocol.md, "Forks"). A laptop restored from an old backup,
// or one identity copied to two laptops, writes two different ops under one
// (origin, seq). The agent:
//
//   - before its first write, waits (boundedly) for a peer's hello to tell
//     it how far its own log goes, and takes those ops first (ownLog);
//   - compares, at every hello, the peer's head hashes (tips) with its own
//     log, and on a mismatch probes the peer to find where the logs part;
//     the store finds the fork point in the ops that then arrive, keeps the
//     evidence and resolves it (store.Wins);
//   - passes the evidence to every peer (wire.Fork), raises an alert in
//     status and the web page, and says so in its log;
//   - when its own branch lost, writes the orphaned ops' payloads again on
//     the tip of the winning chain once it holds that tip (store.Resign).

// forkState is what the agent knows of forks. Guarded by mu.
type forkState struct {
	mu    sync.Mutex
	known []store.Fork
	// resign is kicked when this device's own branch lost a fork.
	resign chan struct{}
}

// loadForks reads the evidence kept in the store.
func (a *Agent) loadForks() error {
	a.forks.resign = make(chan struct{}, 1)
	forks, err := a.store.Forks()
	if err != nil {
		return err
	}
	a.forks.known = forks
	for _, f := range forks {
		a.log.Warn("forked log on record (cảnh báo: nhật ký bị rẽ nhánh)", "origin", f.Origin, "device", a.deviceName(f.Origin), "seq", f.Seq)
	}
	return nil
}

// forkFound records new evidence: an alert, and every session passes it on.
func (a *Agent) forkFound(f store.Fork, from string) {
	a.forks.mu.Lock()
	for _, k := range a.forks.known {
		if k.Origin == f.Origin && k.Seq == f.Seq {
			a.forks.mu.Unlock()
			return
		}
	}
	a.forks.known = append(a.forks.known, f)
	a.forks.mu.Unlock()
	a.log.Warn("forked log: a device wrote two different changes under one number (restored from a backup, or its identity copied to another laptop)",
		"origin", f.Origin, "device", a.deviceName(f.Origin), "seq", f.Seq, "from", from)
	a.wakeSessions()
}

// forkList returns the evidence known (a copy).
func (a *Agent) forkList() []store.Fork {
	a.forks.mu.Lock()
	defer a.forks.mu.Unlock()
	return append([]store.Fork(nil), a.forks.known...)
}

// alerts is the status's alert list, [] when there is none.
func (a *Agent) alerts() []api.Alert {
	out := []api.Alert{}
	for _, f := range a.forkList() {
		out = append(out, api.Alert{Kind: api.AlertFork, Device: f.Origin, Seq: f.Seq})
	}
	return append(out, a.cloneAlerts()...)
}

// rewound is called after the store moved a losing branch of origin out of
// its log: every session tells its peer with a new hello, so the peer sends
// the winning branch; when the branch was this device's own, writes wait
// until the winning tip is here and the orphaned ops are written again.
func (a *Agent) rewound(origin string) {
	a.log.Warn("gave up the losing branch of a forked log", "origin", origin, "device", a.deviceName(origin), "head", a.store.Head(origin).Seq)
	if origin == a.dev.ID() {
		a.own.reset(a, "this device's own log forked")
		select {
		case a.forks.resign <- struct{}{}:
		default:
		}
	}
	a.mu.Lock()
	for _, s := range a.liveSessionsLocked() {
		s.rehello.Store(true)
		s.wake()
	}
	a.mu.Unlock()
	a.changed()
}

// resignLoop writes again this device's own ops that lost a fork, once the
// own log's tip is known (ownLog).
func (a *Agent) resignLoop() {
	ctx, cancel := a.untilStop(365 * 24 * time.Hour)
	defer cancel()
	for {
		if err := a.own.wait(ctx); err != nil {
			return
		}
		ops, err := a.store.Resign(a.dev.ID(), a.dev.Private)
		if err != nil && !errors.Is(err, store.ErrClosed) {
			a.log.Error("write again the changes of a branch that lost a fork", "err", err)
		}
		if len(ops) > 0 {
			a.log.Warn("wrote again, on the winning branch, this device's changes of the branch that lost a fork (ghi lại các thay đổi của nhánh bị bỏ)",
				"ops", len(ops), "first_seq", ops[0].Op.Seq, "last_seq", ops[len(ops)-1].Op.Seq)
			a.changed()
		}
		select {
		case <-a.stop:
			return
		case <-a.forks.resign:
		}
	}
}

// ownLog is the gate before this device writes on its own log. It is closed
// when the agent starts with peers to meet, and when its own branch lost a
// fork; it opens when a peer that said how far this device's log goes is
// not ahead of it, or after the configured wait (a lone laptop writes
// anyway).
type ownLog struct {
	mu     sync.Mutex
	open   bool
	opened chan struct{} // closed when open
	timer  *time.Timer
}

// init opens the gate: an agent with no peer to ask writes at once.
func (g *ownLog) init() {
	g.opened = make(chan struct{})
	close(g.opened)
	g.open = true
}

// reset closes the gate for at most cfg.OwnLogWait.
func (g *ownLog) reset(a *Agent, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a.cfg.OwnLogWait <= 0 {
		return
	}
	if g.open {
		g.opened = make(chan struct{})
	}
	g.open = false
	if g.timer != nil {
		g.timer.Stop()
	}
	wait := a.cfg.OwnLogWait
	a.log.Info("asking peers how far this device's own log goes before writing", "why", why, "wait", wait)
	g.timer = time.AfterFunc(wait, func() {
		if g.release() {
			a.log.Warn("no peer told how far this device's own log goes; writing on the log as held here",
				"waited", wait, "seq", a.store.Head(a.dev.ID()).Seq)
		}
	})
}

// release opens the gate; it reports whether it was closed.
func (g *ownLog) release() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return false
	}
	g.open = true
	close(g.opened)
	return true
}

// wait blocks until the gate is open or ctx ends.
func (g *ownLog) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.opened
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkOwnLog opens the gate when some session has the peer's hello and
// no peer is known to hold more of this device's log than it holds.
func (a *Agent) checkOwnLog() {
	a.own.mu.Lock()
	open := a.own.open
	a.own.mu.Unlock()
	if open {
		return
	}
	held := a.store.Head(a.dev.ID()).Seq
	ready, ahead := 0, uint64(0)
	a.mu.Lock()
	for _, s := range a.liveSessionsLocked() {
		s.mu.Lock()
		if s.sm.Ready() {
			ready++
			ahead = max(ahead, s.peerOwn.Load())
		}
		s.mu.Unlock()
	}
	a.mu.Unlock()
	if ready == 0 || ahead > held {
		return
	}
	if a.own.release() {
		a.log.Info("a peer confirmed how far this device's own log goes; writing", "seq", held)
	}
}

// tips returns the version vector and, per origin, the start of its head's
// hash, for a hello.
func (a *Agent) tips() (map[string]uint64, map[string][]byte) {
	heads := a.store.Heads()
	vv := make(map[string]uint64, len(heads))
	tips := make(map[string][]byte, len(heads))
	for o, h := range heads {
		vv[o] = h.Seq
		tips[o] = bytes.Clone(h.Hash[:wire.TipSize])
	}
	return vv, tips
}

// ownHash returns the start of the hash of this replica's op origin/seq,
// or nil when it does not hold it.
func (a *Agent) ownHash(origin string, seq uint64) []byte {
	if h := a.store.Head(origin); h.Seq == seq {
		return bytes.Clone(h.Hash[:wire.TipSize])
	} else if h.Seq < seq {
		return nil
	}
	ops, err := a.store.ReadOps(origin, seq, 1, 0)
	if err != nil || len(ops) != 1 {
		return nil
	}
	h := crdt.Hash(ops[0].Body)
	return h[:wire.TipSize]
}

// checkTips compares the peer's hello with this replica's log: a peer head
// this replica holds under another hash means the logs part at or below
// it, and the peer is probed.
func (s *session) checkTips(h *wire.Hello) {
	for o, tip := range h.Tips {
		seq := h.VV[o]
		if seq == 0 || s.a.isRevoked(o) {
			continue
		}
		if own := s.a.ownHash(o, seq); own != nil && !bytes.Equal(own, tip) {
			s.a.log.Info("peer holds another op of an origin under the same number; looking for the fork", "peer", s.peer.Name, "origin", o, "seq", seq)
			s.probe(o, seq)
		}
	}
}

// probe queues a probe of origin's log at seq and below for the peer.
func (s *session) probe(origin string, seq uint64) {
	p := &wire.Probe{Origin: origin}
	for step := uint64(0); seq >= 1 && len(p.Marks) < wire.MaxProbeMarks; {
		h := s.a.ownHash(origin, seq)
		if h == nil {
			break
		}
		p.Marks = append(p.Marks, wire.Mark{Seq: seq, Hash: h})
		step = max(1, 2*step)
		if seq <= step {
			if seq > 1 && len(p.Marks) < wire.MaxProbeMarks {
				p.Marks = append(p.Marks, wire.Mark{Seq: 1, Hash: s.a.ownHash(origin, 1)})
			}
			break
		}
		seq -= step
	}
	if len(p.Marks) == 0 {
		return
	}
	s.forkMu.Lock()
	s.forkOut = append(s.forkOut, &wire.Fork{Probe: p})
	s.forkMu.Unlock()
	s.wake()
}

// answerProbe finds the highest mark this replica's log agrees with and
// sends the peer the origin's ops from there: the peer's store finds the
// fork point among them.
func (s *session) answerProbe(p *wire.Probe) {
	agreed := uint64(0)
	for _, m := range p.Marks {
		if h := s.a.ownHash(p.Origin, m.Seq); h != nil && bytes.Equal(h, m.Hash) {
			agreed = max(agreed, m.Seq)
		}
	}
	s.mu.Lock()
	s.sm.PeerHolds(p.Origin, agreed)
	s.mu.Unlock()
	s.wake()
}

// takeFork handles a fork message from the peer.
func (s *session) takeFork(f *wire.Fork) {
	a := s.a
	for _, c := range f.Creds {
		if err := a.acceptCredential(c.Origin, c.Raw); err != nil {
			a.log.Warn("refused a relayed credential", "peer", s.peer.Name, "origin", c.Origin, "err", err)
		}
	}
	for _, e := range f.Evidence {
		res, err := a.store.TakeFork(e.A, e.B)
		if err != nil {
			if !errors.Is(err, store.ErrClosed) {
				a.log.Warn("refused fork evidence", "peer", s.peer.Name, "err", err)
			}
			continue
		}
		a.forkFound(res.Fork, s.peer.Name)
		s.noteForkSent(res.Fork)
		if res.Rewound {
			a.rewound(res.Fork.Origin)
		}
	}
	if f.Probe != nil {
		s.answerProbe(f.Probe)
	}
}

func forkKey(f store.Fork) string { return f.Origin + "/" + strconv.FormatUint(f.Seq, 10) }

// noteForkSent records that the peer holds this evidence (it sent it).
func (s *session) noteForkSent(f store.Fork) {
	s.forkMu.Lock()
	s.forksSent[forkKey(f)] = true
	s.forkMu.Unlock()
}

// pushForks sends queued probes and the evidence the peer was not sent in
// this session. Writer loop only.
func (s *session) pushForks() error {
	s.mu.Lock()
	ready := s.sm.Ready()
	s.mu.Unlock()
	if !ready {
		return nil
	}
	if s.rehello.Swap(false) {
		vv, tips := s.a.tips()
		if err := s.send(&wire.Message{Hello: &wire.Hello{VV: vv, Tips: tips, Revocation: s.a.revocationNumber()}}); err != nil {
			return err
		}
	}
	s.forkMu.Lock()
	out := s.forkOut
	s.forkOut = nil
	var ev []wire.ForkEvidence
	origins := map[string]bool{}
	for _, f := range s.a.forkList() {
		if k := forkKey(f); !s.forksSent[k] && len(ev) < wire.MaxForkEvidence {
			s.forksSent[k] = true
			ev = append(ev, wire.ForkEvidence{A: f.Winner, B: f.Loser})
			origins[f.Origin] = true
		}
	}
	s.forkMu.Unlock()
	if len(ev) > 0 {
		m := &wire.Fork{Evidence: ev}
		for o := range origins {
			if _, raw, ok, err := s.a.store.Credential(o); err == nil && ok && len(raw) > 0 && len(m.Creds) < wire.MaxForkEvidence {
				m.Creds = append(m.Creds, wire.Credential{Origin: o, Raw: raw})
			}
		}
		out = append([]*wire.Fork{m}, out...)
	}
	for _, m := range out {
		if err := s.send(&wire.Message{Fork: m}); err != nil {
			return err
		}
	}
	return nil
}

// afterIngest handles what the store found about forks in a batch.
func (s *session) afterIngest(res store.IngestResult) {
	for _, f := range res.Forks {
		s.a.forkFound(f, s.peer.Name)
	}
	for _, o := range res.Rewound {
		s.a.rewound(o)
	}
	for _, d := range res.Probes {
		s.probe(d.Origin, d.Seq)
	}
}
