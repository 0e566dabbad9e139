package identity

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// testNow is the fixed "now" of these tests: never the wall clock.
var testNow = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// seededRand returns a deterministic random reader: the same seed gives the
// same keys on every run.
func seededRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// newAuthority creates an authority in a fresh temporary directory.
func newAuthority(t *testing.T, seed uint64) *Authority {
	t.Helper()
	a, err := InitAuthority(filepath.Join(t.TempDir(), "authority"), seededRand(seed))
	if err != nil {
		t.Fatalf("InitAuthority: %v", err)
	}
	return a
}

// newKey returns a deterministic device key pair.
func newKey(t *testing.T, seed uint64) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(seededRand(seed))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return pub, priv
}

// issue issues a field credential for a fresh key, valid for 30 days.
func issue(t *testing.T, a *Authority, name string, keySeed uint64) Credential {
	t.Helper()
	pub, _ := newKey(t, keySeed)
	c, err := a.Issue(name, RoleField, pub, testNow, 30*24*time.Hour)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return c
}

func hexString(b []byte) string { return hex.EncodeToString(b) }

// Golden values for TestWireGolden (authority seed 0x01…, device seed
// 0x02…, secret 0x03…, issued 1770000000 for a day). The ids and the gossip
// key were cross-checked with Python's hashlib/hmac and the cryptography
// package, independently of this code.
const (
	goldenDeployment = "34750f98bd59fcfc"
	goldenDevice     = "ni4ahvpqlgicuhdnv66jxjdssi"
	goldenCredential = "a8" +
		"01" + "70" + "33343735306639386264353966636663" + // 1: deployment
		"02" + "781a" + "6e693461687670716c6769637568646e7636366a786a64737369" + // 2: device id
		"03" + "68" + "6c6170746f702d61" + // 3: "laptop-a"
		"04" + "65" + "6669656c64" + // 4: "field"
		"05" + "5820" + "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394" + // 5: public key
		"06" + "1a69800e80" + // 6: issued 1770000000
		"07" + "1a69816000" + // 7: expires 1770086400
		"08" + "5840" + "db4a38ad6ac66459227eb080e9f4a227018aacde01469505b49208afbc50b848" +
		"4c47ced2938787a33c1c92170d93aed7b892e54afbca2e68aa54c247810fd003" // 8: signature
	goldenGossipKey = "f6a76fe97b2e3bda75854b6c56249158e4519dd5713134393f1a1093393225f3"
)
