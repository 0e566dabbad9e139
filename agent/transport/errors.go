package transport

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where it
// applies; test with errors.Is. The wrapped text says which peer or field.
var (
	// ErrInvalidConfig is returned by New when the Config fails validation.
	ErrInvalidConfig = errors.New("invalid transport config")

	// ErrBadPeerID is returned for a string that is not a libp2p peer id,
	// or a public key that is not a 32-byte ed25519 key.
	ErrBadPeerID = errors.New("bad peer id")

	// ErrBadAddress is returned for an address that is not "HOST:PORT".
	ErrBadAddress = errors.New("bad address")

	// ErrRefusedByPeer: the peer checked our credential and refused it. The
	// error text carries the peer's reason ("refused by peer: <reason>").
	// It is also returned when the peer refused us earlier and now drops
	// our connections before the handshake (its deny list).
	ErrRefusedByPeer = errors.New("refused by peer")

	// ErrRefused: we checked the peer's credential and refused it (Config.Admit
	// returned an error). The error text carries the reason.
	ErrRefused = errors.New("refused peer")

	// ErrDenied: the peer was refused less than Config.DenyFor ago, so the
	// connection gater does not even dial it.
	ErrDenied = errors.New("peer denied")

	// ErrHandshake: the credential handshake did not complete: it timed out,
	// the connection closed, or the peer does not speak the hello protocol.
	ErrHandshake = errors.New("credential handshake failed")

	// ErrNotAdmitted is returned by Open for a peer that has not completed
	// the credential handshake on a live connection.
	ErrNotAdmitted = errors.New("peer not admitted")

	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("transport closed")
)
