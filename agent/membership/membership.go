package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// defaultLabel is memberlist's label when Config.Label is empty.
const defaultLabel = "fieldsync"

// maxKnown bounds the remembered addresses (a team is at most a dozen
// laptops, each seen at a few addresses as it roams); beyond it the address
// joined or seen longest ago is forgotten.
const maxKnown = 64

// maxBadLogged bounds the set of nodes whose undecodable metadata was
// already logged.
const maxBadLogged = 256

// Membership is this node's membership of the team on the LAN. Its methods
// are safe for concurrent use.
type Membership struct {
	cfg    Config // Key is a private copy
	plan   bindPlan
	log    *slog.Logger
	ml     *memberlist.Memberlist
	self   string // own advertised gossip address, canonical form
	events chan<- Event

	// updateMu serialises SetDigest so that updates reach memberlist in
	// order. Never held by memberlist callbacks.
	updateMu sync.Mutex
	own      atomic.Pointer[ownMeta] // read by NodeMeta without locks

	// lifeMu serialises Leave and Close: memberlist panics on Leave after
	// Shutdown.
	lifeMu sync.Mutex

	// mu guards the fields below. It is a leaf lock: memberlist calls our
	// delegates while holding its own node lock and those take mu, so no
	// memberlist method may be called with mu held.
	mu        sync.Mutex
	members   map[string]memberEntry   // alive members except self, by DeviceID
	known     map[string]knownAddr     // gossip address -> what we know of it
	seq       uint64                   // orders known addresses by recency
	badLogged map[string]bool          // node names whose bad metadata was logged
	conflicts map[string]conflictEntry // by DeviceID (conflict.go)
	left      bool                     // Leave or Close began
	closed    bool                     // Close began: no more events are sent

	keys keyRotation

	dropped     atomic.Uint64 // events dropped on a full channel
	metaUpdates atomic.Uint64 // UpdateNode calls made by SetDigest

	now func() time.Time // the clock conflicts are dated by; tests replace it
}

type ownMeta struct {
	meta Meta
	enc  []byte
}

type memberEntry struct {
	member Member
	gossip string // gossip address, canonical form
}

type knownAddr struct {
	name string // device last seen at this address; "" if only joined
	seq  uint64 // last joined or seen
}

// New validates cfg, then creates and starts the memberlist instance: from
// here on this node answers gossip at Listen's PORT+1. It joins no one;
// call Join.
func New(cfg Config) (*Membership, error) {
	plan, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cfg.Key = bytes.Clone(cfg.Key)
	cfg.AlsoAccept = slices.Clone(cfg.AlsoAccept)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Membership{
		cfg:       cfg,
		plan:      plan,
		log:       logger,
		events:    cfg.Events,
		members:   make(map[string]memberEntry),
		known:     make(map[string]knownAddr),
		badLogged: make(map[string]bool),
		conflicts: make(map[string]conflictEntry),
		now:       time.Now,
	}
	own := Meta{DeviceID: cfg.DeviceID, PeerID: cfg.PeerID, DataPort: plan.dataPort}
	enc, err := encodeMeta(own)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	m.own.Store(&ownMeta{meta: own, enc: enc})

	mc, err := m.memberlistConfig()
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w",
			net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
	}
	m.ml = ml
	m.self = nodeGossipAddr(ml.LocalNode())
	return m, nil
}

// memberlistConfig builds memberlist's configuration: its LAN defaults with
// our identity, addresses, key and gentler timings (reasons on Config).
func (m *Membership) memberlistConfig() (*memberlist.Config, error) {
	keyring, err := memberlist.NewKeyring(m.cfg.AlsoAccept, m.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrInvalidConfig, err)
	}
	m.keys.ring = keyring
	mc := memberlist.DefaultLANConfig()
	mc.Name = m.cfg.DeviceID
	mc.BindAddr = m.plan.bindIP.String()
	mc.BindPort = m.plan.gossipPort
	mc.AdvertisePort = m.plan.gossipPort
	if m.plan.advertiseIP.IsValid() {
		mc.AdvertiseAddr = m.plan.advertiseIP.String()
		mc.AdvertisePort = m.plan.advertisePort
	}
	mc.Keyring = keyring
	// Refuse anything not encrypted with the key, both ways.
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Label = m.cfg.Label
	if mc.Label == "" {
		mc.Label = defaultLabel
	}

	mc.GossipInterval = m.cfg.GossipInterval
	mc.ProbeInterval = m.cfg.ProbeInterval
	mc.ProbeTimeout = m.cfg.ProbeTimeout
	mc.PushPullInterval = m.cfg.PushPullInterval
	mc.GossipToTheDeadTime = m.cfg.GossipToTheDeadTime
	mc.SuspicionMult = m.cfg.SuspicionMult
	mc.TCPTimeout = m.cfg.TCPTimeout
	mc.DeadNodeReclaimTime = m.cfg.DeadNodeReclaimTime

	mc.Delegate = delegate{m}
	mc.Events = eventDelegate{m}
	mc.Conflict = conflictDelegate{m}
	mc.Logger = newStdLogger(m.log)
	return mc, nil
}

