package transport

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// MaxCredentialSize bounds the credential a peer may send in the hello
// handshake, and our own. A fieldsync credential is a few hundred bytes; the
// bound keeps a stranger from making us buffer much before Admit runs.
const MaxCredentialSize = 4 << 10

// maxServiceLen bounds MDNSService: it becomes one DNS label, at most 63
// bytes, of which "_" takes one.
const maxServiceLen = 62

// Peer is an admitted device as the transport knows it.
type Peer struct {
	// PeerID is the libp2p peer id string, derived from PublicKey.
	PeerID string
	// PublicKey is the device key the peer proved in the Noise handshake.
	PublicKey ed25519.PublicKey
	// DeviceID is filled in by Config.Admit.
	DeviceID string
	// Name is filled in by Config.Admit.
	Name string
	// Credential is the marshalled credential the peer presented.
	Credential []byte
	// Addr is the remote "host:port" of the connection the peer was
	// admitted on.
	Addr string
}

// Config configures a Host. Start from DefaultConfig and fill in Key,
// Credential and Admit; New validates it.
type Config struct {
	// Listen is the TCP address "HOST:PORT" to listen on. HOST must be an IP
	// address; an empty HOST means 0.0.0.0. Port 0 picks a free port
	// (ListenAddrs tells which).
	Listen string

	// Key is this device's ed25519 private key; the libp2p identity (peer
	// id) is derived from it. Required.
	Key ed25519.PrivateKey

	// Credential is this device's marshalled credential, sent to every peer
	// in the hello handshake. Opaque to this package. Required, at most
	// MaxCredentialSize bytes.
	Credential []byte

	// Admit decides whether a peer belongs to the deployment. It gets the
	// public key the peer proved in the Noise handshake and the credential
	// it presented; it returns the Peer (DeviceID and Name filled in) or an
	// error whose text is logged and sent back to the peer as the reason, so
	// it must not contain secrets. It runs once per new peer connection, on
	// a libp2p stream goroutine; it should take milliseconds. Required.
	Admit func(pub ed25519.PublicKey, credential []byte) (Peer, error)

	// MDNS turns on discovery of peers on the LAN by multicast DNS; found
	// peers are dialled and put through the handshake. Off by default so
	// that nothing multicasts unless the agent asks: tests and demos run on
	// loopback, where mDNS would leak onto the machine's real network.
	MDNS bool

	// MDNSService names the DNS-SD service this deployment advertises and
	// browses, as one DNS label of letters, digits and '-' (the service type
	// is "_<MDNSService>._udp"). Use one per deployment, e.g.
	// "fieldsync-<deployment id>", so that laptops of other deployments on
	// the same Wi-Fi are not even dialled. Default "fieldsync".
	MDNSService string

	// HandshakeTimeout bounds the credential handshake of a new connection,
	// both directions together; the connection is closed when it runs out.
	// 10s: a handshake is three round trips plus two signature checks, and
	// Wi-Fi power saving can add hundreds of milliseconds to each.
	HandshakeTimeout time.Duration

	// DenyFor is how long a peer we refused stays on the deny list, during
	// which the connection gater drops its connections right after the
	// Noise handshake, before any credential is read. 10 minutes: long
	// enough that a misconfigured laptop retrying every few seconds costs
	// next to nothing, short enough that a device whose credential was
	// renewed gets in without a restart.
	DenyFor time.Duration

	// Logger receives this package's log lines (refusals at Warn,
	// admissions and departures at Info). Nil discards them.
	Logger *slog.Logger

	// OnAdmitted is called when a peer completes the handshake in both
	// directions (we admitted its credential and it admitted ours) on its
	// first admitted connection. OnGone is called when its last admitted
	// connection closes, and at Close for peers still admitted. For one peer the calls alternate,
	// starting with OnAdmitted. They must not block and must not call
	// Connect, Disconnect or Close (the agent hands off to its own
	// goroutines); they may call Admitted and IsAdmitted. Either may be nil.
	OnAdmitted func(Peer)
	OnGone     func(Peer)
}

