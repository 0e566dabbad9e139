package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Limits of a revocation list. They bound what [DecodeRevocation] accepts
// from a peer before any signature is checked.
const (
	// MaxRevocationSize is the largest encoded list accepted, in bytes. A
	// list for 2,048 devices with a sealed gossip key for each stays under
	// 320 KiB.
	MaxRevocationSize = 512 << 10
	// MaxListDevices bounds both the revoked devices and the sealed gossip
	// keys of one list: far above a province's laptops.
	MaxListDevices = 2048
	// MaxReasonLen is the longest revocation reason, in bytes.
	MaxReasonLen = 200
)

// revocationSigContext is prefixed to the signed body: a revocation
// signature can never pass for a credential signature of the same
// authority key, nor the reverse (the contexts differ in their first
// bytes).
const revocationSigContext = "fieldsync revocation v1\x00"

// ErrRevocation: a revocation list that cannot be decoded, is not signed by
// this deployment's authority, or breaks the list rules (numbering,
// cumulativeness). The message says which.
var ErrRevocation = errors.New("invalid revocation list")

// RevocationList is the authority's signed, numbered and cumulative list of
// revoked devices: list N+1 holds every device of list N and more. Any agent
// that holds the authority public key checks it offline, so the list spreads
// from laptop to laptop without the authority online. The CBOR keys are the
// wire format (docs/protocol.md); never renumber them.
type RevocationList struct {
	// Deployment is the DeploymentID of the signing authority.
	Deployment string `cbor:"1,keyasint"`
	// Number orders the lists of a deployment: 1, 2, 3, … A newer list
	// replaces an older one everywhere.
	Number uint64 `cbor:"2,keyasint"`
	// Issued is when the authority signed the list, in unix seconds.
	Issued int64 `cbor:"3,keyasint"`
	// Revoked lists the revoked devices, sorted by device id, each once.
	Revoked []RevokedDevice `cbor:"4,keyasint"`
	// Gossip is the deployment's new gossip key, sealed to every device
	// that remains; nil in a list that does not change the key.
	Gossip *GossipGrant `cbor:"5,keyasint,omitempty"`
}

// RevokedDevice is one revoked device.
type RevokedDevice struct {
	DeviceID string `cbor:"1,keyasint"`
	// Name is the device's name from its credential; empty when the
	// authority revoked a device id it had no record of.
	Name   string `cbor:"2,keyasint,omitempty"`
	Reason string `cbor:"3,keyasint,omitempty"`
	// RevokedAt is when the device was first revoked (the Issued time of
	// that list), in unix seconds. Receipts a revoked hub signed after it
	// are not believed.
	RevokedAt int64 `cbor:"4,keyasint"`
}

// GossipGrant carries a gossip key of one epoch, sealed separately to each
// remaining device's key (see [SealGossipKey]).
type GossipGrant struct {
	// Epoch is the list number that introduced the key.
	Epoch  uint64      `cbor:"1,keyasint"`
	Sealed []SealedKey `cbor:"2,keyasint"`
}

// SealedKey is the gossip key sealed to one device.
type SealedKey struct {
	DeviceID string `cbor:"1,keyasint"`
	// Ephemeral is the sender's one-time X25519 public key (32 bytes).
	Ephemeral []byte `cbor:"2,keyasint"`
	// Box is the ChaCha20-Poly1305 ciphertext of the 32-byte key and its
	// 16-byte tag.
	Box []byte `cbor:"3,keyasint"`
}

// signedRevocation is the encoded list as it travels and is stored: the
// body bytes exactly as signed, and the authority's signature.
type signedRevocation struct {
	Body []byte `cbor:"1,keyasint"`
	Sig  []byte `cbor:"2,keyasint"`
}

// revDecMode bounds a list's decoding: many devices, little nesting.
var revDecMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   6,
		MaxArrayElements:  MaxListDevices,
		MaxMapPairs:       16,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic("identity: cbor revocation decode mode: " + err.Error())
	}
	return dm
}()