// Join contacts the given libp2p-style addresses ("HOST:PORT"; gossip is at
// PORT+1) and exchanges state with each, so that this node and the team
// learn of each other. Every valid address is remembered for RejoinAbsent,
// reached or not; this node's own address is skipped, so a team may share
// one peer list. It returns how many addresses answered. The error wraps
// ErrBadAddress for addresses that could not be parsed (the others are
// still tried) and ErrUnreachable when none answered. Join blocks for up to
// TCPTimeout per unreachable address.
func (m *Membership) Join(addrs []string) (int, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	var targets []string
	var errs []error
	for _, a := range addrs {
		key, err := canonicalGossipAddr(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if key == "" {
			errs = append(errs, fmt.Errorf("%w: %q: no host", ErrBadAddress, a))
			continue
		}
		if m.isSelf(key) || slices.Contains(targets, key) {
			continue
		}
		targets = append(targets, key)
	}
	m.mu.Lock()
	for _, t := range targets {
		m.rememberLocked(t, "")
	}
	m.mu.Unlock()

	n := 0
	if len(targets) > 0 {
		var err error
		n, err = m.ml.Join(targets)
		if n == 0 {
			errs = append(errs, fmt.Errorf("%w: %w", ErrUnreachable, err))
		}
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("join: %w", errors.Join(errs...))
	}
	return n, nil
}

// RejoinAbsent joins again every remembered address (joined before, or seen
// as a member's) where no member is alive now, skipping addresses whose
// last-seen member is alive elsewhere. memberlist stops probing a node dead
// for longer than GossipToTheDeadTime, so without this two laptops that
// were apart for a while never find each other again. The agent calls it on
// a timer; it starts nothing itself. It returns how many addresses answered,
// and an error wrapping ErrUnreachable when some were tried and none
// answered. Like Join, it blocks for up to TCPTimeout per unreachable
// address.
func (m *Membership) RejoinAbsent() (int, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	present := make(map[string]bool)
	var targets []string
	m.mu.Lock()
	for _, e := range m.members {
		present[e.gossip] = true
	}
	for addr, k := range m.known {
		if present[addr] {
			continue
		}
		if _, ok := m.members[k.name]; ok && k.name != "" {
			continue // that device is here, at another address
		}
		targets = append(targets, addr)
	}
	m.mu.Unlock()

	targets = slices.DeleteFunc(targets, func(addr string) bool {
		return m.resolvesToPresent(addr, present)
	})
	if len(targets) == 0 {
		return 0, nil
	}
	slices.Sort(targets)
	n, err := m.ml.Join(targets)
	if n == 0 {
		return 0, fmt.Errorf("rejoin %d addresses: %w: %w", len(targets), ErrUnreachable, err)
	}
	m.log.Debug("rejoined absent peers", "tried", len(targets), "reached", n)
	return n, nil
}

// resolvesToPresent reports whether addr names a host (not an IP) that
// resolves to the address of a member alive now.
func (m *Membership) resolvesToPresent(addr string, present map[string]bool) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return false // an IP: already compared
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TCPTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return false // let Join try, and report
	}
	for _, ip := range ips {
		if present[netip.AddrPortFrom(ip.Unmap(), uint16(p)).String()] {
			return true
		}
	}
	return false
}

// Members returns the members alive now, except this node, sorted by
// DeviceID. Members whose metadata cannot be decoded are left out. The
// caller owns the slice.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		out = append(out, e.member)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
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

