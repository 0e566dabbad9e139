package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Size limits of a credential. They bound what [UnmarshalCredential] accepts
// from a peer before any signature is checked.
const (
	// MaxNameLen is the longest device name, in characters (runes).
	MaxNameLen = 64
	// MaxCredentialSize is the largest encoded credential accepted, in
	// bytes. A real one is under 300 bytes; the longest possible valid one
	// (a 64-character name of 4-byte runes) stays under 500.
	MaxCredentialSize = 1024
	// DeviceIDLen and DeploymentIDLen are the lengths of the two ids.
	DeviceIDLen     = 26
	DeploymentIDLen = 16
)

// credentialSigContext is prefixed to the signed bytes so that a credential
// signature can never be mistaken for a signature over anything else.
const credentialSigContext = "fieldsync credential v1\x00"

// deviceIDEncoding is RFC 4648 base32 without padding, lowercased after
// encoding: easy to read aloud, no ambiguous case.
var deviceIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// DeviceID derives the short stable id of a device from its public key:
// lowercase base32 (no padding) of the first 16 bytes of SHA-256(pub), 26
// characters.
func DeviceID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return string(bytes.ToLower([]byte(deviceIDEncoding.EncodeToString(sum[:16]))))
}

// DeploymentID derives the id of a deployment from its authority public
// key: lowercase hex of the first 8 bytes of SHA-256(authorityPub), 16
// characters.
func DeploymentID(authorityPub ed25519.PublicKey) string {
	sum := sha256.Sum256(authorityPub)
	return hex.EncodeToString(sum[:8])
}

// Credential is the authority's statement that PublicKey belongs to the
// device Name with Role in Deployment, from IssuedAt until Expires. The CBOR
// keys are fixed by the wire format described in the package documentation;
// never renumber them.
type Credential struct {
	// Deployment is the DeploymentID of the issuing authority.
	Deployment string `cbor:"1,keyasint"`
	// DeviceID is DeviceID(PublicKey).
	DeviceID string `cbor:"2,keyasint"`
	// Name is the human name of the device, e.g. "laptop-a": 1 to
	// MaxNameLen printable characters.
	Name string `cbor:"3,keyasint"`
	// Role is what the device may do.
	Role Role `cbor:"4,keyasint"`
	// PublicKey is the device's ed25519 public key.
	PublicKey ed25519.PublicKey `cbor:"5,keyasint"`
	// IssuedAt is when the credential was issued, in unix seconds.
	IssuedAt int64 `cbor:"6,keyasint"`
	// Expires is the last instant the credential is valid, in unix seconds.
	Expires int64 `cbor:"7,keyasint"`
	// Signature is the authority's ed25519 signature over the signed bytes
	// (see the package documentation). Omitted while signing.
	Signature []byte `cbor:"8,keyasint,omitempty"`
	// Officer is the officer the device is issued to, shown beside every
	// change the device makes; empty when not given.
	Officer string `cbor:"9,keyasint,omitempty"`
}

var (
	// encMode is the core deterministic encoding: sorted keys, shortest
	// integer forms, definite lengths. The bytes are hashed and signed, so
	// they must be the same on every machine and every version.
	encMode = mustEncMode()
	// decMode refuses everything encMode never produces, and bounds the
	// work an attacker-supplied credential can cause.
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		// Fixed options: this only fails if the library is broken.
		panic("identity: cbor encode mode: " + err.Error())
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic("identity: cbor decode mode: " + err.Error())
	}
	return dm
}

// Marshal returns the deterministic CBOR encoding of c, signature included.
// It does not check that c is well formed; [Credential.Marshal] of an issued
// credential round-trips through [UnmarshalCredential].
func (c Credential) Marshal() ([]byte, error) {
	b, err := encMode.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode credential: %w", err)
	}
	return b, nil
}

