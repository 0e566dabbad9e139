// Package syncer owns the sync protocol's decisions for one session with one
// peer: what the peer holds, what to send it next, which batches are in flight
// and what an acknowledgement means. It does no I/O and starts no goroutines:
// the caller reads ops from its store, writes and reads frames, and reports
// back (the Ready/Advance style of etcd's raft), so a simulated network can
// drive many sessions deterministically in tests.
//
// A session starts with both sides sending a Hello carrying their version
// vector. From then on each side streams the ops the other lacks in batches,
// at most Window unacknowledged at a time, and pushes new ops as they arrive
// for as long as the session lasts. An acknowledgement is sent only after the
// batch is durable at the receiver; it carries the receiver's heads, so a
// sender learns exactly what landed and resends at most what was not
// acknowledged.
package syncer
