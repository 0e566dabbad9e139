package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// Sentinel errors. Callers test them with errors.Is; the wrapped error says
// which field or address was at fault.
var (
	// ErrInvalidConfig is returned by New when the Config fails validation.
	ErrInvalidConfig = errors.New("invalid membership config")

	// ErrBadAddress is returned for an address that is not HOST:PORT with a
	// port from 1 to 65534 (the gossip port is PORT+1, so 65535 has none).
	ErrBadAddress = errors.New("bad address")

	// ErrUnreachable is returned by Join and RejoinAbsent when none of the
	// addresses tried answered with a successful state exchange. A peer
	// holding another gossip key ends up here too: it cannot decrypt us and
	// we cannot decrypt it.
	ErrUnreachable = errors.New("no peer reached")

	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("membership closed")
)

// KeySize is the length in bytes of the gossip key (AES-256).
const KeySize = 32

// maxIDLen bounds DeviceID and PeerID so that the encoded metadata always
// fits memberlist.MetaMaxSize (512 bytes); memberlist panics beyond it.
// A libp2p peer id is about 52 characters.
const maxIDLen = 128

// Config configures a Membership. Start from DefaultConfig and fill in the
// identity, addresses and key; New validates it.
type Config struct {
	// DeviceID is this device's id; it is the memberlist node name, so it
	// must be unique in the team. Required, at most 128 bytes of UTF-8.
	DeviceID string

	// PeerID is the libp2p peer id string, gossiped so that peers can dial
	// and authenticate us. Required, at most 128 bytes.
	PeerID string

	// Listen is the libp2p listen address "HOST:PORT". Gossip binds HOST at
	// PORT+1 over TCP and UDP. HOST must be an IP address; 0.0.0.0 (or an
	// empty host) binds every IPv4 interface and advertises a private
	// address of this machine. Binding "::" needs Advertise.
	Listen string

	// Advertise is the optional libp2p address "HOST:PORT" other nodes
	// should use to reach us (e.g. behind NAT); gossip advertises HOST at
	// PORT+1 and the metadata carries PORT as the data port. HOST must be an
	// IP address. Empty: use Listen's.
	Advertise string

	// Key is the 32-byte gossip key in use: the one derived from the
	// deployment, or the one the newest revocation list sealed to this
	// device. Nodes with different keys cannot see each other.
	Key []byte

	// AlsoAccept are further keys that incoming gossip may be encrypted
	// with (a key being replaced, during its overlap); nothing is sent
	// with them. Each is KeySize bytes.
	AlsoAccept [][]byte

	// Label is memberlist's label, authenticated with every encrypted
	// packet and stream: a node with another label is refused even if it
	// holds the key, with a log line saying why. Use it to keep deployments
	// (or another program's memberlist on the same port) apart. Empty means
	// "fieldsync". At most 255 bytes.
	Label string

	// Logger receives memberlist's log lines (its DEBUG at Debug) and this
	// package's own. Nil discards them.
	Logger *slog.Logger

	// Events, if not nil, receives membership changes. The caller buffers
	// it; a send never blocks memberlist: when the channel is full the event
	// is dropped and counted (DroppedEvents), since the agent also re-reads
	// Members on its periodic pass.
	Events chan<- Event

	// Timings. DefaultConfig's values are gentler than memberlist's LAN
	// defaults because a team is a few to 12 laptops, often on battery:
	// fewer wake-ups matter more than second-fast failure detection. Tests
	// shrink them.

	// GossipInterval is how often queued gossip (joins, leaves, digest
	// updates) is sent to GossipNodes random peers. 500ms: with at most 12
	// nodes and 3 targets per round, news reaches everyone in about a
	// second, at 2.5 times fewer wake-ups than memberlist's 200ms.
	GossipInterval time.Duration

	// ProbeInterval is how often one random peer is probed for liveness.
	// 2s: halves memberlist's probing traffic; a laptop that vanished is
	// declared failed in about SuspicionMult*ProbeInterval (8s), which is
	// plenty for people walking away with their laptops.
	ProbeInterval time.Duration

	// ProbeTimeout is how long a direct probe waits for its ack before
	// asking others to probe indirectly. 1s (memberlist: 500ms): Wi-Fi
	// power saving delays packets by hundreds of milliseconds, and a
	// longer timeout costs nothing while all is well. Must be below
	// ProbeInterval.
	ProbeTimeout time.Duration

	// PushPullInterval is how often a full state exchange is made over TCP
	// with one random peer, healing anything gossip missed. 60s (memberlist:
	// 30s): the team's state is tiny and RejoinAbsent covers partitions.
	PushPullInterval time.Duration

	// GossipToTheDeadTime is how long gossip still goes to a node after it
	// was declared dead, giving it a chance to refute. 60s, matching
	// PushPullInterval; after that only RejoinAbsent brings it back.
	GossipToTheDeadTime time.Duration

	// SuspicionMult scales how long a node stays suspect before it is
	// declared dead: SuspicionMult * max(1, log10(N)) * ProbeInterval.
	// 4, memberlist's default.
	SuspicionMult int

	// TCPTimeout bounds connecting to a peer and each read and write of a
	// state exchange, so it is also what one unreachable address costs a
	// Join or RejoinAbsent. 5s (memberlist: 10s): a team's state is a few
	// hundred bytes, and a laptop that went away should not stall a rejoin
	// pass for long.
	TCPTimeout time.Duration

	// DeadNodeReclaimTime is how long after a node was declared dead its
	// name may come back from another address. 10s (memberlist: never):
	// laptops get a new address from DHCP when they roam, and without this
	// a peer that knew the old one refuses the device for good.
	DeadNodeReclaimTime time.Duration

	// UpdateTimeout is how long SetDigest waits for memberlist to finish
	// gossiping the new digest. memberlist counts an update finished once
	// it was sent RetransmitMult*log10(N+1) times (4 sends for up to 9
	// peers: about 2s with one peer at 500ms gossip rounds), which proves
	// nothing about delivery. 0, the default: don't wait; the update is
	// queued and leaves with the next gossip round or probe.
	UpdateTimeout time.Duration

	// LeaveTimeout bounds how long Close waits for the leave message to be
	// gossiped before shutting down (same counting as UpdateTimeout). 2s:
	// four gossip rounds, so peers learn of the leave at once instead of
	// suspecting this node for several seconds.
	LeaveTimeout time.Duration
}

