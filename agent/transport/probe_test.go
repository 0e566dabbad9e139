package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ConnectAddr reaches an agent known only by its address (--join, --hub).
func TestConnectAddrLearnsThePeerID(t *testing.T) {
	a := newTestHost(t, hostOpts{key: 21, deployment: "dep", accepts: "dep", name: "alice"})
	b := newTestHost(t, hostOpts{key: 22, deployment: "dep", accepts: "dep", name: "bob"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := a.ConnectAddr(ctx, b.addr(t))
	if err != nil {
		t.Fatal(err)
	}
	if id != b.PeerID() || !a.IsAdmitted(b.PeerID()) {
		t.Fatalf("got %s admitted=%v, want %s", id, a.IsAdmitted(b.PeerID()), b.PeerID())
	}
	if p := receive(t, "b admits a", b.admitted); p.Name != "alice" {
		t.Fatalf("b admitted %+v", p)
	}
	if _, err := a.ConnectAddr(ctx, a.addr(t)); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("own address: %v", err)
	}
}

// An outsider that knows only the address is refused at the credential
// handshake, with a line on both sides.
func TestConnectAddrOutsiderRefused(t *testing.T) {
	x := newTestHost(t, hostOpts{key: 23, deployment: "other", accepts: "dep", name: "mallory"})
	b := newTestHost(t, hostOpts{key: 24, deployment: "dep", accepts: "dep", name: "bob"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := x.ConnectAddr(ctx, b.addr(t)); !errors.Is(err, ErrRefusedByPeer) {
		t.Fatalf("outsider connect: %v", err)
	}
	if l := b.logs.lines("level=WARN", `msg="refused peer"`); len(l) != 1 {
		t.Fatalf("bob's log:\n%s", b.logs)
	}
	if l := x.logs.lines("level=WARN", `msg="refused by peer"`); len(l) != 1 {
		t.Fatalf("mallory's log:\n%s", x.logs)
	}
	if b.IsAdmitted(x.PeerID()) {
		t.Fatal("outsider admitted")
	}
}
