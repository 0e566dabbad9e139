package transport

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	manet "github.com/multiformats/go-multiaddr/net"
)

// wireCounter adds up the bytes read from and written to the raw TCP
// connections of one host, so benchmarks can compare payload with what
// Noise framing, yamux headers, multistream and identify cost on the wire.
type wireCounter struct {
	in, out atomic.Uint64
}

// newCountingTCP builds libp2p's own TCP transport over an upgrader that
// wraps every raw connection in a counter before Noise sees it: the listener
// handed to GateMaListener for inbound connections, the connection handed to
// Upgrade for outbound ones. The TCP transport calls nothing else on the
// upgrader, so every byte on the socket is counted exactly once.
//
// Port reuse is off: with it, outbound connections leave from the listen
// port, and two laptops dialling each other at the same moment (both found
// each other by mDNS) make one TCP simultaneous open that both take for
// their own outbound connection, so Noise fails on both. Reuse only helps
// NAT traversal, which a LAN does not need.
func newCountingTCP(c *wireCounter, dialTimeout time.Duration) func(transport.Upgrader, network.ResourceManager) (*tcp.TcpTransport, error) {
	return func(u transport.Upgrader, rcmgr network.ResourceManager) (*tcp.TcpTransport, error) {
		return tcp.NewTCPTransport(countingUpgrader{Upgrader: u, c: c}, rcmgr, nil,
			tcp.WithConnectionTimeout(dialTimeout), tcp.DisableReuseport())
	}
}

type countingUpgrader struct {
	transport.Upgrader
	c *wireCounter
}

var _ transport.Upgrader = countingUpgrader{}

func (u countingUpgrader) GateMaListener(l manet.Listener) transport.GatedMaListener {
	return u.Upgrader.GateMaListener(countingListener{Listener: l, c: u.c})
}

func (u countingUpgrader) Upgrade(ctx context.Context, t transport.Transport, conn manet.Conn, dir network.Direction, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	return u.Upgrader.Upgrade(ctx, t, &countingConn{Conn: conn, c: u.c}, dir, p, scope)
}

type countingListener struct {
	manet.Listener
	c *wireCounter
}

func (l countingListener) Accept() (manet.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: l.c}, nil
}

// countingConn counts bytes and passes the TCP socket options the transport
// sets (keep-alive, linger) through to the real connection, which the
// transport finds by type assertion.
type countingConn struct {
	manet.Conn
	c *wireCounter
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.c.in.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.c.out.Add(uint64(n))
	return n, err
}

func (c *countingConn) SetKeepAlive(on bool) error {
	if k, ok := c.Conn.(interface{ SetKeepAlive(bool) error }); ok {
		return k.SetKeepAlive(on)
	}
	return nil
}

func (c *countingConn) SetKeepAlivePeriod(d time.Duration) error {
	if k, ok := c.Conn.(interface{ SetKeepAlivePeriod(time.Duration) error }); ok {
		return k.SetKeepAlivePeriod(d)
	}
	return nil
}

func (c *countingConn) SetLinger(sec int) error {
	if k, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return k.SetLinger(sec)
	}
	return nil
}
