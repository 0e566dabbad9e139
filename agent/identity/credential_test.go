package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{
		"": RoleField, "field": RoleField, " Hub ": RoleHub, "ADMIN": RoleAdmin,
	} {
		got, err := ParseRole(in)
		if err != nil || got != want {
			t.Errorf("ParseRole(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParseRole("boss")
	if !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("ParseRole(boss) error = %v, want ErrUnknownRole", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"boss"`) || !strings.Contains(msg, "field, hub, admin") {
		t.Errorf("error %q does not name the bad role and the valid ones", msg)
	}
}

func TestIDs(t *testing.T) {
	pub1, _ := newKey(t, 1)
	pub2, _ := newKey(t, 2)
	id := DeviceID(pub1)
	if !regexp.MustCompile(`^[a-z2-7]{26}$`).MatchString(id) {
		t.Errorf("DeviceID = %q, want 26 lowercase base32 chars", id)
	}
	dep := DeploymentID(pub1)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(dep) {
		t.Errorf("DeploymentID = %q, want 16 lowercase hex chars", dep)
	}
	if DeviceID(pub1) != id || DeploymentID(pub1) != dep {
		t.Error("ids are not stable")
	}
	if DeviceID(pub2) == id || DeploymentID(pub2) == dep {
		t.Error("different keys gave the same id")
	}
}

// TestWireGolden pins the byte format: ids, signed credential encoding and
// gossip key for fixed keys. A change here breaks every deployed laptop.
func TestWireGolden(t *testing.T) {
	authPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	a := &Authority{Private: authPriv, Public: authPriv.Public().(ed25519.PublicKey), Secret: bytes.Repeat([]byte{3}, 32)}
	devPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	devPub := devPriv.Public().(ed25519.PublicKey)

	if got, want := DeploymentID(a.Public), goldenDeployment; got != want {
		t.Errorf("DeploymentID = %s, want %s", got, want)
	}
	if got, want := DeviceID(devPub), goldenDevice; got != want {
		t.Errorf("DeviceID = %s, want %s", got, want)
	}
	c, err := a.Issue("laptop-a", RoleField, devPub, time.Unix(1_770_000_000, 0), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := hexString(b); got != goldenCredential {
		t.Errorf("credential bytes changed:\n got %s\nwant %s", got, goldenCredential)
	}
	d := &Device{Private: devPriv, Credential: c, AuthorityPublic: a.Public, DeploymentSecret: a.Secret}
	if got := hexString(d.GossipKey()); got != goldenGossipKey {
		t.Errorf("GossipKey = %s, want %s", got, goldenGossipKey)
	}
}

func TestIssueVerify(t *testing.T) {
	a := newAuthority(t, 1)
	v := NewVerifier(a.Public)
	if v.Deployment() != DeploymentID(a.Public) || a.Deployment() != v.Deployment() {
		t.Fatalf("Deployment() = %s, want %s", v.Deployment(), DeploymentID(a.Public))
	}
	pub, _ := newKey(t, 10)
	c, err := a.Issue("Laptop Mèo Vạc 1", RoleAdmin, pub, testNow, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.Deployment != v.Deployment() || c.DeviceID != DeviceID(pub) || !c.PublicKey.Equal(pub) ||
		c.Role != RoleAdmin || c.IssuedAt != testNow.Unix() || c.Expires != testNow.Add(48*time.Hour).Unix() {
		t.Fatalf("issued credential has wrong fields: %+v", c)
	}

	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := UnmarshalCredential(b)
	if err != nil {
		t.Fatalf("UnmarshalCredential: %v", err)
	}
	b2, _ := c2.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("marshal is not stable across a round trip")
	}

	issued, expires := time.Unix(c.IssuedAt, 0), time.Unix(c.Expires, 0)
	for _, tc := range []struct {
		name string
		now  time.Time
		want error
	}{
		{"at issue", issued, nil},
		{"within clock skew", issued.Add(-ClockSkew), nil},
		{"before clock skew", issued.Add(-ClockSkew - time.Second), ErrNotYetValid},
		{"at expiry", expires, nil},
		{"just after expiry", expires.Add(time.Second), ErrExpired},
		{"a year later", expires.Add(365 * 24 * time.Hour), ErrExpired},
	} {
		err := v.Verify(c2, tc.now)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	err = v.Verify(c2, expires.Add(time.Hour))
	if msg := err.Error(); !strings.Contains(msg, "Laptop Mèo Vạc 1") || !strings.Contains(msg, "expired at") {
		t.Errorf("expiry message %q does not say which device and when", msg)
	}
}

func TestVerifyOtherDeployment(t *testing.T) {
	ours, theirs := newAuthority(t, 1), newAuthority(t, 2)
	c := issue(t, theirs, "stranger", 10)
	err := ours.Verifier().Verify(c, testNow)
	if !errors.Is(err, ErrOtherDeployment) {
		t.Fatalf("Verify = %v, want ErrOtherDeployment", err)
	}
	want := "credential of deployment " + theirs.Deployment() + ", this deployment is " + ours.Deployment()
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain %q", err, want)
	}
}

func TestVerifyTampered(t *testing.T) {
	a := newAuthority(t, 1)
	v := a.Verifier()
	orig := issue(t, a, "laptop-a", 10)
	otherPub, _ := newKey(t, 11)
	for _, tc := range []struct {
		name   string
		tamper func(*Credential)
		want   error
	}{
		{"name", func(c *Credential) { c.Name = "laptop-b" }, ErrBadSignature},
		{"role", func(c *Credential) { c.Role = RoleAdmin }, ErrBadSignature},
		{"expiry", func(c *Credential) { c.Expires += 365 * 24 * 3600 }, ErrBadSignature},
		{"issued", func(c *Credential) { c.IssuedAt-- }, ErrBadSignature},
		{"key", func(c *Credential) { c.PublicKey = otherPub }, ErrBadSignature},
		{"key and id", func(c *Credential) { c.PublicKey, c.DeviceID = otherPub, DeviceID(otherPub) }, ErrBadSignature},
		{"device id", func(c *Credential) { c.DeviceID = DeviceID(otherPub) }, ErrBadSignature},
		{"signature", func(c *Credential) { c.Signature[10] ^= 1 }, ErrBadSignature},
		{"deployment", func(c *Credential) { c.Deployment = "0123456789abcdef" }, ErrOtherDeployment},
		{"unknown role", func(c *Credential) { c.Role = "root" }, ErrMalformed},
		{"short key", func(c *Credential) { c.PublicKey = c.PublicKey[:31] }, ErrMalformed},
		{"no signature", func(c *Credential) { c.Signature = nil }, ErrMalformed},
		{"expiry before issue", func(c *Credential) { c.Expires = c.IssuedAt - 1 }, ErrMalformed},
		{"control char in name", func(c *Credential) { c.Name = "a\nb" }, ErrMalformed},
	} {
		c := orig
		c.PublicKey = append(ed25519.PublicKey(nil), orig.PublicKey...)
		c.Signature = append([]byte(nil), orig.Signature...)
		tc.tamper(&c)
		if err := v.Verify(c, testNow); !errors.Is(err, tc.want) {
			t.Errorf("tampered %s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := v.Verify(orig, testNow); err != nil {
		t.Fatalf("untampered credential: %v", err)
	}
}

// TestVerifyTamperedBytes alters the name in the encoded form, as a relay on
// the wire would, and checks the decoded credential no longer verifies.
func TestVerifyTamperedBytes(t *testing.T) {
	a := newAuthority(t, 1)
	b, err := issue(t, a, "laptop-a", 10).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("laptop-a"))
	if i < 0 {
		t.Fatal("name not found in encoding")
	}
	b[i+7] = 'z'
	c, err := UnmarshalCredential(b)
	if err != nil {
		t.Fatalf("UnmarshalCredential: %v", err)
	}
	if err := a.Verifier().Verify(c, testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v, want ErrBadSignature", err)
	}
}

func TestVerifyPeer(t *testing.T) {
	a := newAuthority(t, 1)
	v := a.Verifier()
	pub, _ := newKey(t, 10)
	otherPub, _ := newKey(t, 11)
	c, err := a.Issue("laptop-a", RoleField, pub, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyPeer(c, pub, testNow); err != nil {
		t.Fatalf("VerifyPeer with the right key: %v", err)
	}
	err = v.VerifyPeer(c, otherPub, testNow)
	if !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("VerifyPeer with another key = %v, want ErrKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), DeviceID(otherPub)) || !strings.Contains(err.Error(), c.DeviceID) {
		t.Errorf("message %q does not name both device ids", err)
	}
	// The credential's own checks still come first.
	if err := v.VerifyPeer(c, pub, testNow.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("VerifyPeer of expired credential = %v, want ErrExpired", err)
	}
}

func TestZeroValuesRejectEverything(t *testing.T) {
	a := newAuthority(t, 1)
	c := issue(t, a, "laptop-a", 10)
	if err := (Verifier{}).Verify(c, testNow); err == nil {
		t.Error("zero Verifier accepted a credential")
	}
	if err := a.Verifier().Verify(Credential{}, testNow); !errors.Is(err, ErrMalformed) {
		t.Errorf("Verify(zero credential) = %v, want ErrMalformed", err)
	}
	if _, err := (&Authority{}).Issue("x", RoleField, c.PublicKey, testNow, time.Hour); err == nil {
		t.Error("zero Authority issued a credential")
	}
	var nilAuth *Authority
	if _, err := nilAuth.Issue("x", RoleField, c.PublicKey, testNow, time.Hour); err == nil {
		t.Error("nil Authority issued a credential")
	}
	if d := (&Device{}); d.GossipKey() != nil || d.ID() == "" {
		t.Errorf("zero Device: GossipKey %x, ID %q", d.GossipKey(), d.ID())
	}
}

func TestIssueRejects(t *testing.T) {
	a := newAuthority(t, 1)
	pub, _ := newKey(t, 10)
	ok64 := strings.Repeat("ệ", 64)
	if _, err := a.Issue(ok64, RoleField, pub, testNow, time.Hour); err != nil {
		t.Fatalf("64-character Vietnamese name refused: %v", err)
	}
	for _, tc := range []struct {
		name     string
		devName  string
		role     Role
		pub      ed25519.PublicKey
		validity time.Duration
		want     error
	}{
		{"empty name", "", RoleField, pub, time.Hour, ErrInvalidName},
		{"long name", ok64 + "x", RoleField, pub, time.Hour, ErrInvalidName},
		{"newline", "laptop\n", RoleField, pub, time.Hour, ErrInvalidName},
		{"bidi override", "laptop\u202e", RoleField, pub, time.Hour, ErrInvalidName},
		{"bad utf8", "laptop\xff", RoleField, pub, time.Hour, ErrInvalidName},
		{"unknown role", "laptop", "boss", pub, time.Hour, ErrUnknownRole},
		{"empty role", "laptop", "", pub, time.Hour, ErrUnknownRole},
		{"short key", "laptop", RoleField, pub[:16], time.Hour, nil},
		{"negative validity", "laptop", RoleField, pub, -time.Hour, nil},
		{"sub-second validity", "laptop", RoleField, pub, time.Millisecond, nil},
	} {
		_, err := a.Issue(tc.devName, tc.role, tc.pub, testNow, tc.validity)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Issue error = %v, want %v", tc.name, err, tc.want)
		}
	}
	c, err := a.Issue("laptop", RoleHub, pub, testNow, 0)
	if err != nil || c.Expires-c.IssuedAt != int64(DefaultValidity/time.Second) {
		t.Errorf("validity 0: %v, lifetime %ds, want DefaultValidity", err, c.Expires-c.IssuedAt)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	a := newAuthority(t, 1)
	c := issue(t, a, "laptop-a", 10)
	good, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// A map with the same fields plus an unknown key 9.
	type extended struct {
		Credential
		Extra int `cbor:"9,keyasint"`
	}
	withExtra, _ := encMode.Marshal(extended{Credential: c, Extra: 1})
	// The same content in a non-canonical encoding: the signature (key 8)
	// first. With SortNone, struct fields are encoded in declaration order.
	type sigFirst struct {
		Signature  []byte `cbor:"8,keyasint"`
		Deployment string `cbor:"1,keyasint"`
		DeviceID   string `cbor:"2,keyasint"`
		Name       string `cbor:"3,keyasint"`
		Role       string `cbor:"4,keyasint"`
		PublicKey  []byte `cbor:"5,keyasint"`
		IssuedAt   int64  `cbor:"6,keyasint"`
		Expires    int64  `cbor:"7,keyasint"`
	}
	unsorted, _ := cbor.EncOptions{Sort: cbor.SortNone}.EncMode()
	nonCanon, _ := unsorted.Marshal(sigFirst{c.Signature, c.Deployment, c.DeviceID, c.Name, string(c.Role), c.PublicKey, c.IssuedAt, c.Expires})
	// Key 3 twice: a prefix of the canonical map, then a second name.
	dup := append([]byte{0xa9}, good[1:]...)
	dup = append(dup, 0x03, 0x61, 'x')

	for name, b := range map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("not cbor at all"),
		"null":           {0xf6},
		"array":          {0x80},
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0x00),
		"unknown key":    withExtra,
		"non-canonical":  nonCanon,
		"duplicate key":  dup,
		"too large":      bytes.Repeat([]byte{0}, MaxCredentialSize+1),
	} {
		if _, err := UnmarshalCredential(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: UnmarshalCredential error = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := UnmarshalCredential(good); err != nil {
		t.Fatalf("good credential: %v", err)
	}
}

// TestUnmarshalRandomNeverPanics feeds random bytes and random mutations of
// a valid credential; every input must be rejected or decode to something
// that is canonical and verifies only if it is the original.
func TestUnmarshalRandomNeverPanics(t *testing.T) {
	a := newAuthority(t, 1)
	v := a.Verifier()
	good, err := issue(t, a, "laptop-a", 10).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const seed = 42
	r := seededRand(seed)
	buf := make([]byte, 600)
	for i := 0; i < 20000; i++ {
		var in []byte
		if i%2 == 0 {
			_, _ = r.Read(buf[:2])
			in = buf[:int(buf[0])<<1|int(buf[1])&1]
			_, _ = r.Read(in)
		} else {
			in = append([]byte(nil), good...)
			_, _ = r.Read(buf[:3])
			in[int(buf[0])%len(in)] ^= buf[1] | 1
			if buf[2]&1 == 1 {
				in = in[:int(buf[2])%len(in)]
			}
		}
		c, err := UnmarshalCredential(in)
		if err != nil {
			continue
		}
		if again, _ := c.Marshal(); !bytes.Equal(again, in) {
			t.Fatalf("seed %d input %d: accepted non-canonical %x", seed, i, in)
		}
		if err := v.Verify(c, testNow); err == nil && !bytes.Equal(in, good) {
			t.Fatalf("seed %d input %d: altered credential %x verified", seed, i, in)
		}
	}
}