// UnmarshalCredential decodes a credential marshalled by
// [Credential.Marshal]. It never panics, rejects input larger than
// [MaxCredentialSize], and checks the shape of every field (lengths,
// formats, known role, printable name) but not the signature or validity
// window: that is [Verifier.Verify]'s job. Errors wrap [ErrMalformed].
func UnmarshalCredential(b []byte) (Credential, error) {
	if len(b) > MaxCredentialSize {
		return Credential{}, malformed("credential is %d bytes, at most %d allowed", len(b), MaxCredentialSize)
	}
	var c Credential
	if err := decMode.Unmarshal(b, &c); err != nil {
		return Credential{}, &detailError{
			msg:      "malformed credential: cannot decode: " + err.Error(),
			sentinel: ErrMalformed,
			cause:    err,
		}
	}
	// Only the canonical encoding is accepted, so that a credential has
	// exactly one byte form (no malleability through alternate encodings).
	again, err := encMode.Marshal(c)
	if err != nil || !bytes.Equal(again, b) {
		return Credential{}, malformed("credential is not in canonical encoding")
	}
	if err := c.checkShape(); err != nil {
		return Credential{}, err
	}
	return c, nil
}

// signedBytes returns the bytes the authority signs: the context prefix and
// the deterministic CBOR of every field but the signature.
func (c Credential) signedBytes() ([]byte, error) {
	c.Signature = nil
	body, err := encMode.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode credential: %w", err)
	}
	out := make([]byte, 0, len(credentialSigContext)+len(body))
	out = append(out, credentialSigContext...)
	return append(out, body...), nil
}

// checkShape checks every field's form without any key: what a credential
// must look like before it is worth verifying.
func (c Credential) checkShape() error {
	switch {
	case !isLowerHex(c.Deployment, DeploymentIDLen):
		return malformed("deployment id %q is not %d lowercase hex characters", clip(c.Deployment), DeploymentIDLen)
	case !isLowerBase32(c.DeviceID, DeviceIDLen):
		return malformed("device id %q is not %d lowercase base32 characters", clip(c.DeviceID), DeviceIDLen)
	case !c.Role.Valid():
		return malformed("role %q is not one of %s", clip(string(c.Role)), validRoles)
	case len(c.PublicKey) != ed25519.PublicKeySize:
		return malformed("public key is %d bytes, want %d", len(c.PublicKey), ed25519.PublicKeySize)
	case len(c.Signature) != ed25519.SignatureSize:
		return malformed("signature is %d bytes, want %d", len(c.Signature), ed25519.SignatureSize)
	case c.Expires <= c.IssuedAt:
		return malformed("expiry %s is not after issue time %s", unixTime(c.Expires), unixTime(c.IssuedAt))
	}
	if c.Officer != "" {
		if err := checkName(c.Officer); err != nil {
			return fmt.Errorf("officer: %w", err)
		}
	}
	if err := checkName(c.Name); err != nil {
		return &detailError{msg: "malformed credential: " + err.Error(), sentinel: ErrMalformed, cause: err}
	}
	return nil
}

// checkName enforces the device name rules: 1 to MaxNameLen runes of valid
// UTF-8, every one printable (no control, format or non-ASCII space
// characters, which could hide text in logs and lists).
func checkName(name string) error {
	fail := func(why string) error {
		return &detailError{msg: fmt.Sprintf("invalid device name %q: %s", clip(name), why), sentinel: ErrInvalidName}
	}
	switch n := utf8.RuneCountInString(name); {
	case name == "":
		return fail("it is empty")
	case !utf8.ValidString(name):
		return fail("it is not valid UTF-8")
	case n > MaxNameLen:
		return fail(fmt.Sprintf("it is %d characters, at most %d allowed", n, MaxNameLen))
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fail(fmt.Sprintf("character %U is not printable", r))
		}
	}
	return nil
}

func malformed(format string, args ...any) error {
	return &detailError{msg: "malformed credential: " + fmt.Sprintf(format, args...), sentinel: ErrMalformed}
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isLowerBase32(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// clip shortens attacker-supplied text before it goes into an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// unixTime formats unix seconds for an operator: UTC, RFC 3339.
func unixTime(sec int64) string {
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}
