package agent

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/syncer"
	"github.com/fieldsync/fieldsync/agent/transport"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/agent/xfer"
	"github.com/fieldsync/fieldsync/crdt"
)

// session runs one sync session with one peer over one stream: a writer loop
// (this agent's goroutine) that sends hello and batches, and a reader loop
// that ingests batches, acknowledges them and takes acks.
type session struct {
	a      *Agent
	peer   transport.Peer
	stream transport.Stream
	// second: a session beside another with the same peer id, the peer's
	// identity being online at two addresses at once (clone.go).
	second bool
	out    *wire.Writer
	in     *wire.Reader
	wakeCh chan struct{}
	done   chan struct{}
	// acks carries acknowledgements from the reader to the writer loop, the
	// only goroutine writing frames. The reader never blocks on the stream's
	// write side, so two peers pushing at each other cannot deadlock on full
	// flow-control windows.
	acks chan *wire.Ack

	mu    sync.Mutex // guards sm
	sm    *syncer.Session
	start time.Time

	// Receipts sent in this session (writer loop only).
	receiptsSent    map[string]int64
	receiptsVersion uint64
	// Upload progress logging (writer loop only).
	lastProgress time.Time

	// Revocation lists (revocation.go): the number the peer holds, from its
	// hello or what it took from us; the number sent (writer loop only).
	peerRevocation atomic.Uint64
	revocationSent uint64

	// Forks (fork.go): a new hello is due (this replica gave up a branch);
	// probes queued for the writer loop and the evidence sent, by origin
	// and seq.
	rehello   atomic.Bool
	peerOwn   atomic.Uint64 // how far the peer says this device's own log goes
	forkMu    sync.Mutex
	forkOut   []*wire.Fork
	forksSent map[string]bool

	// Attachment chunks (transfer.go): the peer speaks them (its hello
	// says so); its requests queued for the writer loop; chunks kept from
	// it and sent to it.
	peerChunks atomic.Bool
	chunkMu    sync.Mutex
	wants      [][32]byte
	chunksIn   atomic.Uint64
	chunksOut  atomic.Uint64
	lastBatch  atomic.Int64 // unix ns of the last batch received (or of the start)
}

func (s *session) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// ensureSession opens a session to an admitted peer unless one runs, when
// this side is the opener of the pair: the smaller peer id, or this side
// whatever the order while its own identity is online elsewhere too
// (clone.go), since the peer's dial reaches only one of the two copies.
func (a *Agent) ensureSession(peerID string) {
	if a.host.PeerID() > peerID && !a.cloned(a.dev.ID()) {
		return
	}
	a.mu.Lock()
	if _, ok := a.sessions[peerID]; ok {
		a.mu.Unlock()
		return
	}
	// Reserve the slot so concurrent callers do not open twice.
	a.sessions[peerID] = nil
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		st, err := a.host.Open(ctx, peerID, wire.Protocol)
		cancel()
		if err != nil {
			a.dropReservation(peerID)
			a.log.Debug("open sync session", "peer_id", peerID, "err", err)
			return
		}
		peer, ok := a.admittedPeer(peerID)
		if !ok {
			st.Reset()
			a.dropReservation(peerID)
			return
		}
		a.runSession(peer, st, opened)
	}()
}

// dropReservation frees the slot ensureSession reserved, unless a session
// the peer opened meanwhile holds it.
func (a *Agent) dropReservation(peerID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.sessions[peerID]; ok && s == nil {
		delete(a.sessions, peerID)
	}
}

func (a *Agent) admittedPeer(peerID string) (transport.Peer, bool) {
	for _, p := range a.host.Admitted() {
		if p.PeerID == peerID {
			return p, true
		}
	}
	return transport.Peer{}, false
}

