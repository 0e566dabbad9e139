package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
)

// Stream is a bidirectional byte stream to an admitted peer, multiplexed on
// the peer's connection. Close closes both directions; CloseWrite sends EOF
// and keeps reading; Reset aborts both directions at once.
type Stream interface {
	io.Reader
	io.Writer
	io.Closer
	CloseWrite() error
	Reset() error
	SetDeadline(time.Time) error
}

var _ Stream = network.Stream(nil)

// connectGrace is how long Connect waits beyond HandshakeTimeout for the
// handshake's outcome, covering the dial itself and identify.
const connectGrace = 2 * time.Second

// Host is a libp2p host that lets only admitted peers use its protocols. It
// is safe for concurrent use.
type Host struct {
	cfg  Config
	log  *slog.Logger
	host host.Host
	self peer.ID
	wire *wireCounter

	deny      *peerMemory // peers we refused: the gater drops them
	refusedBy *peerMemory // peers that refused us: explains dropped conns
	now       func() time.Time

	// ctx is cancelled by Close; every goroutine this package starts
	// watches it and is counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mdns   io.Closer

	// cbMu is held across each admitted/gone transition and its callback,
	// so that a peer's OnAdmitted and OnGone calls never overtake each
	// other. It is taken before mu and never by the callbacks' callees.
	cbMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	peers   map[peer.ID]*peerState
	waiters map[peer.ID][]chan error
	dialing map[peer.ID]bool // mDNS dials in flight
}

// New starts a host listening on cfg.Listen. The caller must Close it.
func New(cfg Config) (*Host, error) {
	listen, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrInvalidConfig, err)
	}
	self, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrInvalidConfig, err)
	}
	rm, err := newResourceManager()
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		cfg:       cfg,
		log:       logger,
		self:      self,
		wire:      &wireCounter{},
		deny:      newPeerMemory(),
		refusedBy: newPeerMemory(),
		now:       time.Now,
		ctx:       ctx,
		cancel:    cancel,
		peers:     make(map[peer.ID]*peerState),
		waiters:   make(map[peer.ID][]chan error),
		dialing:   make(map[peer.ID]bool),
	}
	g := &gater{deny: h.deny, log: logger, now: h.now}

	// Only TCP + Noise + yamux. No QUIC, relay, NAT port mapping, hole
	// punching, AutoNAT probing or ping: laptops on one LAN reach each
	// other directly, and every extra service is a protocol a stranger can
	// talk to before the credential check. Listening starts below, once
	// the hello handler and the connection notifications are in place.
	lh, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.NoListenAddrs,
		libp2p.NoTransports,
		libp2p.Transport(newCountingTCP(h.wire, cfg.HandshakeTimeout)),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(g),
		libp2p.ConnectionManager(connmgr.NullConnMgr{}),
		libp2p.WithDialTimeout(cfg.HandshakeTimeout),
		libp2p.UserAgent("fieldsync"),
	)
	if err != nil {
		cancel()
		_ = rm.Close()
		return nil, fmt.Errorf("start libp2p: %w", err)
	}
	h.host = lh
	lh.SetStreamHandler(helloProtocol, h.handleHello)
	lh.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { h.connOpened(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { h.connClosed(c) },
	})
	if err := lh.Network().Listen(listen); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if cfg.MDNS {
		if err := h.startMDNS(); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	return h, nil
}

// PeerID returns this host's libp2p peer id string.
func (h *Host) PeerID() string { return h.self.String() }