// Lookup reports whether the list revokes device id, and the entry.
func (l *RevocationList) Lookup(id string) (RevokedDevice, bool) {
	if l == nil {
		return RevokedDevice{}, false
	}
	i, ok := slices.BinarySearchFunc(l.Revoked, id, func(r RevokedDevice, id string) int { return strings.Compare(r.DeviceID, id) })
	if !ok {
		return RevokedDevice{}, false
	}
	return l.Revoked[i], true
}

// Covers checks that l may replace prev: a higher number, and every device
// prev revokes still revoked, with the same revocation time. prev nil is
// always covered.
func (l *RevocationList) Covers(prev *RevocationList) error {
	if prev == nil {
		return nil
	}
	if l.Number <= prev.Number {
		return revErr("list %d is not newer than list %d", l.Number, prev.Number)
	}
	for _, r := range prev.Revoked {
		got, ok := l.Lookup(r.DeviceID)
		if !ok {
			return revErr("list %d drops device %s revoked by list %d: every list must contain every earlier revocation", l.Number, r.DeviceID, prev.Number)
		}
		if got.RevokedAt != r.RevokedAt {
			return revErr("list %d changes when device %s was revoked", l.Number, r.DeviceID)
		}
	}
	return nil
}

// SignRevocation checks l's shape, sets its deployment and returns the
// signed encoding to hand to agents.
func (a *Authority) SignRevocation(l RevocationList) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, fmt.Errorf("sign revocation list: %w", err)
	}
	l.Deployment = a.Deployment()
	if err := l.checkShape(); err != nil {
		return nil, err
	}
	body, err := encMode.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("sign revocation list: encode: %w", err)
	}
	msg := append([]byte(revocationSigContext), body...)
	out, err := encMode.Marshal(signedRevocation{Body: body, Sig: ed25519.Sign(a.Private, msg)})
	if err != nil {
		return nil, fmt.Errorf("sign revocation list: encode: %w", err)
	}
	if len(out) > MaxRevocationSize {
		return nil, revErr("list is %d bytes, at most %d allowed", len(out), MaxRevocationSize)
	}
	return out, nil
}

// DecodeRevocation parses a signed list without checking the signature: it
// never panics, refuses more than [MaxRevocationSize] bytes and anything but
// the canonical encoding, and checks the shape of every field. Use
// [Verifier.VerifyRevocation] for a list from anyone but yourself.
func DecodeRevocation(b []byte) (RevocationList, []byte, []byte, error) {
	if len(b) > MaxRevocationSize {
		return RevocationList{}, nil, nil, revErr("list is %d bytes, at most %d allowed", len(b), MaxRevocationSize)
	}
	var env signedRevocation
	if err := revDecMode.Unmarshal(b, &env); err != nil {
		return RevocationList{}, nil, nil, revErr("cannot decode: %s", err)
	}
	if again, err := encMode.Marshal(env); err != nil || !bytes.Equal(again, b) {
		return RevocationList{}, nil, nil, revErr("not in canonical encoding")
	}
	var l RevocationList
	if err := revDecMode.Unmarshal(env.Body, &l); err != nil {
		return RevocationList{}, nil, nil, revErr("cannot decode the body: %s", err)
	}
	if again, err := encMode.Marshal(l); err != nil || !bytes.Equal(again, env.Body) {
		return RevocationList{}, nil, nil, revErr("body not in canonical encoding")
	}
	if len(env.Sig) != ed25519.SignatureSize {
		return RevocationList{}, nil, nil, revErr("signature is %d bytes, want %d", len(env.Sig), ed25519.SignatureSize)
	}
	if err := l.checkShape(); err != nil {
		return RevocationList{}, nil, nil, err
	}
	return l, env.Body, env.Sig, nil
}

