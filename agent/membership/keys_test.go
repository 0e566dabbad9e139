package membership

import (
	"errors"
	"testing"
	"time"
)

func TestRotateKeyShutsOutTheOldKeyAfterTheOverlap(t *testing.T) {
	oldKey, newKey := testKey(7), testKey(8)
	a := startNode(t, testConfig(t, "dev-a", oldKey))
	b := startNode(t, testConfig(t, "dev-b", oldKey))
	if _, err := b.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a and b to list each other", func() bool { return sees(a, "dev-b")() && sees(b, "dev-a")() })

	// Long enough that the late join below lands in the first half even
	// on a loaded two-core machine.
	const overlap = 4 * time.Second
	for _, n := range []*node{a, b} {
		if err := n.RotateKey(newKey, overlap); err != nil {
			t.Fatal(err)
		}
		if got := n.KeyCount(); got != 2 {
			t.Fatalf("%s accepts %d keys during the overlap, want 2", n.cfg.DeviceID, got)
		}
	}
	// During the overlap a laptop that has not got the new key yet still
	// meets the team.
	late := startNode(t, testConfig(t, "dev-late", oldKey))
	if _, err := late.Join([]string{a.cfg.Listen}); err != nil {
		t.Fatalf("a node with the old key could not join during the overlap: %v", err)
	}
	eventually(t, "a to list the late node", sees(a, "dev-b", "dev-late"))

	eventually(t, "the overlap to end", func() bool { return a.KeyCount() == 1 && b.KeyCount() == 1 })
	// The team still holds together on the new key alone...
	eventually(t, "a and b to list each other on the new key", func() bool { return sees(a, "dev-b")() && sees(b, "dev-a")() })
	// ...a node with only the old secret is refused...
	stale := startNode(t, testConfig(t, "dev-stale", oldKey))
	if n, err := stale.Join([]string{a.cfg.Listen}); n != 0 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Join with the old key after the overlap = %d, %v; want 0, ErrUnreachable", n, err)
	}
	// ...and one holding the new key joins.
	fresh := startNode(t, testConfig(t, "dev-fresh", newKey))
	if _, err := fresh.Join([]string{b.cfg.Listen}); err != nil {
		t.Fatalf("Join with the new key: %v", err)
	}
	eventually(t, "a to list the new-key node", func() bool {
		_, ok := member(a, "dev-fresh")
		return ok
	})
	for _, n := range []*node{a, b} {
		if _, ok := member(n, "dev-stale"); ok {
			t.Fatalf("%s lists the node holding only the old key", n.cfg.DeviceID)
		}
	}
}

func TestRotateKeyRefusesBadInput(t *testing.T) {
	a := startNode(t, testConfig(t, "dev-a", testKey(1)))
	if err := a.RotateKey([]byte("short"), 0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("short key: err = %v", err)
	}
	if err := a.RotateKey(testKey(2), -time.Second); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative overlap: err = %v", err)
	}
	if err := a.RotateKey(testKey(2), 0); err != nil || a.KeyCount() != 1 {
		t.Fatalf("zero overlap: err = %v, keys = %d", err, a.KeyCount())
	}
	_ = a.Close()
	if err := a.RotateKey(testKey(3), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v", err)
	}
}
