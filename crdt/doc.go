// Package crdt owns fieldsync's data types and their merge rules: operations
// (ops) written by one device, records as maps of multi-value registers,
// version vectors, the hybrid logical clock, and the hash chain that links an
// origin's ops so one signature can authenticate a whole run of them.
//
// The package is pure: no disk, no network, no goroutines, no wall clock and
// no randomness. Time comes in as an argument. Everything here is tested by
// properties: any set of ops delivered to any number of replicas, in any order
// and with duplicates, leaves them in identical states.
//
// # Model
//
// A device (an origin) numbers its ops 1, 2, 3, … with no gaps, so a version
// vector (origin → highest contiguous seq) is an exact summary of what a
// replica holds. Each op sets some fields of one record; for every field it
// names the dots (origin, seq) of that field's values it has seen, and so
// supersedes. Values written concurrently (neither saw the other) survive side
// by side as siblings: that is a conflict, which stays until a later write that
// saw all of them replaces them.
//
// Ops are applied per origin in seq order (a replica buffers or refuses gaps),
// but ops of different origins may arrive in any order. A write can therefore
// name a dot that has not arrived yet; the register remembers such a dot as
// superseded-in-advance so that, when it arrives, it does not come back to life.
package crdt