// VerifyRevocation decodes a signed list and checks it is this
// deployment's ([ErrOtherDeployment]) and signed by its authority
// ([ErrBadSignature]); every error also wraps [ErrRevocation].
func (v Verifier) VerifyRevocation(b []byte) (RevocationList, error) {
	l, body, sig, err := DecodeRevocation(b)
	if err != nil {
		return RevocationList{}, err
	}
	if len(v.authority) != ed25519.PublicKeySize {
		return RevocationList{}, errors.New("verify revocation list: no valid authority public key configured")
	}
	if l.Deployment != v.deployment {
		return RevocationList{}, &detailError{
			msg:      fmt.Sprintf("revocation list %d is of deployment %s, this deployment is %s: it was issued by another authority", l.Number, l.Deployment, v.deployment),
			sentinel: ErrRevocation, cause: ErrOtherDeployment,
		}
	}
	if !ed25519.Verify(v.authority, append([]byte(revocationSigContext), body...), sig) {
		return RevocationList{}, &detailError{
			msg:      fmt.Sprintf("revocation list %d is not signed by the authority of deployment %s: it was altered or forged", l.Number, v.deployment),
			sentinel: ErrRevocation, cause: ErrBadSignature,
		}
	}
	return l, nil
}

// checkShape checks every field's form.
func (l *RevocationList) checkShape() error {
	switch {
	case !isLowerHex(l.Deployment, DeploymentIDLen):
		return revErr("deployment id %q is not %d lowercase hex characters", clip(l.Deployment), DeploymentIDLen)
	case l.Number == 0:
		return revErr("list number 0: lists are numbered from 1")
	case l.Issued <= 0:
		return revErr("issue time %d is not after 1970", l.Issued)
	case len(l.Revoked) > MaxListDevices:
		return revErr("%d revoked devices, at most %d", len(l.Revoked), MaxListDevices)
	}
	for i, r := range l.Revoked {
		switch {
		case !isLowerBase32(r.DeviceID, DeviceIDLen):
			return revErr("device id %q is not %d lowercase base32 characters", clip(r.DeviceID), DeviceIDLen)
		case i > 0 && l.Revoked[i-1].DeviceID >= r.DeviceID:
			return revErr("revoked devices are not sorted by id, each once")
		case r.RevokedAt <= 0 || r.RevokedAt > l.Issued:
			return revErr("device %s revoked at %d, not between 1970 and the list's issue time", r.DeviceID, r.RevokedAt)
		case len(r.Reason) > MaxReasonLen || !printable(r.Reason):
			return revErr("reason for device %s is longer than %d bytes or not printable", r.DeviceID, MaxReasonLen)
		}
		if r.Name != "" {
			if err := checkName(r.Name); err != nil {
				return &detailError{msg: "invalid revocation list: " + err.Error(), sentinel: ErrRevocation, cause: err}
			}
		}
	}
	if g := l.Gossip; g != nil {
		switch {
		case g.Epoch != l.Number:
			return revErr("gossip key epoch %d is not the list number %d", g.Epoch, l.Number)
		case len(g.Sealed) > MaxListDevices:
			return revErr("%d sealed gossip keys, at most %d", len(g.Sealed), MaxListDevices)
		}
		for i, s := range g.Sealed {
			switch {
			case !isLowerBase32(s.DeviceID, DeviceIDLen):
				return revErr("sealed key for %q: not a device id", clip(s.DeviceID))
			case i > 0 && g.Sealed[i-1].DeviceID >= s.DeviceID:
				return revErr("sealed gossip keys are not sorted by device id, each once")
			case len(s.Ephemeral) != 32 || len(s.Box) != GossipKeySize+16:
				return revErr("sealed gossip key for %s has the wrong size", s.DeviceID)
			}
			if _, revoked := l.Lookup(s.DeviceID); revoked {
				return revErr("gossip key sealed to revoked device %s", s.DeviceID)
			}
		}
	}
	return nil
}

// printable reports whether s is valid UTF-8 of printable characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func revErr(format string, args ...any) error {
	return &detailError{msg: "invalid revocation list: " + fmt.Sprintf(format, args...), sentinel: ErrRevocation}
}