// acceptSession serves a session the peer opened. A newer session from the
// same peer replaces an older one (the old stream may be half dead), except
// from a device seen at two addresses at once: there the two sessions are
// likely two copies of one identity, and the newcomer runs beside the
// first as the second session (clone.go), replacing only an older second
// one.
func (a *Agent) acceptSession(p transport.Peer, st transport.Stream) {
	cloned := a.cloned(p.DeviceID) // before a.mu: membership has its own lock
	a.mu.Lock()
	_, busy := a.sessions[p.PeerID] // running, or being opened
	second := cloned && busy
	slot := a.slots(second)
	old := slot[p.PeerID]
	slot[p.PeerID] = nil
	a.mu.Unlock()
	if old != nil {
		old.stream.Reset()
		<-old.done
	}
	a.wg.Add(1)
	defer a.wg.Done()
	kind := accepted
	if second {
		kind = acceptedSecond
	}
	a.runSession(p, st, kind)
}

// slots is the map sessions are kept in: the second sessions with cloned
// devices, or the ordinary ones.
func (a *Agent) slots(second bool) map[string]*session {
	if second {
		return a.extra
	}
	return a.sessions
}

// liveSessionsLocked returns every running session, the second ones
// included. a.mu must be held.
func (a *Agent) liveSessionsLocked() []*session {
	out := make([]*session, 0, len(a.sessions)+len(a.extra))
	for _, m := range []map[string]*session{a.sessions, a.extra} {
		for _, s := range m {
			if s != nil { // nil: a session being opened
				out = append(out, s)
			}
		}
	}
	return out
}

// sessionKind says who opened a session and where it is kept.
type sessionKind int

const (
	opened         sessionKind = iota // this side opened it
	accepted                          // the peer opened it
	acceptedSecond                    // the peer opened it beside a running one (clone.go)
)

// newSession builds the state of one session with an admitted peer over
// st; nothing is sent yet. The deterministic simulation (sim_test.go)
// builds its sessions with it too.
func (a *Agent) newSession(p transport.Peer, st transport.Stream, second bool) *session {
	s := &session{
		a:      a,
		peer:   p,
		stream: st,
		out:    wire.NewWriter(st),
		in:     wire.NewReader(st),
		wakeCh: make(chan struct{}, 1),
		done:   make(chan struct{}),
		acks:   make(chan *wire.Ack, 1024),
		sm:     syncer.New(a.cfg.Sync),
		start:  time.Now(),

		second: second,

		receiptsSent: map[string]int64{},
		forksSent:    map[string]bool{},
	}
	s.lastBatch.Store(s.start.UnixNano())
	a.mu.Lock()
	peerRole := a.names[p.DeviceID].Role
	a.mu.Unlock()
	if a.isHub && peerRole != identity.RoleHub {
		// A hub takes everything a laptop carries but sends down only its
		// own ops (decisions taken at the hub), never the province's
		// dossiers: borrowed links are scarce and laptops get lost. It
		// does send the laptop its own log, which a laptop restored from
		// a backup lacks.
		self, laptop := a.dev.ID(), p.DeviceID
		s.sm.Offer(func(origin string) bool { return origin == self || origin == laptop })
	}
	return s
}