// ListenAddrs returns the "host:port" TCP addresses the host is bound to. An
// unspecified Listen host stays unspecified ("0.0.0.0:PORT").
func (h *Host) ListenAddrs() []string {
	var out []string
	for _, a := range h.host.Network().ListenAddresses() {
		if s := hostPort(a); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Connect dials addr ("host:port") expecting the peer to prove peerID, then
// waits until the credential handshake has completed in both directions. It
// returns nil at once if the peer is already admitted. A refusal of our
// credential returns an error wrapping ErrRefusedByPeer whose text carries
// the peer's reason; our refusal of the peer's wraps ErrRefused; a peer on
// our deny list gives ErrDenied without dialling.
func (h *Host) Connect(ctx context.Context, peerID string, addr string) error {
	p, err := decodePeerID(peerID)
	if err != nil {
		return err
	}
	a, err := dialMultiaddr(addr)
	if err != nil {
		return err
	}
	if err := h.connect(ctx, p, []ma.Multiaddr{a}); err != nil {
		return fmt.Errorf("connect %s at %s: %w", peerID, addr, err)
	}
	return nil
}

// connect dials p at addrs and waits for the handshake's outcome.
func (h *Host) connect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) error {
	if p == h.self {
		return fmt.Errorf("%w: that is this host's own peer id", ErrBadPeerID)
	}
	if reason, denied := h.deny.get(p, h.now()); denied {
		return fmt.Errorf("%w: refused earlier: %s", ErrDenied, reason)
	}

	// Register for the outcome before dialling, so that an outcome reached
	// while Connect is still returning from the dial is not missed.
	w, err := h.register(ctx, p)
	if w == nil {
		return err
	}
	defer h.dropWaiter(p, w)

	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	// Dial exactly the address asked for: the peerstore may hold addresses
	// identify learned earlier (the peer's own listen address behind a
	// proxy or a port forward), which the swarm would otherwise try first.
	h.host.Peerstore().ClearAddrs(p)
	if err := h.host.Connect(dctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		if h.ctx.Err() != nil {
			return ErrClosed
		}
		if errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			reason, _ := h.deny.get(p, h.now())
			return fmt.Errorf("%w: refused earlier: %s", ErrDenied, reason)
		}
		return fmt.Errorf("dial: %w", err)
	}

	timer := time.NewTimer(h.cfg.HandshakeTimeout + connectGrace)
	defer timer.Stop()
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
	case <-h.ctx.Done():
		return ErrClosed
	case <-timer.C:
		return fmt.Errorf("%w: no outcome within %v", ErrHandshake, h.cfg.HandshakeTimeout+connectGrace)
	}
}

// register returns a channel that receives the outcome of p's next
// handshake, or a nil channel and the answer when there is nothing to wait
// for (p admitted: nil error). Connections whose handshake failed and that
// are still closing are waited out first: dialling while they exist would
// reuse them and learn nothing.
func (h *Host) register(ctx context.Context, p peer.ID) (chan error, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		ps := h.peers[p]
		if ps != nil && ps.admitted {
			h.mu.Unlock()
			return nil, nil
		}
		var dying []*connState
		pending := false
		if ps != nil {
			for _, cs := range ps.conns {
				if cs.isDone() {
					dying = append(dying, cs)
				} else {
					pending = true
				}
			}
		}
		if pending || len(dying) == 0 {
			w := make(chan error, 1)
			h.waiters[p] = append(h.waiters[p], w)
			h.mu.Unlock()
			return w, nil
		}
		h.mu.Unlock()
		for _, cs := range dying {
			select {
			case <-cs.gone:
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
			case <-h.ctx.Done():
				return nil, ErrClosed
			}
		}
	}
}

func (h *Host) dropWaiter(p peer.ID, w chan error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := slices.DeleteFunc(h.waiters[p], func(c chan error) bool { return c == w })
	if len(ws) == 0 {
		delete(h.waiters, p)
	} else {
		h.waiters[p] = ws
	}
}

