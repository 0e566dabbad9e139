package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

const echoProto = "/fieldsync/test-echo/1"

// serveEcho registers a handler that answers each stream with the SHA-256
// of everything it read followed by the peer's name, and counts its calls.
func serveEcho(h *Host, calls *atomic.Int32) {
	h.Handle(echoProto, func(p Peer, s Stream) {
		calls.Add(1)
		sum := sha256.New()
		if _, err := io.Copy(sum, s); err != nil {
			_ = s.Reset()
			return
		}
		_, _ = s.Write(sum.Sum(nil))
		_, _ = s.Write([]byte(p.Name))
		_ = s.Close()
	})
}

// echo sends payload on a new stream and checks the digest and name it gets
// back.
func echo(t *testing.T, from *testHost, to *testHost, payload []byte, wantName string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := from.Open(ctx, to.PeerID(), echoProto)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := s.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	_ = s.Close()
	want := sha256.Sum256(payload)
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want[:]) {
		t.Fatalf("digest mismatch: got %x", got)
	}
	if name := string(got[len(want):]); name != wantName {
		t.Fatalf("handler saw peer name %q, want %q", name, wantName)
	}
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestAdmittedPeersExchangeStreams(t *testing.T) {
	a := newTestHost(t, hostOpts{key: 1, deployment: "dep1", accepts: "dep1", name: "alice"})
	b := newTestHost(t, hostOpts{key: 2, deployment: "dep1", accepts: "dep1", name: "bob"})
	var aCalls, bCalls atomic.Int32
	serveEcho(a.Host, &aCalls)
	serveEcho(b.Host, &bCalls)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.PeerID(), b.addr(t)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if !a.IsAdmitted(b.PeerID()) {
		t.Fatal("a does not count b as admitted after Connect")
	}

	// OnAdmitted on both sides, with what Admit filled in.
	pb := receive(t, "a's OnAdmitted", a.admitted)
	if pb.PeerID != b.PeerID() || pb.Name != "bob" || pb.DeviceID != "dev-bob" {
		t.Fatalf("a admitted %+v", pb)
	}
	if !bytes.Equal(pb.PublicKey, b.key.Public().(ed25519.PublicKey)) {
		t.Fatalf("a admitted public key %x, want b's", pb.PublicKey)
	}
	if !strings.HasPrefix(pb.Addr, "127.0.0.1:") {
		t.Fatalf("a admitted b at %q", pb.Addr)
	}
	if string(pb.Credential) != "dep1|dev-bob|bob" {
		t.Fatalf("a admitted credential %q", pb.Credential)
	}
	pa := receive(t, "b's OnAdmitted", b.admitted)
	if pa.PeerID != a.PeerID() || pa.Name != "alice" || pa.DeviceID != "dev-alice" {
		t.Fatalf("b admitted %+v", pa)
	}
	eventually(t, "b counts a as admitted", 5*time.Second, func() bool { return b.IsAdmitted(a.PeerID()) })
	if got := b.Admitted(); len(got) != 1 || got[0].PeerID != a.PeerID() {
		t.Fatalf("b.Admitted() = %+v", got)
	}
	// Admit got the key Noise proved, once per side.
	if n := b.admit.calls.Load(); n != 1 {
		t.Fatalf("b's Admit called %d times", n)
	}
	if !bytes.Equal(b.admit.keys[0], a.key.Public().(ed25519.PublicKey)) {
		t.Fatal("b's Admit got a key other than a's")
	}

	// Connecting again to an admitted peer returns at once.
	if err := a.Connect(ctx, b.PeerID(), b.addr(t)); err != nil {
		t.Fatalf("second connect: %v", err)
	}

	inA0, outA0 := a.WireBytes()
	inB0, outB0 := b.WireBytes()
	big := payload(1 << 20)
	echo(t, a, b, big, "alice")             // a → b
	echo(t, b, a, payload(64<<10), "bob")   // b → a
	echo(t, a, b, []byte("small"), "alice") // again, small
	if aCalls.Load() != 1 || bCalls.Load() != 2 {
		t.Fatalf("handler calls a=%d b=%d, want 1 and 2", aCalls.Load(), bCalls.Load())
	}

	// The wire counters saw the payload plus overhead, and each side's
	// outbound is roughly the other's inbound (both count whole TCP streams).
	inA, outA := a.WireBytes()
	inB, outB := b.WireBytes()
	if outA-outA0 < uint64(len(big)) || inB-inB0 < uint64(len(big)) {
		t.Fatalf("wire bytes a out +%d, b in +%d, want at least %d", outA-outA0, inB-inB0, len(big))
	}
	if inA-inA0 < 64<<10 || outB-outB0 < 64<<10 {
		t.Fatalf("wire bytes a in +%d, b out +%d, want at least %d", inA-inA0, outB-outB0, 64<<10)
	}
	if overhead := outA - outA0 - uint64(len(big)) - 5; overhead > uint64(len(big))/20 {
		t.Fatalf("a sent %d bytes of overhead for %d of payload", overhead, len(big)+5)
	}

	// Disconnect: OnGone on both sides, and the peers can come back.
	if err := a.Disconnect(b.PeerID()); err != nil {
		t.Fatal(err)
	}
	if g := receive(t, "a's OnGone", a.gone); g.PeerID != b.PeerID() {
		t.Fatalf("a gone %+v", g)
	}
	if g := receive(t, "b's OnGone", b.gone); g.PeerID != a.PeerID() {
		t.Fatalf("b gone %+v", g)
	}
	if a.IsAdmitted(b.PeerID()) || b.IsAdmitted(a.PeerID()) {
		t.Fatal("still admitted after disconnect")
	}
	if _, err := a.Open(ctx, b.PeerID(), echoProto); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("open after disconnect: %v, want ErrNotAdmitted", err)
	}
	if err := b.Connect(ctx, a.PeerID(), a.addr(t)); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	receive(t, "a's second OnAdmitted", a.admitted)
	receive(t, "b's second OnAdmitted", b.admitted)
	echo(t, b, a, []byte("again"), "bob")
	if len(a.logs.lines(`msg="peer admitted"`, "name=bob")) != 2 {
		t.Fatalf("a's log:\n%s", a.logs)
	}

	// Close calls OnGone for peers still admitted.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	receive(t, "a's OnGone at Close", a.gone)
	receive(t, "b's OnGone after a closed", b.gone)
	if err := a.Connect(ctx, b.PeerID(), b.addr(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("connect after close: %v, want ErrClosed", err)
	}
}