// runSession runs a session until it ends. When both sides opened one at
// once (a copy of a cloned identity opens whatever the peer-id order), the
// first to start serves the pair if it is the peer's; a session the peer
// opened replaces whatever runs, as acceptSession says.
func (a *Agent) runSession(p transport.Peer, st transport.Stream, kind sessionKind) {
	second := kind == acceptedSecond
	s := a.newSession(p, st, second)
	a.mu.Lock()
	select {
	case <-a.stop:
		a.mu.Unlock()
		st.Reset()
		return
	default:
	}
	slot := a.slots(second)
	if cur := slot[p.PeerID]; cur != nil {
		if kind == opened {
			a.mu.Unlock()
			st.Reset()
			return
		}
		cur.stream.Reset()
	}
	slot[p.PeerID] = s
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if slot[p.PeerID] == s {
			delete(slot, p.PeerID)
		}
		a.mu.Unlock()
		a.xfer.Drop(s.xferKey())
		close(s.done)
	}()
	log := a.log.With("peer", p.Name)
	if second {
		log = log.With("second", true)
		log.Info("second sync session started: this device is online at two addresses at once")
	} else {
		log.Debug("sync session started")
	}
	err := s.run()
	st.Reset()
	stats := s.sm.Stats()
	attrs := []any{"sent_ops", stats.OpsSent, "received_ops", stats.OpsReceived,
		"bytes_out", s.out.Bytes(), "bytes_in", s.in.Bytes(), "duration", time.Since(s.start).Round(time.Millisecond)}
	if errors.Is(err, errPeerRevoked) {
		log.Warn("sync session ended: peer revoked", attrs...)
	} else if err != nil && !isClosed(err) {
		log.Warn("sync session ended", append(attrs, "err", err)...)
	} else {
		log.Info("sync session ended", attrs...)
	}
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, errStopping)
}

var errStopping = errors.New("agent stopping")

// send writes a frame; only the writer loop calls it.
func (s *session) send(m *wire.Message) error { return s.out.Write(m) }

