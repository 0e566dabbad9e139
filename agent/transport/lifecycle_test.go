package transport

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// rawHost is a plain libp2p host with a device key: Noise proves its id,
// but it has no credential and does not play the hello protocol unless the
// test makes it.
func rawHost(t *testing.T, seed byte) host.Host {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(testKey(seed))
	if err != nil {
		t.Fatal(err)
	}
	return rawHostWithKey(t, priv)
}

func rawHostWithKey(t *testing.T, priv crypto.PrivKey) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.NoListenAddrs,
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
		libp2p.DisableMetrics(),
		libp2p.ForceReachabilityPrivate(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func dialRaw(t *testing.T, raw host.Host, to *testHost) peer.ID {
	t.Helper()
	p, err := peer.Decode(to.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	a, err := dialMultiaddr(to.addr(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{a}}); err != nil {
		t.Fatalf("raw connect: %v", err)
	}
	return p
}

// TestStreamsFromPeersWithoutCredentialAreReset covers defence in depth: a
// peer that passed Noise but never completed the hello handshake cannot
// reach a handler, and its connection is closed by the handshake deadline.
func TestStreamsFromPeersWithoutCredentialAreReset(t *testing.T) {
	for _, tc := range []struct {
		name      string
		withHello bool // raw host accepts hello streams but never answers
		wantLog   string
		wantReset bool // the echo stream reaches b before the connection closes
	}{
		{"silent hello", true, "timed out after 1s", true},
		{"no hello protocol", false, "does not speak /fieldsync/hello/1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestHost(t, hostOpts{key: 20, deployment: "d", accepts: "d", name: "bob", handshake: time.Second})
			var calls atomic.Int32
			serveEcho(b.Host, &calls)
			raw := rawHost(t, 21)
			if tc.withHello {
				raw.SetStreamHandler(helloProtocol, func(s network.Stream) {
					// Read the credential, then say nothing.
					_, _ = io.Copy(io.Discard, s)
				})
			}
			bp := dialRaw(t, raw, b)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := raw.NewStream(network.WithNoDial(ctx, "test"), bp, echoProto)
			if err == nil {
				_ = s.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = s.Write([]byte("let me in"))
				_ = s.CloseWrite()
				got, rerr := io.ReadAll(s)
				if rerr == nil {
					t.Fatalf("stream from a peer without credential answered %q", got)
				}
			}
			eventually(t, "b drops the raw peer", 5*time.Second, func() bool {
				return raw.Network().Connectedness(bp) != network.Connected
			})
			if calls.Load() != 0 {
				t.Fatalf("handler ran %d times for a peer without credential", calls.Load())
			}
			if tc.wantReset && len(b.logs.lines("level=WARN", `msg="reset stream from peer not admitted"`, "protocol="+echoProto)) != 1 {
				t.Fatal("b did not log the reset of the echo stream")
			}
			if b.admit.calls.Load() != 0 {
				t.Fatalf("Admit ran without a credential")
			}
			if l := b.logs.lines("level=WARN", `msg="handshake failed"`, "peer="+raw.ID().String(), tc.wantLog); len(l) != 1 {
				t.Fatalf("b's handshake failure lines: %d", len(l))
			}
			if _, err := b.Open(ctx, raw.ID().String(), echoProto); err == nil {
				t.Fatal("b opened a stream to a peer without credential")
			}
			expectNone(t, "OnAdmitted", b.admitted)
		})
	}
}

// TestCloseStopsGoroutines checks that closing the hosts leaves no
// goroutine of this package or of libp2p behind.
func TestCloseStopsGoroutines(t *testing.T) {
	a := newTestHost(t, hostOpts{key: 30, deployment: "d", accepts: "d", name: "alice"})
	b := newTestHost(t, hostOpts{key: 31, deployment: "d", accepts: "d", name: "bob"})
	var calls atomic.Int32
	serveEcho(b.Host, &calls)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.PeerID(), b.addr(t)); err != nil {
		t.Fatal(err)
	}
	echo(t, a, b, payload(4096), "alice")
	if len(leakedGoroutines()) == 0 {
		t.Fatal("the goroutine check sees no libp2p goroutine while hosts run")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	var leaked []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked = leakedGoroutines()
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(leaked) > 0 {
		t.Fatalf("%d goroutines left after Close:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// leakedGoroutines returns the stacks of goroutines running code of this
// package (other than tests) or of libp2p.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "_test.go") || strings.Contains(g, "testing.tRunner") {
			continue
		}
		if strings.Contains(g, "fieldsync/agent/transport.") || strings.Contains(g, "libp2p/") {
			out = append(out, g)
		}
	}
	return out
}