func TestRefusedPeerIsDroppedAndDenied(t *testing.T) {
	// a belongs to another deployment; b only admits dep-b. a admits
	// anyone of dep-b, so only b refuses.
	a := newTestHost(t, hostOpts{key: 3, deployment: "dep-a", accepts: "dep-b", name: "mallory"})
	b := newTestHost(t, hostOpts{key: 4, deployment: "dep-b", accepts: "dep-b", name: "bob"})
	var aCalls, bCalls atomic.Int32
	serveEcho(a.Host, &aCalls)
	serveEcho(b.Host, &bCalls)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := a.Connect(ctx, b.PeerID(), b.addr(t))
	if !errors.Is(err, ErrRefusedByPeer) {
		t.Fatalf("connect: %v, want ErrRefusedByPeer", err)
	}
	if !strings.Contains(err.Error(), "refused by peer: credential of another deployment (dep-a, want dep-b)") {
		t.Fatalf("connect error does not carry the reason: %v", err)
	}

	// Not connected on either side.
	eventually(t, "a and b disconnected", 5*time.Second, func() bool {
		return a.connectedness(t, b) != network.Connected && b.connectedness(t, a) != network.Connected
	})

	// One clear line on each side.
	if l := b.logs.lines("level=WARN", `msg="refused peer"`, "peer="+a.PeerID(), "addr=127.0.0.1:", "another deployment"); len(l) != 1 {
		t.Fatalf("b's refusal log lines %d, want 1; log:\n%s", len(l), b.logs)
	}
	if l := a.logs.lines("level=WARN", `msg="refused by peer"`, "peer="+b.PeerID(), "another deployment"); len(l) != 1 {
		t.Fatalf("a's refused-by log lines %d, want 1; log:\n%s", len(l), a.logs)
	}

	// Nobody was admitted; no handler ran; Open fails both ways.
	expectNone(t, "OnAdmitted on a", a.admitted)
	expectNone(t, "OnAdmitted on b", b.admitted)
	if a.IsAdmitted(b.PeerID()) || b.IsAdmitted(a.PeerID()) || len(a.Admitted())+len(b.Admitted()) != 0 {
		t.Fatal("a refused peer counts as admitted")
	}
	if _, err := a.Open(ctx, b.PeerID(), echoProto); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("a.Open: %v, want ErrNotAdmitted", err)
	}
	if _, err := b.Open(ctx, a.PeerID(), echoProto); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("b.Open: %v, want ErrNotAdmitted", err)
	}

	// A second attempt is dropped by b's gater before any credential is
	// read: Admit is not called again, and a's error still says why.
	err = a.Connect(ctx, b.PeerID(), b.addr(t))
	if !errors.Is(err, ErrRefusedByPeer) || !strings.Contains(err.Error(), "another deployment") {
		t.Fatalf("second connect: %v, want ErrRefusedByPeer with the earlier reason", err)
	}
	eventually(t, "a and b disconnected after the second attempt", 5*time.Second, func() bool {
		return a.connectedness(t, b) != network.Connected && b.connectedness(t, a) != network.Connected
	})
	if n := b.admit.calls.Load(); n != 1 {
		t.Fatalf("b's Admit called %d times, want 1 (the gater should drop the second attempt)", n)
	}
	eventually(t, "b logs the gater refusal", 5*time.Second, func() bool {
		return len(b.logs.lines(`msg="refused denied peer"`, "peer="+a.PeerID())) > 0
	})

	// b does not even dial a peer it refused.
	if err := b.Connect(ctx, a.PeerID(), a.addr(t)); !errors.Is(err, ErrDenied) {
		t.Fatalf("b connect to denied peer: %v, want ErrDenied", err)
	}

	if aCalls.Load()+bCalls.Load() != 0 {
		t.Fatalf("handlers ran for a refused peer: a=%d b=%d", aCalls.Load(), bCalls.Load())
	}
	expectNone(t, "OnAdmitted on a", a.admitted)
	expectNone(t, "OnAdmitted on b", b.admitted)
	expectNone(t, "OnGone on a", a.gone)
	expectNone(t, "OnGone on b", b.gone)
}

