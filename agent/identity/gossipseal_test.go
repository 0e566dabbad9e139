package identity

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestRevokeSealsANewGossipKeyToEveryRemainingDevice(t *testing.T) {
	dir, a, devs := revokeSetup(t)
	r, err := a.Revoke(dir, "laptop-c", "lost", testNow, a.GossipSealer(dir, seededRand(99)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := a.SignRevocation(r.List)
	if err != nil {
		t.Fatal(err)
	}
	list, err := a.Verifier().VerifyRevocation(raw)
	if err != nil {
		t.Fatalf("a list with a sealed gossip key does not verify: %v", err)
	}
	g := list.Gossip
	if g == nil || g.Epoch != list.Number || len(g.Sealed) != 2 {
		t.Fatalf("grant = %+v, want epoch %d sealed to the 2 remaining devices", g, list.Number)
	}
	kA, err := devs[0].OpenGossipKey(g)
	if err != nil {
		t.Fatalf("laptop-a cannot open its key: %v", err)
	}
	kB, err := devs[1].OpenGossipKey(g)
	if err != nil {
		t.Fatalf("laptop-b cannot open its key: %v", err)
	}
	if !bytes.Equal(kA, kB) || len(kA) != GossipKeySize {
		t.Fatal("the remaining devices opened different keys")
	}
	if bytes.Equal(kA, devs[0].GossipKey()) {
		t.Fatal("the new gossip key is the old one derived from the deployment secret")
	}
	if _, err := devs[2].OpenGossipKey(g); !errors.Is(err, ErrNoGossipGrant) {
		t.Fatalf("the revoked laptop: err = %v, want ErrNoGossipGrant", err)
	}

	// A box moved to another device's entry does not open there.
	forged := &GossipGrant{Epoch: g.Epoch, Sealed: []SealedKey{g.Sealed[0], g.Sealed[1]}}
	forged.Sealed[0].Box, forged.Sealed[1].Box = g.Sealed[1].Box, g.Sealed[0].Box
	forged.Sealed[0].Ephemeral, forged.Sealed[1].Ephemeral = g.Sealed[1].Ephemeral, g.Sealed[0].Ephemeral
	if _, err := devs[0].OpenGossipKey(forged); err == nil || errors.Is(err, ErrNoGossipGrant) {
		t.Fatalf("a box sealed to laptop-b opened for laptop-a: err = %v", err)
	}
	// Nor under another epoch.
	other := &GossipGrant{Epoch: g.Epoch + 1, Sealed: g.Sealed}
	if _, err := devs[0].OpenGossipKey(other); err == nil {
		t.Fatal("a box opened under another epoch")
	}

	// A device issued after the list gets the same key from the authority.
	late, err := InitDevice(a, filepath.Join(t.TempDir(), "late"), "laptop-d", RoleField, testNow, 0, seededRand(77))
	if err != nil {
		t.Fatal(err)
	}
	lg, err := a.GrantCurrentGossipKey(dir, late.Credential)
	if err != nil {
		t.Fatal(err)
	}
	kD, err := late.OpenGossipKey(lg)
	if err != nil || !bytes.Equal(kD, kA) || lg.Epoch != g.Epoch {
		t.Fatalf("late device: key equal %v, epoch %d, err %v", bytes.Equal(kD, kA), lg.Epoch, err)
	}
}

func TestNoGrantBeforeAnyRevocation(t *testing.T) {
	dir, a, devs := revokeSetup(t)
	g, err := a.GrantCurrentGossipKey(dir, devs[0].Credential)
	if err != nil || g != nil {
		t.Fatalf("grant = %v, err = %v; want nothing before any revocation", g, err)
	}
}
