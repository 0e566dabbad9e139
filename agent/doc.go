// Package agent is the fieldsync daemon: it builds and wires together the
// device identity, the store, the libp2p transport, LAN membership, the sync
// sessions and the HTTP API, and it is the only package that starts
// long-lived goroutines. None of its subpackages imports it.
//
// Life of an op: a dossier captured through the API becomes an op signed by
// this device and committed durably by the store; the agent then wakes every
// sync session, each of which pushes the op to its peer at once. Ops received
// from a peer are verified and committed the same way, acknowledged to the
// sender only after the commit, and pushed on to every other peer (that is how
// a laptop that never met another still gets its dossiers through one that
// met both).
package agent