// Admitted returns the peers admitted now, sorted by PeerID. The slice is the
// caller's.
func (h *Host) Admitted() []Peer {
	h.mu.Lock()
	var out []Peer
	for _, ps := range h.peers {
		if ps.admitted {
			out = append(out, ps.info)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int {
		switch {
		case a.PeerID < b.PeerID:
			return -1
		case a.PeerID > b.PeerID:
			return 1
		}
		return 0
	})
	return out
}

// IsAdmitted reports whether peerID has completed the handshake and still has
// a connection.
func (h *Host) IsAdmitted(peerID string) bool {
	p, err := peer.Decode(peerID)
	if err != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := h.peers[p]
	return ps != nil && ps.admitted
}

// Handle registers fn for streams of protocol from admitted peers. A stream
// from any other peer, or on a connection whose handshake failed, is reset
// before fn sees it; a stream that arrives while its connection's handshake
// is still finishing waits for the outcome. fn
// runs on its own goroutine per stream, owns the stream and must Close or
// Reset it. Registering a protocol again replaces its handler.
func (h *Host) Handle(proto string, fn func(Peer, Stream)) {
	h.host.SetStreamHandler(protocol.ID(proto), func(st network.Stream) {
		pe, ok := h.connAdmitted(h.ctx, st.Conn())
		if !ok {
			h.log.Warn("reset stream from peer not admitted", "peer", st.Conn().RemotePeer().String(),
				"addr", hostPort(st.Conn().RemoteMultiaddr()), "protocol", proto)
			_ = st.Reset()
			return
		}
		fn(pe, st)
	})
}

// Open opens a stream of protocol to an admitted peer over an existing
// connection; it never dials. If the peer's handshake is under way it waits
// for it (bounded by ctx). It fails with ErrNotAdmitted for any other peer,
// and with the negotiation's error when the peer does not handle protocol.
func (h *Host) Open(ctx context.Context, peerID string, proto string) (Stream, error) {
	p, err := decodePeerID(peerID)
	if err != nil {
		return nil, err
	}
	if err := h.awaitAdmission(ctx, p); err != nil {
		return nil, fmt.Errorf("open %s to %s: %w", proto, peerID, err)
	}
	st, err := h.host.NewStream(network.WithNoDial(ctx, "streams only to admitted peers"), p, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("open %s to %s: %w", proto, peerID, err)
	}
	return st, nil
}

// awaitAdmission returns nil if p is admitted, waiting for a handshake
// under way; ErrNotAdmitted if there is none or it fails.
func (h *Host) awaitAdmission(ctx context.Context, p peer.ID) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	ps := h.peers[p]
	if ps != nil && ps.admitted {
		h.mu.Unlock()
		return nil
	}
	pending := false
	if ps != nil {
		for _, cs := range ps.conns {
			pending = pending || !cs.isDone()
		}
	}
	if !pending {
		h.mu.Unlock()
		return ErrNotAdmitted
	}
	w := make(chan error, 1)
	h.waiters[p] = append(h.waiters[p], w)
	h.mu.Unlock()
	defer h.dropWaiter(p, w)
	timer := time.NewTimer(h.cfg.HandshakeTimeout)
	defer timer.Stop()
	select {
	case err := <-w:
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotAdmitted, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotAdmitted, ctx.Err())
	case <-h.ctx.Done():
		return ErrClosed
	case <-timer.C:
		return ErrNotAdmitted
	}
}

// Disconnect closes every connection to peerID. OnGone follows if the peer
// was admitted. The peer may connect again.
func (h *Host) Disconnect(peerID string) error {
	p, err := decodePeerID(peerID)
	if err != nil {
		return err
	}
	if err := h.host.Network().ClosePeer(p); err != nil {
		return fmt.Errorf("disconnect %s: %w", peerID, err)
	}
	return nil
}

// WireBytes returns the bytes read from and written to this host's TCP
// sockets since New: payload plus Noise framing, yamux headers, multistream
// negotiation, identify and the hello handshake.
func (h *Host) WireBytes() (in, out uint64) {
	return h.wire.in.Load(), h.wire.out.Load()
}

// Close stops discovery, closes every connection and the listener, waits for
// the goroutines this package started, and calls OnGone for peers that were
// still admitted. Calling it again returns nil.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()

	h.cancel()
	if h.mdns != nil {
		_ = h.mdns.Close()
	}
	err := h.host.Close()
	h.wg.Wait()

	h.cbMu.Lock()
	defer h.cbMu.Unlock()
	h.mu.Lock()
	var gone []Peer
	for p, ps := range h.peers {
		for _, cs := range ps.conns {
			h.finishLocked(cs, ErrClosed)
			cs.cancel()
		}
		if ps.admitted {
			gone = append(gone, ps.info)
		}
		delete(h.peers, p)
	}
	h.mu.Unlock()
	for _, pe := range gone {
		if h.cfg.OnGone != nil {
			h.cfg.OnGone(pe)
		}
	}
	if err != nil {
		return fmt.Errorf("close libp2p host: %w", err)
	}
	return nil
}

// PeerIDFromPublicKey returns the libp2p peer id string of an ed25519 public
// key: the id a device with that key has on the wire.
func PeerIDFromPublicKey(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadPeerID, len(pub), ed25519.PublicKeySize)
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPeerID, err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPeerID, err)
	}
	return id.String(), nil
}

func decodePeerID(s string) (peer.ID, error) {
	p, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrBadPeerID, s, err)
	}
	return p, nil
}

// ed25519Key extracts the ed25519 public key a peer proved in Noise.
func ed25519Key(pk crypto.PubKey) (ed25519.PublicKey, error) {
	if pk == nil {
		return nil, errors.New("no public key on the connection")
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("peer key is %s, not ed25519", pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil {
		return nil, fmt.Errorf("peer key: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("peer key is %d bytes", len(raw))
	}
	return ed25519.PublicKey(raw), nil
}