// SetDigest sets the version-vector digest in this node's metadata and
// queues it for gossip, so peers learn that this node has something new.
// Setting the value it already has does nothing. With UpdateTimeout 0 (the
// default) it does not wait for the gossip to go out; otherwise it waits up
// to UpdateTimeout. After Leave or Close it only records d.
func (m *Membership) SetDigest(d uint64) {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	cur := m.own.Load()
	if cur.meta.Digest == d {
		return
	}
	meta := cur.meta
	meta.Digest = d
	enc, err := encodeMeta(meta)
	if err != nil {
		// Cannot happen: only the digest changed, and a uint64 is bounded.
		m.log.Error("gossip digest", "err", err)
		return
	}
	m.own.Store(&ownMeta{meta: meta, enc: enc})

	m.mu.Lock()
	left := m.left
	m.mu.Unlock()
	if left {
		return
	}
	m.metaUpdates.Add(1)
	// memberlist's only way not to wait is a timeout that has passed: its
	// 0 means "wait forever". The update is queued either way; the only
	// error UpdateNode returns is this timeout.
	timeout := m.cfg.UpdateTimeout
	if timeout == 0 {
		timeout = time.Nanosecond
	}
	if err := m.ml.UpdateNode(timeout); err != nil && m.cfg.UpdateTimeout > 0 {
		m.log.Debug("digest update still being gossiped", "digest", d, "err", err)
	}
}

// Leave tells the team that this node is leaving, waiting up to timeout for
// the message to go out to at least one peer. Peers see a Left event at
// once instead of suspecting this node for seconds. Afterwards this node
// still answers gossip until Close, but Join and RejoinAbsent return
// ErrClosed.
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	closed := m.closed
	m.left = true
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Close leaves the team (waiting up to LeaveTimeout, unless Leave was
// called) and shuts memberlist down, releasing its sockets. No event is sent
// once Close has begun, so the caller may close its Events channel after
// Close returns. Closing twice is harmless.
func (m *Membership) Close() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	wasLeft, wasClosed := m.left, m.closed
	m.left, m.closed = true, true
	m.mu.Unlock()
	if wasClosed {
		return nil
	}
	m.stopRotation()
	if !wasLeft {
		if err := m.ml.Leave(m.cfg.LeaveTimeout); err != nil {
			// Not worth failing Close over: peers will find us gone by
			// probing within seconds.
			m.log.Debug("leave before close", "err", err)
		}
	}
	if err := m.ml.Shutdown(); err != nil {
		return fmt.Errorf("shut down gossip: %w", err)
	}
	return nil
}

// DroppedEvents returns how many events were dropped because the Events
// channel was full.
func (m *Membership) DroppedEvents() uint64 {
	return m.dropped.Load()
}

func (m *Membership) usable() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.left {
		return ErrClosed
	}
	return nil
}

// rememberLocked records that addr was joined, or seen as name's address
// (name != ""), forgetting the stalest address beyond maxKnown.
func (m *Membership) rememberLocked(addr, name string) {
	m.seq++
	k := m.known[addr]
	k.seq = m.seq
	if name != "" {
		k.name = name
	}
	m.known[addr] = k
	if len(m.known) <= maxKnown {
		return
	}
	oldest, oldestSeq := "", uint64(0)
	for a, k := range m.known {
		if oldest == "" || k.seq < oldestSeq {
			oldest, oldestSeq = a, k.seq
		}
	}
	delete(m.known, oldest)
}

// isSelf reports whether the canonical gossip address addr is this node's,
// so that a peer list shared by the whole team can include everyone.
func (m *Membership) isSelf(addr string) bool {
	if addr == m.self {
		return true
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || int(ap.Port()) != m.plan.gossipPort {
		return false // a host name, or another port
	}
	ip := ap.Addr()
	if ip == m.plan.bindIP {
		return true
	}
	if !m.plan.bindIP.IsUnspecified() {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range ifAddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// canonicalGossipAddr turns a libp2p-style address into the gossip address
// memberlist will use, in the form nodeGossipAddr produces for members so
// that the two compare equal. A host name is kept as given (lower case).
// It returns "" without error for an empty host.
func canonicalGossipAddr(libp2pAddr string) (string, error) {
	host, port, err := splitHostPort(libp2pAddr)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "", nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(port+1)).String(), nil
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(port+1)), nil
}

// nodeGossipAddr is the canonical gossip address of a memberlist node, or ""
// if it has none.
func nodeGossipAddr(n *memberlist.Node) string {
	ip, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return ""
	}
	return netip.AddrPortFrom(ip.Unmap(), n.Port).String()
}
