package identity

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// FuzzUnmarshalCredential checks that no input panics, that every accepted
// input is in canonical form, and that Verify never panics on what decodes.
func FuzzUnmarshalCredential(f *testing.F) {
	a, err := InitAuthority(f.TempDir(), seededRand(1))
	if err != nil {
		f.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(seededRand(2))
	c, err := a.Issue("laptop-a", RoleField, pub, testNow, 0)
	if err != nil {
		f.Fatal(err)
	}
	good, err := c.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Add([]byte{0xa8, 0x01, 0x7f, 0xff})
	v := a.Verifier()
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := UnmarshalCredential(in)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil || !bytes.Equal(again, in) {
			t.Fatalf("accepted non-canonical input %x", in)
		}
		if err := v.Verify(c, testNow); err == nil && !bytes.Equal(in, good) {
			t.Fatalf("forged credential verified: %x", in)
		}
	})
}
