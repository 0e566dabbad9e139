package uplink

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/crdt"
)

func key(seed byte) ed25519.PrivateKey {
	var s [32]byte
	s[0] = seed
	return ed25519.NewKeyFromSeed(s[:])
}

func TestReceiptSignVerify(t *testing.T) {
	hub := key(1)
	r := Receipt{Hub: "hubid", Issued: 1700000000000, Stored: map[string]uint64{"laptopa": 40, "laptopb": 7}}
	s, err := Sign(r, hub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(s, hub.Public().(ed25519.PublicKey))
	if err != nil || got.Stored["laptopa"] != 40 || got.Hub != "hubid" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	if _, err := Verify(s, key(2).Public().(ed25519.PublicKey)); !errors.Is(err, ErrReceiptSignature) {
		t.Fatalf("another key: %v", err)
	}
	// A relay raising a count breaks the signature.
	forged := r
	forged.Stored = map[string]uint64{"laptopa": 99, "laptopb": 7}
	body, _ := crdt.Marshal(forged)
	if _, err := Verify(Signed{Body: body, Sig: s.Sig}, hub.Public().(ed25519.PublicKey)); !errors.Is(err, ErrReceiptSignature) {
		t.Fatalf("forged: %v", err)
	}
	if _, err := Decode(Signed{Body: []byte{0xff}, Sig: s.Sig}); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("garbage: %v", err)
	}
	m := Merged([]Receipt{r, {Hub: "hub2", Issued: 1, Stored: map[string]uint64{"laptopa": 50, "laptopc": 1}}})
	if !m.Equal(crdt.VersionVector{"laptopa": 50, "laptopb": 7, "laptopc": 1}) {
		t.Fatalf("merged %v", m)
	}
}

func TestBackoffGrowsCapsAndResets(t *testing.T) {
	b := DefaultBackoff()
	var last time.Duration
	for i := 0; i < 20; i++ {
		d := b.Next(0.999)
		if d > b.Max {
			t.Fatalf("attempt %d waits %v past the cap", i, d)
		}
		if d < last {
			t.Fatalf("attempt %d waits %v after %v", i, d, last)
		}
		last = d
	}
	if last < b.Max*9/10 {
		t.Fatalf("never reached the cap: %v", last)
	}
	if d := b.Next(0); d < b.Max/2 {
		t.Fatalf("jitter floor %v", d)
	}
	b.Reset()
	if d := b.Next(0.5); d > b.Min {
		t.Fatalf("after reset %v", d)
	}
}

// A hub's receipt says how far each origin's attachments are whole: up to
// Stored unless the origin lags; a hub that does not track attachments
// covers none; a lag beyond the ops stored is refused.
func TestReceiptAttachmentWatermark(t *testing.T) {
	hub := key(1)
	r := Receipt{Hub: "hubid", Issued: 1700000000000, Stored: map[string]uint64{"laptopa": 40, "laptopb": 7},
		Attachments: true, Lagging: map[string]uint64{"laptopa": 12}}
	s, err := Sign(r, hub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(s, hub.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Attached(); !a.Equal(crdt.VersionVector{"laptopa": 12, "laptopb": 7}) {
		t.Fatalf("attached %v", a)
	}
	old := Receipt{Hub: "hub2", Issued: 1, Stored: map[string]uint64{"laptopa": 50}}
	if a := old.Attached(); len(a) != 0 {
		t.Fatalf("a hub that does not track attachments covers %v", a)
	}
	if m := MergedAttached([]Receipt{got, old, {Hub: "hub3", Issued: 1, Stored: map[string]uint64{"laptopa": 20}, Attachments: true}}); !m.Equal(crdt.VersionVector{"laptopa": 20, "laptopb": 7}) {
		t.Fatalf("merged %v", m)
	}
	bad := r
	bad.Lagging = map[string]uint64{"laptopa": 41}
	if _, err := Sign(bad, hub); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("lag beyond stored: %v", err)
	}
}
