package identity

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where it
// applies; test with errors.Is. The error text itself is written for the
// district IT officer who reads it and says what to do.
var (
	// ErrOtherDeployment: the credential was issued by another deployment's
	// authority. The message names both deployment ids.
	ErrOtherDeployment = errors.New("credential of another deployment")
	// ErrBadSignature: the credential's signature does not verify against
	// this deployment's authority key; it was altered or forged.
	ErrBadSignature = errors.New("bad credential signature")
	// ErrExpired: the current time is after the credential's expiry.
	ErrExpired = errors.New("credential expired")
	// ErrNotYetValid: the current time is more than [ClockSkew] before the
	// credential's issue time. Almost always a wrong clock on one laptop.
	ErrNotYetValid = errors.New("credential not yet valid")
	// ErrMalformed: the credential (or a key file) cannot be decoded or has
	// fields of the wrong shape.
	ErrMalformed = errors.New("malformed credential")
	// ErrKeyMismatch: the credential is valid but belongs to a different
	// key than the one the peer proved in the transport handshake.
	ErrKeyMismatch = errors.New("credential belongs to another key")
	// ErrExists: an authority or device key already exists where one was to
	// be created; it is never overwritten.
	ErrExists = errors.New("key already exists")
	// ErrNotFound: there is no authority or device key where one was to be
	// loaded.
	ErrNotFound = errors.New("key not found")
	// ErrUnknownRole: a role name that is not one of field, hub, admin.
	ErrUnknownRole = errors.New("unknown role")
	// ErrInvalidName: a device name that is empty, longer than
	// [MaxNameLen] characters, or holds non-printable characters.
	ErrInvalidName = errors.New("invalid device name")
)

// detailError carries a full operator-facing message while still matching a
// sentinel (and an underlying cause, if any) with errors.Is. It lets the
// message read naturally instead of starting with the sentinel's text.
type detailError struct {
	msg      string
	sentinel error
	cause    error
}

func (e *detailError) Error() string { return e.msg }

func (e *detailError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.cause}
}