// flushAcks writes every queued acknowledgement.
func (s *session) flushAcks() error {
	for {
		select {
		case ack := <-s.acks:
			if err := s.send(&wire.Message{Ack: ack}); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// run sends hello, starts the reader and then pushes batches whenever the
// peer lacks something, until the stream fails or the agent stops.
func (s *session) run() error {
	a := s.a
	readErr := make(chan error, 1)
	if err := s.revokePeerSession(readErr); err != nil {
		return err
	}
	if err := s.hello(); err != nil {
		return err
	}
	go func() { readErr <- s.readLoop() }()
	// Chunk requests a peer answered "not held" are asked again after a
	// while; the tick also gives up requests a peer left unanswered.
	tick := time.NewTicker(xfer.DefaultLackFor)
	defer tick.Stop()
	for {
		if err := s.revokePeerSession(readErr); err != nil {
			return err
		}
		if err := s.push(); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case err := <-readErr:
			return err
		case <-a.stop:
			return errStopping
		case ack := <-s.acks:
			if err := s.send(&wire.Message{Ack: ack}); err != nil {
				return err
			}
		case <-s.wakeCh:
		}
	}
}

// hello sends the session's first message: this replica's version vector
// and tips.
func (s *session) hello() error {
	vv, tips := s.a.tips()
	return s.send(&wire.Message{Hello: &wire.Hello{VV: vv, Tips: tips, Revocation: s.a.revocationNumber(), Chunks: true}})
}

// push sends whatever is due, in order: the revocation list, acks, forks,
// batches, receipts, chunks. The writer loop runs it each time it wakes.
func (s *session) push() error {
	if err := s.pushRevocation(); err != nil {
		return err
	}
	if err := s.flushAcks(); err != nil {
		return err
	}
	// Before batches: a new hello and probes change what the peer is
	// sent.
	if err := s.pushForks(); err != nil {
		return err
	}
	if err := s.pushReady(); err != nil {
		return err
	}
	if err := s.pushReceipts(); err != nil {
		return err
	}
	// After ops: chunks, answered only once the peer has been sent
	// every op.
	return s.pushChunks()
}

// pushReady sends batches while the plan has something and the window has
// room.
func (s *session) pushReady() error {
	a := s.a
	for {
		if a.isRevoked(s.peer.DeviceID) {
			return nil // the writer loop ends the session next
		}
		s.mu.Lock()
		plan := s.sm.Plan(a.store.VersionVector())
		s.mu.Unlock()
		if len(plan) == 0 {
			return nil
		}
		batch := &wire.Batch{}
		var ranges []crdt.Range
		var creds []string
		budget, bytes := a.cfg.Sync.MaxOps, 0
		for _, r := range plan {
			if budget <= 0 || bytes >= a.cfg.Sync.MaxBytes {
				break
			}
			ops, err := a.store.ReadOps(r.Origin, r.From, min(budget, int(r.Len())), a.cfg.Sync.MaxBytes-bytes)
			if err != nil {
				return err
			}
			if len(ops) == 0 {
				continue
			}
			s.mu.Lock()
			needCred := s.sm.NeedsCredential(r.Origin)
			s.mu.Unlock()
			if needCred {
				if _, raw, ok, err := a.store.Credential(r.Origin); err == nil && ok {
					batch.Creds = append(batch.Creds, wire.Credential{Origin: r.Origin, Raw: raw})
					creds = append(creds, r.Origin)
				}
			}
			for _, op := range ops {
				bytes += len(op.Body) + len(op.Sig)
			}
			batch.Ops = append(batch.Ops, ops...)
			got := crdt.Range{Origin: r.Origin, From: r.From, To: r.From + uint64(len(ops)) - 1}
			ranges = append(ranges, got)
			batch.Ranges = append(batch.Ranges, wire.Range{Origin: got.Origin, From: got.From, To: got.To})
			budget -= len(ops)
		}
		if len(ranges) == 0 {
			return nil
		}
		s.mu.Lock()
		batch.N = s.sm.Sent(ranges, len(batch.Ops), creds)
		s.mu.Unlock()
		if err := s.send(&wire.Message{Batch: batch}); err != nil {
			return err
		}
		s.logProgress()
		if err := s.flushAcks(); err != nil {
			return err
		}
	}
}

// readLoop handles the peer's messages until the stream ends.
func (s *session) readLoop() error {
	for {
		m, err := s.in.Read()
		if err != nil {
			return err
		}
		if err := s.handle(m); err != nil {
			return err
		}
	}
}

// handle takes one message from the peer; an error ends the session.
func (s *session) handle(m *wire.Message) error {
	a := s.a
	switch {
	case m.Hello != nil:
		s.notePeerRevocation(m.Hello.Revocation)
		s.peerChunks.Store(m.Hello.Chunks)
		s.mu.Lock()
		s.sm.OnHello(m.Hello.VV)
		s.mu.Unlock()
		// The latest hello replaces the claim: a peer that gave up a
		// branch of this device's log says so with a lower one.
		s.peerOwn.Store(m.Hello.VV[a.dev.ID()])
		s.checkTips(m.Hello)
		a.checkOwnLog()
		s.notePeerHolds()
		a.noteHubContact(s.peer.DeviceID)
		s.wake()
	case m.Receipts != nil:
		a.acceptReceipts(s.peer.Name, m.Receipts.List)
	case m.Revocation != nil:
		s.takeRevocation(m.Revocation.Raw)
	case m.Fork != nil:
		s.takeFork(m.Fork)
	case m.Want != nil:
		s.takeWant(m.Want)
	case m.Chunk != nil:
		if err := s.takeChunk(m.Chunk); err != nil {
			return err
		}
	case m.Batch != nil:
		s.lastBatch.Store(time.Now().UnixNano())
		if err := s.ingest(m.Batch); err != nil {
			return err
		}
	case m.Ack != nil:
		s.mu.Lock()
		refused := s.sm.OnAck(m.Ack.N, m.Ack.VV)
		s.mu.Unlock()
		for _, o := range refused {
			a.log.Warn("peer refused ops; not offering that origin again this session", "peer", s.peer.Name, "origin", o)
		}
		s.notePeerHolds()
		a.noteHubContact(s.peer.DeviceID)
		s.wake()
	case m.Error != nil:
		a.log.Warn("peer ended the sync session", "peer", s.peer.Name, "reason", m.Error.Reason)
		return io.EOF
	}
	return nil
}

// ingest verifies and commits a batch, then acknowledges it: the ack goes
// out only once the ops are durable here.
func (s *session) ingest(b *wire.Batch) error {
	a := s.a
	for _, c := range b.Creds {
		if err := a.acceptCredential(c.Origin, c.Raw); err != nil {
			a.log.Warn("refused a relayed credential", "peer", s.peer.Name, "origin", c.Origin, "err", err)
		}
	}
	dots := make([]crdt.Dot, 0, len(b.Ranges))
	for _, r := range b.Ranges {
		dots = append(dots, crdt.Dot{Origin: r.Origin, Seq: r.To})
		if r.Origin == a.dev.ID() && r.To > s.peerOwn.Load() {
			s.peerOwn.Store(r.To) // only the reader loop writes it
		}
	}
	s.mu.Lock()
	s.sm.Received(dots, len(b.Ops))
	s.mu.Unlock()
	res, err := a.store.Ingest(b.Ops, a.cfg.Now().UnixMilli())
	if err != nil {
		return err
	}
	for _, r := range res.Refused {
		a.refusedOps.Add(uint64(max(r.Count, 1)))
		a.log.Warn("refused op", "peer", s.peer.Name, "origin", r.Origin, "seq", r.Seq, "count", r.Count, "err", r.Err)
	}
	a.dupOps.Add(uint64(res.Duplicates))
	s.afterIngest(res)
	a.checkOwnLog()
	heads := map[string]uint64{}
	for _, r := range b.Ranges {
		heads[r.Origin] = a.store.Head(r.Origin).Seq
	}
	if len(res.Applied) > 0 {
		a.changed()
	}
	select {
	case s.acks <- &wire.Ack{N: b.N, VV: heads}:
	case <-a.stop:
		return errStopping
	}
	return nil
}

// notePeerHolds records how much of this device's own log the peer holds,
// for the at-risk count.
func (s *session) notePeerHolds() {
	self := s.a.dev.ID()
	s.mu.Lock()
	held := s.sm.PeerHas()[self]
	s.mu.Unlock()
	if held > 0 {
		if err := s.a.store.NotePeerHolds(s.peer.DeviceID, held); err != nil && !errors.Is(err, store.ErrClosed) {
			s.a.log.Warn("record what a peer holds", "err", err)
		}
	}
}

// view reports the session's counters for status.
func (s *session) view() *api.Session {
	s.mu.Lock()
	st := s.sm.Stats()
	inSync := s.sm.InSync(s.a.store.VersionVector())
	s.mu.Unlock()
	return &api.Session{InSync: inSync, OpsSent: st.OpsSent, OpsReceived: st.OpsReceived,
		BytesOut: s.out.Bytes(), BytesIn: s.in.Bytes(), RoundTrips: st.Flights,
		Messages: s.out.Frames() + s.in.Frames(), Started: s.start.UTC(),
		ChunksSent: s.chunksOut.Load(), ChunksReceived: s.chunksIn.Load()}
}

// pushReceipts sends the receipts this session has not sent yet.
func (s *session) pushReceipts() error {
	s.mu.Lock()
	ready := s.sm.Ready()
	s.mu.Unlock()
	if !ready {
		return nil
	}
	list, version := s.a.receiptsToSend(s.receiptsSent, s.receiptsVersion)
	s.receiptsVersion = version
	if len(list) == 0 {
		return nil
	}
	return s.send(&wire.Message{Receipts: &wire.Receipts{List: list}})
}

// logProgress reports a long upload every 10 seconds.
func (s *session) logProgress() {
	if time.Since(s.lastProgress) < 10*time.Second {
		return
	}
	s.mu.Lock()
	peerHas := s.sm.PeerHas()
	st := s.sm.Stats()
	s.mu.Unlock()
	var pending uint64
	for _, r := range s.a.store.VersionVector().Missing(peerHas) {
		pending += r.Len()
	}
	if pending < 5000 && s.lastProgress.IsZero() {
		return
	}
	s.lastProgress = time.Now()
	s.a.log.Info("uploading", "peer", s.peer.Name, "sent_ops", st.OpsSent, "pending_ops", pending)
}