// DefaultConfig returns the timings for a team of a few to 12 laptops on one
// LAN; the reason for each value is on its field. DeviceID, PeerID, Listen and
// Key must still be set.
func DefaultConfig() Config {
	return Config{
		GossipInterval:      500 * time.Millisecond,
		ProbeInterval:       2 * time.Second,
		ProbeTimeout:        time.Second,
		PushPullInterval:    60 * time.Second,
		GossipToTheDeadTime: 60 * time.Second,
		SuspicionMult:       4,
		TCPTimeout:          5 * time.Second,
		DeadNodeReclaimTime: 10 * time.Second,
		UpdateTimeout:       0,
		LeaveTimeout:        2 * time.Second,
	}
}

// bindPlan is what validate derives from Listen and Advertise.
type bindPlan struct {
	bindIP        netip.Addr // may be unspecified
	gossipPort    int        // Listen port + 1
	advertiseIP   netip.Addr // invalid when not set
	advertisePort int        // gossip port to advertise; 0 when not set
	dataPort      int        // libp2p port gossiped in the metadata
}

// validate checks c and works out the addresses to bind and advertise.
func (c *Config) validate() (bindPlan, error) {
	var p bindPlan
	bad := func(format string, args ...any) (bindPlan, error) {
		return bindPlan{}, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if err := checkID(c.DeviceID); err != nil {
		return bindPlan{}, fmt.Errorf("%w: device id: %w", ErrInvalidConfig, err)
	}
	if err := checkID(c.PeerID); err != nil {
		return bindPlan{}, fmt.Errorf("%w: peer id: %w", ErrInvalidConfig, err)
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		return bad("label is %d bytes, at most %d", len(c.Label), memberlist.LabelMaxSize)
	}
	if len(c.Key) != KeySize {
		return bad("key is %d bytes, want %d", len(c.Key), KeySize)
	}
	for _, k := range c.AlsoAccept {
		if len(k) != KeySize {
			return bad("accepted key is %d bytes, want %d", len(k), KeySize)
		}
	}

	ip, port, err := splitIPPort(c.Listen, true)
	if err != nil {
		return bindPlan{}, fmt.Errorf("%w: listen: %w", ErrInvalidConfig, err)
	}
	p.bindIP, p.gossipPort, p.dataPort = ip, port+1, port
	if c.Advertise != "" {
		aip, aport, err := splitIPPort(c.Advertise, false)
		if err != nil {
			return bindPlan{}, fmt.Errorf("%w: advertise: %w", ErrInvalidConfig, err)
		}
		if aip.IsUnspecified() {
			return bad("advertise %q: unspecified address", c.Advertise)
		}
		p.advertiseIP, p.advertisePort, p.dataPort = aip, aport+1, aport
	} else if ip.Is6() && ip.IsUnspecified() {
		// memberlist would advertise "::" itself; it only picks a private
		// address for 0.0.0.0.
		return bad("listen %q: binding [::] needs an advertise address", c.Listen)
	}

	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"gossip interval", c.GossipInterval},
		{"probe interval", c.ProbeInterval},
		{"probe timeout", c.ProbeTimeout},
		{"push/pull interval", c.PushPullInterval},
		{"gossip-to-the-dead time", c.GossipToTheDeadTime},
		{"tcp timeout", c.TCPTimeout},
		{"leave timeout", c.LeaveTimeout},
	} {
		if d.v <= 0 {
			return bad("%s must be positive (start from DefaultConfig)", d.name)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return bad("probe timeout %v must be below probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 1 {
		return bad("suspicion multiplier must be at least 1")
	}
	if c.DeadNodeReclaimTime < 0 {
		return bad("dead node reclaim time must not be negative")
	}
	if c.UpdateTimeout < 0 {
		return bad("update timeout must not be negative")
	}
	return p, nil
}

func checkID(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxIDLen:
		return fmt.Errorf("%d bytes, at most %d", len(s), maxIDLen)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	return nil
}

// GossipAddr returns the memberlist address that goes with the libp2p
// address listen ("HOST:PORT"): the same host at PORT+1. HOST may be a name,
// an IPv4 or a bracketed IPv6 address, or empty; it is kept as given. The
// error wraps ErrBadAddress when listen is not HOST:PORT or PORT is not
// from 1 to 65534.
func GossipAddr(listen string) (string, error) {
	host, port, err := splitHostPort(listen)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port+1)), nil
}

// splitHostPort splits a libp2p-style address and checks that its port has
// a successor.
func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %q: port %q is not a number from 1 to 65534", ErrBadAddress, addr, ps)
	}
	switch port {
	case 0:
		return "", 0, fmt.Errorf("%w: %q: port 0 has no fixed gossip port", ErrBadAddress, addr)
	case 65535:
		return "", 0, fmt.Errorf("%w: %q: port 65535 leaves no port for gossip", ErrBadAddress, addr)
	}
	return host, int(port), nil
}

// splitIPPort is splitHostPort for addresses whose host must be an IP
// literal (memberlist binds and advertises IPs only). An empty host is
// allowed when emptyOK and means 0.0.0.0.
func splitIPPort(addr string, emptyOK bool) (netip.Addr, int, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	if host == "" && emptyOK {
		return netip.IPv4Unspecified(), port, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("%w: %q: host must be an IP address without zone", ErrBadAddress, addr)
	}
	return ip.Unmap(), port, nil
}
