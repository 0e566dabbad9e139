// Package wire owns the sync protocol's messages and their framing on a
// stream: what two devices say to each other, encoded as deterministic CBOR in
// length-prefixed frames. It does no I/O scheduling of its own and knows
// nothing of stores or sessions; see docs/protocol.md for the protocol.
//
// Wire types are kept apart from domain types: a message is decoded and
// checked here, then converted by the caller.
package wire