func TestDialerRefusesListener(t *testing.T) {
	// The dialling side does the refusing: its Connect reports ErrRefused,
	// and the listener learns it was refused.
	a := newTestHost(t, hostOpts{key: 5, deployment: "dep-a", accepts: "dep-a", name: "alice"})
	b := newTestHost(t, hostOpts{key: 6, deployment: "dep-b", accepts: "dep-a", name: "eve"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := a.Connect(ctx, b.PeerID(), b.addr(t))
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("connect: %v, want ErrRefused", err)
	}
	eventually(t, "b logs that it was refused", 5*time.Second, func() bool {
		return len(b.logs.lines("level=WARN", `msg="refused by peer"`, "peer="+a.PeerID())) == 1
	})
	if l := a.logs.lines("level=WARN", `msg="refused peer"`, "peer="+b.PeerID()); len(l) != 1 {
		t.Fatalf("a's log:\n%s", a.logs)
	}
	eventually(t, "disconnected", 5*time.Second, func() bool {
		return a.connectedness(t, b) != network.Connected && b.connectedness(t, a) != network.Connected
	})
	expectNone(t, "OnAdmitted on a", a.admitted)
	expectNone(t, "OnAdmitted on b", b.admitted)
}

func TestSimultaneousConnect(t *testing.T) {
	a := newTestHost(t, hostOpts{key: 50, deployment: "d", accepts: "d", name: "alice"})
	b := newTestHost(t, hostOpts{key: 51, deployment: "d", accepts: "d", name: "bob"})
	var calls atomic.Int32
	serveEcho(a.Host, &calls)
	serveEcho(b.Host, &calls)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- a.Connect(ctx, b.PeerID(), b.addr(t)) }()
	go func() { errs <- b.Connect(ctx, a.PeerID(), a.addr(t)) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	receive(t, "a's OnAdmitted", a.admitted)
	receive(t, "b's OnAdmitted", b.admitted)
	echo(t, a, b, []byte("x"), "alice")
	echo(t, b, a, []byte("y"), "bob")
	// However many connections the crossing dials left, each side saw
	// the other admitted once and sees it gone once.
	expectNone(t, "second OnAdmitted on a", a.admitted)
	expectNone(t, "second OnAdmitted on b", b.admitted)
	if err := a.Disconnect(b.PeerID()); err != nil {
		t.Fatal(err)
	}
	receive(t, "a's OnGone", a.gone)
	receive(t, "b's OnGone", b.gone)
	expectNone(t, "second OnGone on a", a.gone)
	expectNone(t, "second OnGone on b", b.gone)
}

// A peer denied while admitted loses its connections at once, and cannot
// connect again while the deny lasts, in either direction.
func TestDenyClosesAndRefuses(t *testing.T) {
	a := newTestHost(t, hostOpts{key: 1, deployment: "d", accepts: "d", name: "a"})
	b := newTestHost(t, hostOpts{key: 2, deployment: "d", accepts: "d", name: "b"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.PeerID(), b.addr(t)); err != nil {
		t.Fatal(err)
	}
	receive(t, "a admitted b", a.admitted)
	if err := a.Deny(b.PeerID(), "device revoked"); err != nil {
		t.Fatal(err)
	}
	receive(t, "b gone from a", a.gone)
	eventually(t, "b to see a gone", 10*time.Second, func() bool { return !b.IsAdmitted(a.PeerID()) })
	if err := a.Connect(ctx, b.PeerID(), b.addr(t)); err == nil {
		t.Fatal("a dialled a denied peer")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if err := b.Connect(short, a.PeerID(), a.addr(t)); err == nil && a.IsAdmitted(b.PeerID()) {
		t.Fatal("a denied peer was admitted again")
	}
	if len(a.logs.lines("denied peer", "device revoked")) == 0 {
		t.Fatalf("no log line for the deny:\n%s", a.logs)
	}
}
