package transport

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testKey returns a deterministic device key; seed bytes keep tests
// reproducible without any randomness.
func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// logBuffer collects a host's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the log lines containing every one of parts.
func (l *logBuffer) lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// testCredential is what a test device presents: "<deployment>|<device>|<name>".
func testCredential(deployment, device, name string) []byte {
	return []byte(deployment + "|" + device + "|" + name)
}

// admitter is a Config.Admit for tests: it accepts credentials of one
// deployment and records what it was called with.
type admitter struct {
	deployment string
	calls      atomic.Int32
	mu         sync.Mutex
	keys       []ed25519.PublicKey
}

func (a *admitter) admit(pub ed25519.PublicKey, cred []byte) (Peer, error) {
	a.calls.Add(1)
	a.mu.Lock()
	a.keys = append(a.keys, pub)
	a.mu.Unlock()
	parts := strings.Split(string(cred), "|")
	if len(parts) != 3 {
		return Peer{}, errors.New("malformed credential")
	}
	if parts[0] != a.deployment {
		return Peer{}, fmt.Errorf("credential of another deployment (%s, want %s)", parts[0], a.deployment)
	}
	return Peer{DeviceID: parts[1], Name: parts[2]}, nil
}

// testHost is a Host with the things tests look at.
type testHost struct {
	*Host
	logs     *logBuffer
	admit    *admitter
	admitted chan Peer
	gone     chan Peer
	key      ed25519.PrivateKey
}

type hostOpts struct {
	key        byte
	deployment string // credential's deployment
	accepts    string // deployment Admit accepts
	name       string
	handshake  time.Duration
}

func newTestHost(t *testing.T, o hostOpts) *testHost {
	t.Helper()
	logs := &logBuffer{}
	th := &testHost{
		logs:     logs,
		admit:    &admitter{deployment: o.accepts},
		admitted: make(chan Peer, 16),
		gone:     make(chan Peer, 16),
		key:      testKey(o.key),
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MDNS = false
	cfg.Key = th.key
	cfg.Credential = testCredential(o.deployment, "dev-"+o.name, o.name)
	cfg.Admit = th.admit.admit
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.handshake > 0 {
		cfg.HandshakeTimeout = o.handshake
	}
	cfg.OnAdmitted = func(p Peer) {
		select {
		case th.admitted <- p:
		default:
			t.Errorf("%s: OnAdmitted channel full", o.name)
		}
	}
	cfg.OnGone = func(p Peer) {
		select {
		case th.gone <- p:
		default:
			t.Errorf("%s: OnGone channel full", o.name)
		}
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("new host %s: %v", o.name, err)
	}
	th.Host = h
	t.Cleanup(func() {
		_ = h.Close()
		if t.Failed() {
			t.Logf("%s (%s) log:\n%s", o.name, h.PeerID(), logs)
		}
	})
	return th
}

func (th *testHost) addr(t *testing.T) string {
	t.Helper()
	addrs := th.ListenAddrs()
	if len(addrs) != 1 {
		t.Fatalf("listen addrs %v, want one", addrs)
	}
	return addrs[0]
}

// connectedness is libp2p's own view of the connection to other.
func (th *testHost) connectedness(t *testing.T, other *testHost) network.Connectedness {
	t.Helper()
	p, err := peer.Decode(other.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	return th.host.Network().Connectedness(p)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive(t *testing.T, what string, ch <-chan Peer) Peer {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return Peer{}
	}
}

func expectNone(t *testing.T, what string, ch <-chan Peer) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected %s: %+v", what, p)
	default:
	}
}
