package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// ClockSkew is how far before its IssuedAt a credential is already
// accepted. Laptops offline for days drift; a device provisioned on a laptop
// whose clock runs a few minutes ahead must still be able to join at once.
const ClockSkew = 5 * time.Minute

// Verifier checks credentials against one deployment's authority public
// key. The zero Verifier rejects every credential. A Verifier is a small
// immutable value, safe for concurrent use.
type Verifier struct {
	authority  ed25519.PublicKey
	deployment string
}

// NewVerifier returns a Verifier for the deployment whose authority public
// key is authorityPub. The key is copied.
func NewVerifier(authorityPub ed25519.PublicKey) Verifier {
	pub := append(ed25519.PublicKey(nil), authorityPub...)
	return Verifier{authority: pub, deployment: DeploymentID(pub)}
}

// Deployment returns the DeploymentID of the verifier's authority.
func (v Verifier) Deployment() string { return v.deployment }

// Verify checks c in this order: its fields are well formed
// ([ErrMalformed]); it is of this deployment ([ErrOtherDeployment], the
// message naming both deployment ids); the authority's signature is valid
// ([ErrBadSignature]); its DeviceID is DeviceID(PublicKey) ([ErrMalformed]);
// and now is within [IssuedAt-ClockSkew, Expires] ([ErrNotYetValid],
// [ErrExpired]). The signature is checked before the device id so that a
// credential whose key was swapped reports [ErrBadSignature].
//
// Revocation is not checked here: a Verifier answers "did our authority issue
// this, and is it current", and the caller consults its revocation list.
func (v Verifier) Verify(c Credential, now time.Time) error {
	if err := v.verifyIssued(c); err != nil {
		return err
	}
	t := now.Unix()
	if t < c.IssuedAt-int64(ClockSkew/time.Second) {
		return &detailError{
			msg: fmt.Sprintf("credential of device %q (%s) is valid only from %s, but the time now is %s: check the clock of this computer and of the other laptop",
				c.Name, c.DeviceID, unixTime(c.IssuedAt), unixTime(t)),
			sentinel: ErrNotYetValid,
		}
	}
	if t > c.Expires {
		return &detailError{
			msg: fmt.Sprintf("credential of device %q (%s) expired at %s (now %s): issue the device a new credential, or check this computer's clock",
				c.Name, c.DeviceID, unixTime(c.Expires), unixTime(t)),
			sentinel: ErrExpired,
		}
	}
	return nil
}

// VerifyPeer is [Verifier.Verify] plus a check that the credential belongs
// to peerPub, the key the peer proved it holds in the transport handshake.
// Without it a peer could replay another device's (public) credential.
// A mismatch returns [ErrKeyMismatch].
func (v Verifier) VerifyPeer(c Credential, peerPub ed25519.PublicKey, now time.Time) error {
	if err := v.Verify(c, now); err != nil {
		return err
	}
	if !c.PublicKey.Equal(peerPub) {
		return &detailError{
			msg: fmt.Sprintf("peer presented the credential of device %q (%s) but proved a different key (device id %s): it is not that device",
				c.Name, c.DeviceID, DeviceID(peerPub)),
			sentinel: ErrKeyMismatch,
		}
	}
	return nil
}

// verifyIssued is Verify without the validity window: a loaded device may
// hold an expired credential and still needs to know it is genuine.
func (v Verifier) verifyIssued(c Credential) error {
	if len(v.authority) != ed25519.PublicKeySize {
		return errors.New("verify credential: no valid authority public key configured")
	}
	if err := c.checkShape(); err != nil {
		return err
	}
	if c.Deployment != v.deployment {
		return &detailError{
			msg: fmt.Sprintf("credential of deployment %s, this deployment is %s (device %q, %s): it was issued by another authority",
				c.Deployment, v.deployment, c.Name, c.DeviceID),
			sentinel: ErrOtherDeployment,
		}
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(v.authority, msg, c.Signature) {
		return &detailError{
			msg: fmt.Sprintf("credential of device %q (%s) is not signed by the authority of deployment %s: it was altered or forged",
				c.Name, c.DeviceID, v.deployment),
			sentinel: ErrBadSignature,
		}
	}
	if want := DeviceID(c.PublicKey); c.DeviceID != want {
		return malformed("device id %s does not match its public key (%s)", c.DeviceID, want)
	}
	return nil
}
