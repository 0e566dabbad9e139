package store

import "errors"

// Errors returned by the store. Storage failures from badger are wrapped with
// context and returned as they are.
var (
	// ErrNotFound: no record with that id (Record, or Write of KindUpdate).
	ErrNotFound = errors.New("record not found")
	// ErrCorrupt: a key or value of the store's own making does not parse.
	ErrCorrupt = errors.New("store entry corrupt")
	// ErrExists: Write of KindCreate for a record id the store already holds.
	ErrExists = errors.New("record already exists")
	// ErrUnknownOrigin: an op's origin has no stored credential, so its
	// signature cannot be checked. Such ops are refused, never stored.
	ErrUnknownOrigin = errors.New("unknown origin")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrKeyMismatch: the store was written under another encryption key,
	// or in clear and opened with a key (or the other way round).
	ErrKeyMismatch = errors.New("the store is encrypted under another key, or not encrypted (kho dữ liệu không khớp khóa mã hóa)")
	// ErrFailed: an earlier commit failed, so what is on disk is not known to
	// match the in-memory heads. The store refuses writes until reopened,
	// which reloads its state from disk.
	ErrFailed = errors.New("store failed on an earlier write")
	// ErrNotSelf: Write was asked to write an op for an origin other than
	// this device's own (the store's self origin). One store holds one
	// device's own log; writing two would fork identities.
	ErrNotSelf = errors.New("origin is not this device")
	// ErrBadOrigin: an origin id the key layout cannot hold (empty, longer
	// than crdt.MaxOriginLen, or containing '/').
	ErrBadOrigin = errors.New("bad origin id")
	// ErrTooLarge: an op whose writes (its envelope plus the record state it
	// produces) do not fit in one badger transaction even alone. It is
	// refused so that one oversized op cannot stall a whole sync.
	ErrTooLarge = errors.New("op too large to store")
)

// ErrWrongKey: a key that does not match the origin: Write's signing key is
// not the public key of the origin's stored credential, or PutCredential
// names another public key than the one already stored for that origin
// (whose log was verified with it).
var ErrWrongKey = errors.New("key does not match origin")

// ErrNotAuthorized: an op settles a conflict or a duplicate but its origin
// may not settle (only admin devices and hubs may).
var ErrNotAuthorized = errors.New("settling op from a device that may not settle")
