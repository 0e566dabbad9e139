package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	msmux "github.com/multiformats/go-multistream"
)

// helloProtocol carries the credential handshake; see doc.go and hello.go.
const helloProtocol = "/fieldsync/hello/1"

// refusalLinger bounds how long the refusing side waits for the refused side
// to read the reason before closing the connection under it.
const refusalLinger = time.Second

// connState is the handshake of one connection. Every connection runs its
// own, even to a peer already admitted on another one: the two ends may not
// agree on which connections are new (one side can see a reconnect before
// the old connection's close), and a per-connection handshake needs no such
// agreement. A credential check costs one signature verification.
type connState struct {
	conn     network.Conn
	id       peer.ID
	addr     string          // remote host:port
	ctx      context.Context // ends at the deadline or when the state ends
	cancel   context.CancelFunc
	deadline time.Time
	gone     chan struct{} // closed when the connection has closed

	// Guarded by Host.mu.
	inStarted bool // the peer's hello stream arrived
	inOK      bool // we admitted the peer's credential; info is valid
	outOK     bool // the peer admitted ours
	info      Peer
	admitted  bool
	done      chan struct{} // closed once the outcome is known
	err       error         // the outcome: nil when admitted
}

func (c *connState) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// peerState is what we know of a peer while it has connections.
type peerState struct {
	conns    map[network.Conn]*connState
	admitted bool // OnAdmitted was called and OnGone not yet
	info     Peer // as given to OnAdmitted
}

