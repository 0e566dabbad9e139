// Package store owns the durable state of one device, kept in badger: every
// origin's signed op log, the merged records and their indexes, the version
// vector (one head per origin), the origins' credentials and a few counters
// (records held, the hybrid logical clock, what peers are known to hold of
// this device's own log).
//
// It is the on-disk mirror of [crdt.Replica]'s delivery: ops are applied per
// origin in seq order, duplicates are skipped, and each op's record is merged
// with [crdt.Record.Apply] against the version vector as it stood just before
// that op. Unlike the in-memory replica it keeps no gap buffer: an op that
// does not follow its origin's head is refused, and the sender resends from
// the head later.
//
// # Durability
//
// Every write an op makes (its log entry, the record's new state, the
// conflict index, its origin's head, the counters) goes into one badger
// transaction, so an op is on disk whole or not at all. badger runs with
// SyncWrites: a call that returns nil has made its data durable, and a crash
// or power cut at any instant leaves a store that opens with every op that
// was acknowledged (Open first removes the empty log files a cut can leave,
// which badger alone refuses; see powercut.go). The in-memory copies (heads, clock, counters) change only
// after a commit succeeds; after a failed commit the disk state is unknown,
// so the store refuses further writes until it is reopened (see [ErrFailed]).
//
// # Concurrency
//
// Writes (Write, Ingest, PutCredential, NotePeerHolds) are serialised by one
// mutex. Reads run concurrently with them on badger read transactions and see
// only committed ops; VersionVector and Head read an in-memory copy.
//
// # On disk
//
// The key layout is documented in keys.go. Op envelopes and records, the
// bulk of the data, live in badger's value log and the LSM tree holds keys,
// pointers and small values (see Options for why and for the memory each
// setting costs). Record states replaced by later ops leave garbage in the
// value log, which CollectGarbage reclaims; the agent calls it when idle.
//
// Every value read back from the value log is checked against its checksum;
// a head is checked against the op it names, and that op's record, at Open.
// Before badger opens, Open refuses the files badger would cut or misread
// (a damaged memtable log, value log or MANIFEST that badger would take for
// the torn end of a crash, a damaged table), naming the file in a
// [DamageError], and removes the empty log file a kill while badger created
// it leaves; Close records the files' sizes so that the next Open checks a
// cleanly closed store exactly (integrity.go, closed.go, repair.go).
// Integrity against tampering comes from the ops' signatures, checked at
// Ingest.
package store