// DefaultConfig returns the defaults for a team of a few to 12 laptops on one
// LAN; the reason for each value is on its field. Key, Credential and Admit
// must still be set.
func DefaultConfig() Config {
	return Config{
		Listen:           "0.0.0.0:0",
		MDNSService:      "fieldsync",
		HandshakeTimeout: 10 * time.Second,
		DenyFor:          10 * time.Minute,
	}
}

// validate checks c and returns the listen multiaddr.
func (c *Config) validate() (ma.Multiaddr, error) {
	bad := func(format string, args ...any) (ma.Multiaddr, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return bad("key is %d bytes, want %d", len(c.Key), ed25519.PrivateKeySize)
	}
	if len(c.Credential) == 0 {
		return bad("no credential")
	}
	if len(c.Credential) > MaxCredentialSize {
		return bad("credential is %d bytes, at most %d", len(c.Credential), MaxCredentialSize)
	}
	if c.Admit == nil {
		return bad("no Admit function")
	}
	if c.HandshakeTimeout <= 0 {
		return bad("handshake timeout %v is not positive", c.HandshakeTimeout)
	}
	if c.DenyFor <= 0 {
		return bad("deny duration %v is not positive", c.DenyFor)
	}
	if c.MDNS {
		if err := checkServiceName(c.MDNSService); err != nil {
			return nil, fmt.Errorf("%w: mdns service: %w", ErrInvalidConfig, err)
		}
	}
	addr, err := listenMultiaddr(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen: %w", ErrInvalidConfig, err)
	}
	return addr, nil
}

// checkServiceName accepts one DNS label of ASCII letters, digits and '-',
// not starting or ending with '-'.
func checkServiceName(s string) error {
	if s == "" || len(s) > maxServiceLen {
		return fmt.Errorf("%q: want 1 to %d characters", s, maxServiceLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-'
		if !ok {
			return fmt.Errorf("%q: character %q not allowed (letters, digits, '-')", s, b)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("%q: must not start or end with '-'", s)
	}
	return nil
}

// listenMultiaddr turns "HOST:PORT" (HOST an IP, possibly empty) into a TCP
// multiaddr.
func listenMultiaddr(s string) (ma.Multiaddr, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return nil, err
	}
	ip := netip.IPv4Unspecified()
	if host != "" {
		ip, err = netip.ParseAddr(host)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%w: %q: host must be an IP address", ErrBadAddress, s)
		}
	}
	return tcpMultiaddr(netip.AddrPortFrom(ip.Unmap(), port))
}

// dialMultiaddr turns "HOST:PORT" into a TCP multiaddr to dial. HOST may be
// an IP address or a DNS name (resolved by libp2p when dialling).
func dialMultiaddr(s string) (ma.Multiaddr, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		return nil, fmt.Errorf("%w: %q: port 0", ErrBadAddress, s)
	}
	if host == "" {
		return nil, fmt.Errorf("%w: %q: no host", ErrBadAddress, s)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, fmt.Errorf("%w: %q: zoned addresses are not supported", ErrBadAddress, s)
		}
		return tcpMultiaddr(netip.AddrPortFrom(ip.Unmap(), port))
	}
	a, err := ma.NewMultiaddr("/dns/" + host + "/tcp/" + strconv.Itoa(int(port)))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadAddress, s, err)
	}
	return a, nil
}

func splitHostPort(s string) (string, uint16, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %q: %w", ErrBadAddress, s, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %q: bad port", ErrBadAddress, s)
	}
	return host, uint16(port), nil
}

func tcpMultiaddr(ap netip.AddrPort) (ma.Multiaddr, error) {
	a, err := manet.FromNetAddr(net.TCPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadAddress, ap, err)
	}
	return a, nil
}

// hostPort renders a TCP multiaddr as "host:port"; "" if it is not one.
func hostPort(a ma.Multiaddr) string {
	na, err := manet.ToNetAddr(a)
	if err != nil {
		return ""
	}
	return na.String()
}