// connOpened registers c and starts its handshake. It is the Connected
// notification, which libp2p delivers before it accepts any stream on c.
func (h *Host) connOpened(c network.Conn) {
	p := c.RemotePeer()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	ps := h.peers[p]
	if ps == nil {
		ps = &peerState{conns: make(map[network.Conn]*connState)}
		h.peers[p] = ps
	}
	if ps.conns[c] != nil {
		return
	}
	deadline := h.now().Add(h.cfg.HandshakeTimeout)
	ctx, cancel := context.WithDeadline(h.ctx, deadline)
	cs := &connState{
		conn:     c,
		id:       p,
		addr:     hostPort(c.RemoteMultiaddr()),
		ctx:      ctx,
		cancel:   cancel,
		deadline: deadline,
		gone:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	ps.conns[c] = cs
	h.wg.Add(1)
	go h.runHandshake(cs)
}

// connClosed forgets c. When it was the peer's last admitted connection the
// peer is gone (OnGone); a handshake still running on c has failed.
func (h *Host) connClosed(c network.Conn) {
	p := c.RemotePeer()
	h.cbMu.Lock()
	defer h.cbMu.Unlock()
	h.mu.Lock()
	ps := h.peers[p]
	var cs *connState
	if ps != nil {
		cs = ps.conns[c]
	}
	if cs == nil {
		h.mu.Unlock()
		return
	}
	delete(ps.conns, c)
	close(cs.gone)
	var failed error
	if !cs.isDone() {
		failed = h.explainDrop(p, errors.New("connection closed"))
		h.finishLocked(cs, failed)
	}
	var gone *Peer
	if ps.admitted {
		if other := ps.admittedConn(); other != nil {
			// Still admitted on another connection: report that one's
			// address from now on.
			ps.info = other.info
		} else {
			ps.admitted = false
			info := ps.info
			gone = &info
		}
	}
	if len(ps.conns) == 0 {
		delete(h.peers, p)
	}
	closing := h.closed
	h.mu.Unlock()
	cs.cancel()

	if gone != nil {
		h.log.Info("peer gone", "peer", p.String(), "device", gone.DeviceID, "name", gone.Name, "addr", cs.addr)
		if h.cfg.OnGone != nil {
			h.cfg.OnGone(*gone)
		}
	}
	if failed != nil && !closing {
		h.logFailure(p, cs.addr, failed)
	}
}

func (ps *peerState) admittedConn() *connState {
	for _, cs := range ps.conns {
		if cs.admitted {
			return cs
		}
	}
	return nil
}

// finishLocked records the outcome of cs and tells Connect callers waiting
// for its peer: success always, a failure only if the peer is not admitted
// on another connection. It reports whether this call decided the outcome.
// Host.mu must be held.
func (h *Host) finishLocked(cs *connState, err error) bool {
	if cs.isDone() {
		return false
	}
	cs.err = err
	cs.admitted = err == nil
	close(cs.done)
	if ps := h.peers[cs.id]; err != nil && ps != nil && ps.admitted {
		return true
	}
	for _, w := range h.waiters[cs.id] {
		select {
		case w <- err:
		default:
		}
	}
	delete(h.waiters, cs.id)
	return true
}

// fail ends the handshake of cs with err unless its outcome is already
// known; then it logs err and closes the connection. When the outcome was
// already known, whoever decided it closes (a refusal first sends its
// reason).
func (h *Host) fail(cs *connState, err error) {
	if h.decide(cs, err) {
		_ = cs.conn.Close()
	}
}

// decide records err as the outcome of cs unless one is already known, and
// logs it if this call decided, which it reports.
func (h *Host) decide(cs *connState, err error) bool {
	h.mu.Lock()
	decided := h.finishLocked(cs, err)
	closing := h.closed
	h.mu.Unlock()
	cs.cancel()
	if decided && !closing {
		h.logFailure(cs.id, cs.addr, err)
	}
	return decided
}

// logFailure writes the one log line of a failed handshake.
func (h *Host) logFailure(p peer.ID, addr string, err error) {
	var r *refusalError
	switch {
	case errors.As(err, &r) && r.byPeer:
		reason := r.reason
		if r.earlier {
			reason += " (earlier; it now drops our connections)"
		}
		h.log.Warn("refused by peer", "peer", p.String(), "addr", addr, "reason", reason)
	case errors.As(err, &r):
		h.log.Warn("refused peer", "peer", p.String(), "addr", addr, "reason", r.reason)
	default:
		h.log.Warn("handshake failed", "peer", p.String(), "addr", addr, "err", err)
	}
}

// explainDrop turns a connection lost mid-handshake into a refusal when that
// peer refused us recently: its gater drops us right after Noise.
func (h *Host) explainDrop(p peer.ID, cause error) error {
	if reason, ok := h.refusedBy.get(p, h.now()); ok {
		return &refusalError{byPeer: true, reason: reason, earlier: true, cause: cause}
	}
	return fmt.Errorf("%w: %w", ErrHandshake, cause)
}

// refusalError is the outcome of a refused credential, either way round.
type refusalError struct {
	byPeer  bool   // the peer refused ours (else we refused the peer's)
	reason  string // as Admit gave it, truncated
	earlier bool   // remembered from an earlier connection
	cause   error  // what ended this connection, when earlier
}

func (e *refusalError) Error() string {
	switch {
	case !e.byPeer:
		return ErrRefused.Error() + ": " + e.reason
	case e.earlier:
		return fmt.Sprintf("%s: %s (earlier; it now drops our connections: %v)", ErrRefusedByPeer, e.reason, e.cause)
	default:
		return ErrRefusedByPeer.Error() + ": " + e.reason
	}
}

func (e *refusalError) Unwrap() []error {
	sentinel := ErrRefused
	if e.byPeer {
		sentinel = ErrRefusedByPeer
	}
	if e.cause == nil {
		return []error{sentinel}
	}
	return []error{sentinel, e.cause}
}

// mark records one direction's success on cs; the connection is admitted
// once both have succeeded, and the peer with its first admitted
// connection.
func (h *Host) mark(cs *connState, in bool, info Peer) {
	h.cbMu.Lock()
	defer h.cbMu.Unlock()
	h.mu.Lock()
	if cs.isDone() {
		h.mu.Unlock()
		return
	}
	if in {
		cs.inOK, cs.info = true, info
	} else {
		cs.outOK = true
	}
	if !cs.inOK || !cs.outOK {
		h.mu.Unlock()
		return
	}
	h.finishLocked(cs, nil)
	ps := h.peers[cs.id]
	if ps == nil || ps.conns[cs.conn] != cs || ps.admitted {
		h.mu.Unlock()
		return
	}
	ps.admitted, ps.info = true, cs.info
	h.mu.Unlock()
	h.log.Info("peer admitted", "peer", cs.info.PeerID, "device", cs.info.DeviceID, "name", cs.info.Name, "addr", cs.addr)
	if h.cfg.OnAdmitted != nil {
		h.cfg.OnAdmitted(cs.info)
	}
}

// connAdmitted waits for the handshake of c (bounded by its deadline and
// ctx) and returns the peer if c was admitted.
func (h *Host) connAdmitted(ctx context.Context, c network.Conn) (Peer, bool) {
	h.mu.Lock()
	var cs *connState
	if ps := h.peers[c.RemotePeer()]; ps != nil {
		cs = ps.conns[c]
	}
	h.mu.Unlock()
	if cs == nil {
		return Peer{}, false
	}
	select {
	case <-cs.done:
	case <-cs.ctx.Done():
	case <-ctx.Done():
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := h.peers[cs.id]
	if !cs.admitted || ps == nil || !ps.admitted {
		return Peer{}, false
	}
	return ps.info, true
}

// runHandshake is the outbound half: send our credential on a hello stream
// of this connection, read the peer's verdict, then wait for the inbound
// half until the deadline.
func (h *Host) runHandshake(cs *connState) {
	defer h.wg.Done()
	defer cs.cancel()

	st, reason, err := h.sayHello(cs)
	switch {
	case err != nil:
		h.fail(cs, h.explainDrop(cs.id, h.describeHelloError(cs, err)))
		return
	case reason != "":
		// Decide before closing the stream: the refusing side closes the
		// connection as soon as we close, and the outcome must be ours.
		h.refusedBy.add(cs.id, reason, h.now(), h.cfg.DenyFor)
		h.decide(cs, &refusalError{byPeer: true, reason: reason})
		_ = st.Close()
		_ = h.host.Network().ClosePeer(cs.id)
		return
	}
	_ = st.Close()
	h.mark(cs, false, Peer{})

	select {
	case <-cs.done:
	case <-cs.ctx.Done():
		if h.ctx.Err() == nil && !cs.isDone() {
			h.fail(cs, fmt.Errorf("%w: timed out after %v waiting for the peer's credential", ErrHandshake, h.cfg.HandshakeTimeout))
		}
	}
}

// describeHelloError says in words what went wrong with our hello stream,
// for the operator reading the log.
func (h *Host) describeHelloError(cs *connState, err error) error {
	var se *network.StreamError
	switch {
	case errors.Is(err, msmux.ErrNotSupported[string]{}),
		errors.As(err, &se) && se.Remote && se.ErrorCode == network.StreamProtocolNegotiationFailed:
		return fmt.Errorf("peer does not speak %s (not a fieldsync device?): %w", helloProtocol, err)
	case !h.now().Before(cs.deadline):
		return fmt.Errorf("timed out after %v: %w", h.cfg.HandshakeTimeout, err)
	}
	return err
}

// sayHello sends our credential on a new hello stream of cs's connection
// and reads the peer's verdict: its refusal reason, "" when accepted. On
// success the caller closes the stream. Our side stays open for writing
// until then, so that the refusing side can tell from our close that its
// reason arrived.
func (h *Host) sayHello(cs *connState) (network.Stream, string, error) {
	st, err := cs.conn.NewStream(cs.ctx)
	if err != nil {
		return nil, "", fmt.Errorf("open hello stream: %w", err)
	}
	if err := st.SetProtocol(helloProtocol); err != nil {
		_ = st.Reset()
		return nil, "", fmt.Errorf("open hello stream: %w", err)
	}
	_ = st.SetDeadline(cs.deadline)
	// Lazy negotiation: the protocol proposal travels with the credential.
	rw := msmux.NewMSSelect(st, helloProtocol)
	if err := writeFrame(rw, h.cfg.Credential); err != nil {
		_ = st.Reset()
		return nil, "", fmt.Errorf("send credential: %w", err)
	}
	verdict, reason, err := readVerdict(rw)
	if err != nil {
		_ = st.Reset()
		return nil, "", fmt.Errorf("read verdict: %w", err)
	}
	if verdict == verdictAccepted {
		return st, "", nil
	}
	if reason == "" {
		reason = "no reason given"
	}
	return st, reason, nil
}

// handleHello is the inbound half: read the peer's credential, ask Admit,
// answer with the verdict.
func (h *Host) handleHello(st network.Stream) {
	conn := st.Conn()
	p := conn.RemotePeer()
	h.mu.Lock()
	var cs *connState
	if ps := h.peers[p]; ps != nil {
		cs = ps.conns[conn]
	}
	ok := cs != nil && !cs.inStarted && !cs.isDone()
	if ok {
		cs.inStarted = true
	}
	h.mu.Unlock()
	if !ok {
		// One credential per connection; anything else is left over from
		// a closed connection, or abuse.
		_ = st.Reset()
		return
	}
	_ = st.SetDeadline(cs.deadline)

	cred, err := readFrame(st, MaxCredentialSize)
	if errors.Is(err, errFrameTooLarge) {
		h.refuse(cs, st, fmt.Sprintf("credential larger than %d bytes", MaxCredentialSize))
		return
	}
	if err != nil {
		_ = st.Reset()
		h.fail(cs, h.explainDrop(p, fmt.Errorf("read credential: %w", err)))
		return
	}
	pub, err := ed25519Key(conn.RemotePublicKey())
	if err != nil {
		h.refuse(cs, st, err.Error())
		return
	}
	info, err := h.cfg.Admit(pub, cred)
	if err != nil {
		h.refuse(cs, st, err.Error())
		return
	}
	info.PeerID, info.PublicKey, info.Credential, info.Addr = p.String(), pub, cred, cs.addr
	if err := writeVerdict(st, verdictAccepted, ""); err != nil {
		_ = st.Reset()
		h.fail(cs, h.explainDrop(p, fmt.Errorf("send verdict: %w", err)))
		return
	}
	_ = st.Close()
	h.mark(cs, true, info)
}

// refuse decides the refusal (logging it), puts the peer on the deny list,
// tells it why and closes every connection of the peer: its key holds no
// valid credential, whatever its other connections showed before.
func (h *Host) refuse(cs *connState, st network.Stream, reason string) {
	reason = truncateReason(reason)
	h.deny.add(cs.id, reason, h.now(), h.cfg.DenyFor)
	h.decide(cs, &refusalError{reason: reason})
	if err := writeVerdict(st, verdictRefused, reason); err == nil {
		// Give the peer a moment to read the reason: closing the
		// connection at once could discard it in flight. The peer closes
		// the stream after reading, which ends this wait early; whatever
		// it still sends meanwhile (the rest of an oversized credential)
		// is discarded, for at most refusalLinger.
		_ = st.CloseWrite()
		linger := h.now().Add(refusalLinger)
		if cs.deadline.Before(linger) {
			linger = cs.deadline
		}
		_ = st.SetReadDeadline(linger)
		_, _ = io.Copy(io.Discard, st)
	}
	_ = st.Close()
	_ = h.host.Network().ClosePeer(cs.id)
}
