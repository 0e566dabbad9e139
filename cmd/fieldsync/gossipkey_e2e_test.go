package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/membership"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// gossipProbe is a bare memberlist node of the deployment holding key,
// started in the test to see whether the team's gossip lets it in.
func gossipProbe(t *testing.T, name string, key []byte, deployment string) *membership.Membership {
	t.Helper()
	cfg := membership.DefaultConfig()
	cfg.DeviceID = name
	cfg.PeerID = "12D3KooWprobe" + name
	port, err := harness.FreePortPair()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:" + strconv.Itoa(port)
	cfg.Key = key
	cfg.Label = "fieldsync/" + deployment
	cfg.TCPTimeout = 2 * time.Second
	m, err := membership.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// After a revocation the team changes its gossip key: once the overlap
// ends, a node holding only the deployment secret the lost laptop carries
// is refused, one holding the new key is let in, and a laptop issued after
// the revocation starts with the new key and the list.
func TestE2EGossipKeyChangesAfterRevocation(t *testing.T) {
	const overlap = 4 * time.Second
	c := cluster(t)
	startWith := func(name string, join ...*harness.Agent) *harness.Agent {
		a, err := c.Provision(name, "field")
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"--gossip-key-overlap", overlap.String()}
		for _, j := range join {
			args = append(args, "--join", j.Listen)
		}
		if err := a.Start(args...); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := startWith("laptop-a")
	b := startWith("laptop-b", a)
	lost := startWith("laptop-c", a, b)
	first := put(t, a, dossier(0, "Pả Vi"))
	converge(t, []string{first}, a, b, lost)

	lostDev, err := harness.LoadDevice(lost.Data)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := lostDev.GossipKey()
	deployment := status(t, a).Deployment

	file := revokeList(t, c, "laptop-c", "stolen")
	if out, err := c.Run("revoke", "--api", a.API, file); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		return status(t, a).Revocation.GossipEpoch == 1 && status(t, b).Revocation.GossipEpoch == 1, nil
	}); err != nil {
		t.Fatalf("gossip epochs: a %d, b %d", status(t, a).Revocation.GossipEpoch, status(t, b).Revocation.GossipEpoch)
	}
	if status(t, lost).Revocation.GossipEpoch != 0 {
		t.Fatal("the revoked laptop moved to the new gossip key")
	}

	// The list's new key opens for laptop-b, not for the lost laptop.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := harness.LoadAuthority(c.Authority)
	if err != nil {
		t.Fatal(err)
	}
	list, err := auth.Verifier().VerifyRevocation(raw)
	if err != nil {
		t.Fatal(err)
	}
	bDev, err := harness.LoadDevice(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := bDev.OpenGossipKey(list.Gossip)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lostDev.OpenGossipKey(list.Gossip); !errors.Is(err, identity.ErrNoGossipGrant) {
		t.Fatalf("the lost laptop's view of the new key: %v", err)
	}

	time.Sleep(overlap + time.Second)
	stale := gossipProbe(t, "probe-old", oldKey, deployment)
	if n, err := stale.Join([]string{a.Listen, b.Listen}); n != 0 || !errors.Is(err, membership.ErrUnreachable) {
		t.Fatalf("a node with the old gossip key joined %d agents after the overlap (err %v)", n, err)
	}
	fresh := gossipProbe(t, "probe-new", newKey, deployment)
	if n, err := fresh.Join([]string{a.Listen}); n != 1 || err != nil {
		t.Fatalf("a node with the new gossip key: joined %d, %v", n, err)
	}
	// A and B still meet on the new key alone.
	converge(t, []string{first, put(t, b, dossier(1, "Lũng Pù"))}, a, b)

	// A laptop issued after the revocation starts with the list and the
	// new key, and meets the team by gossip alone (no --join to laptop-b).
	if _, err := os.Stat(filepath.Join(c.Authority, "gossip-1.key")); err != nil {
		t.Fatalf("the authority did not keep the new gossip key: %v", err)
	}
	e := startWith("laptop-e", a)
	st := status(t, e)
	if st.Revocation == nil || st.Revocation.Number != 1 || st.Revocation.GossipEpoch != 1 {
		t.Fatalf("the new laptop's revocation status: %+v", st.Revocation)
	}
	if err := harness.WaitFor(30*time.Second, func() (bool, error) { return hasPeer(t, e, "laptop-b"), nil }); err != nil {
		t.Fatalf("the new laptop never met laptop-b through gossip: peers %+v", status(t, e).Peers)
	}
}
