package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// revokeSetup makes an authority directory with three registered devices.
func revokeSetup(t *testing.T) (string, *Authority, []*Device) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "authority")
	a, err := InitAuthority(dir, seededRand(1))
	if err != nil {
		t.Fatal(err)
	}
	var devs []*Device
	for i, name := range []string{"laptop-a", "laptop-b", "laptop-c"} {
		d, err := InitDevice(a, filepath.Join(t.TempDir(), name), name, RoleField, testNow, 0, seededRand(uint64(10+i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := RegisterDevice(dir, d.Credential); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	return dir, a, devs
}

func TestRevokeIsNumberedAndCumulative(t *testing.T) {
	dir, a, devs := revokeSetup(t)
	v := a.Verifier()
	r1, err := a.Revoke(dir, "laptop-c", "lost on the ferry", testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Already || r1.Unregistered || r1.List.Number != 1 || r1.Device.DeviceID != devs[2].ID() || r1.Device.Name != "laptop-c" ||
		r1.Device.Reason != "lost on the ferry" || r1.Device.RevokedAt != testNow.Unix() {
		t.Fatalf("first revocation: %+v", r1)
	}
	l1, err := v.VerifyRevocation(r1.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l1.Lookup(devs[2].ID()); !ok {
		t.Fatal("list 1 does not revoke laptop-c")
	}
	if _, ok := l1.Lookup(devs[0].ID()); ok {
		t.Fatal("list 1 revokes laptop-a")
	}
	// Kept in the authority directory.
	if kept, err := os.ReadFile(filepath.Join(dir, RevocationsFile)); err != nil || !bytes.Equal(kept, r1.Raw) {
		t.Fatalf("revocations.cbor: %v", err)
	}
	// Again: nothing new is signed.
	again, err := a.Revoke(dir, devs[2].ID(), "", testNow.Add(time.Hour), nil)
	if err != nil || !again.Already || !bytes.Equal(again.Raw, r1.Raw) {
		t.Fatalf("revoking again: %+v, %v", again, err)
	}
	// By id, a device the registry does not know.
	stranger := DeviceID(mustPub(t, 99))
	r2, err := a.Revoke(dir, stranger, "", testNow.Add(time.Hour), nil)
	if err != nil || !r2.Unregistered || r2.List.Number != 2 || r2.Device.Name != "" {
		t.Fatalf("by id: %+v, %v", r2, err)
	}
	l2, err := v.VerifyRevocation(r2.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Covers(&l1); err != nil {
		t.Fatalf("list 2 does not cover list 1: %v", err)
	}
	if err := l1.Covers(&l2); err == nil {
		t.Fatal("list 1 covers list 2")
	}
	if got, _ := l2.Lookup(devs[2].ID()); got.RevokedAt != testNow.Unix() {
		t.Fatalf("laptop-c's revocation time moved: %+v", got)
	}
	// A list dropping an earlier revocation does not cover it.
	dropped := l2
	dropped.Number = 3
	dropped.Revoked = nil
	if err := dropped.Covers(&l2); !errors.Is(err, ErrRevocation) {
		t.Fatalf("a list dropping revocations covers: %v", err)
	}
}

func TestRevokeByNameErrors(t *testing.T) {
	dir, a, _ := revokeSetup(t)
	if _, err := a.Revoke(dir, "laptop-z", "", testNow, nil); !errors.Is(err, ErrUnknownDevice) || !strings.Contains(err.Error(), "device id") {
		t.Fatalf("unknown name: %v", err)
	}
	// Two devices of one name: the id is needed.
	d, err := InitDevice(a, filepath.Join(t.TempDir(), "twin"), "laptop-a", RoleField, testNow, 0, seededRand(50))
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterDevice(dir, d.Credential); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Revoke(dir, "laptop-a", "", testNow, nil); !errors.Is(err, ErrUnknownDevice) || !strings.Contains(err.Error(), d.ID()) {
		t.Fatalf("ambiguous name: %v", err)
	}
	if _, err := a.Revoke(dir, "laptop-b", "bad\x1breason", testNow, nil); err == nil {
		t.Fatal("a reason with a control character was accepted")
	}
}

func TestVerifyRevocationRefuses(t *testing.T) {
	dir, a, _ := revokeSetup(t)
	r, err := a.Revoke(dir, "laptop-c", "", testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := a.Verifier()
	// Another deployment's authority.
	other := newAuthority(t, 2)
	if _, err := other.Verifier().VerifyRevocation(r.Raw); !errors.Is(err, ErrOtherDeployment) || !errors.Is(err, ErrRevocation) {
		t.Fatalf("other deployment: %v", err)
	}
	// Signed by another key but naming our deployment.
	l := r.List
	forged, err := other.SignRevocation(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyRevocation(forged); !errors.Is(err, ErrOtherDeployment) {
		t.Fatalf("forged by another authority: %v", err)
	}
	// One flipped byte in the body.
	bad := bytes.Clone(r.Raw)
	i := bytes.Index(bad, []byte(r.List.Revoked[0].DeviceID))
	bad[i] ^= 1
	if _, err := v.VerifyRevocation(bad); !errors.Is(err, ErrRevocation) {
		t.Fatalf("altered: %v", err)
	}
	bad = bytes.Clone(r.Raw)
	bad[len(bad)-1] ^= 1
	if _, err := v.VerifyRevocation(bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad signature: %v", err)
	}
	if _, err := v.VerifyRevocation(append(bytes.Clone(r.Raw), 0)); !errors.Is(err, ErrRevocation) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := v.VerifyRevocation(make([]byte, MaxRevocationSize+1)); !errors.Is(err, ErrRevocation) {
		t.Fatalf("too large: %v", err)
	}
	// Shape rules at signing.
	unsorted := RevocationList{Number: 1, Issued: 10, Revoked: []RevokedDevice{
		{DeviceID: strings.Repeat("b", 26), RevokedAt: 10}, {DeviceID: strings.Repeat("a", 26), RevokedAt: 10}}}
	if _, err := a.SignRevocation(unsorted); !errors.Is(err, ErrRevocation) {
		t.Fatalf("unsorted list signed: %v", err)
	}
	if _, err := a.SignRevocation(RevocationList{Number: 0, Issued: 10}); !errors.Is(err, ErrRevocation) {
		t.Fatalf("list 0 signed: %v", err)
	}
}

func mustPub(t *testing.T, seed uint64) []byte {
	t.Helper()
	pub, _ := newKey(t, seed)
	return pub
}

// FuzzDecodeRevocation checks that no input panics, that whatever decodes is
// canonical, and that nothing but the genuine list verifies.
func FuzzDecodeRevocation(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "authority")
	a, err := InitAuthority(dir, seededRand(1))
	if err != nil {
		f.Fatal(err)
	}
	d, err := InitDevice(a, filepath.Join(f.TempDir(), "d"), "laptop-a", RoleField, testNow, 0, seededRand(2))
	if err != nil {
		f.Fatal(err)
	}
	if err := RegisterDevice(dir, d.Credential); err != nil {
		f.Fatal(err)
	}
	r, err := a.Revoke(dir, "laptop-a", "lost", testNow, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.Raw)
	f.Add(r.Raw[:len(r.Raw)/2])
	f.Add([]byte{})
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	f.Add([]byte{0xbf, 0xff})
	v := a.Verifier()
	f.Fuzz(func(t *testing.T, in []byte) {
		l, body, _, err := DecodeRevocation(in)
		if err != nil {
			return
		}
		again, err := encMode.Marshal(l)
		if err != nil || !bytes.Equal(again, body) {
			t.Fatalf("accepted a non-canonical body %x", in)
		}
		if _, err := v.VerifyRevocation(in); err == nil && !bytes.Equal(in, r.Raw) {
			t.Fatalf("forged list verified: %x", in)
		}
	})
}
