// Package export owns the hub's copy of the province's data in PostgreSQL:
// the schema (versioned migrations, embedded), and writing batches of ops and
// merged records into it. It is the only package that imports the PostgreSQL
// driver (pgx).
//
// # Tables
//
// fieldsync_ops holds one row per op, keyed by (origin, seq), with the op's
// signed bytes exactly as the origin made them, for audit. fieldsync_records
// holds one row per record: its merged fields as jsonb, the fields in
// conflict, its origin and a Version, the number of ops the exporting hub had
// applied to it. docs/postgres.md describes every column.
//
// # Contract with the hub
//
// Export writes one batch in one transaction and returns nil only after that
// transaction committed: the hub issues receipts for the batch's ops only
// then. A batch is all or nothing: an error leaves nothing of it in the
// database, so the caller retries it whole. Export is idempotent: an op
// already stored (through another relay, another hub, or a retry after a
// commit whose outcome was lost) is left as it is, and a record row is only
// replaced by a state with a Version at least as high, so hubs writing one
// record at different stages never move it backwards.
//
// # Compatibility
//
// The SQL sticks to what PostgreSQL, CockroachDB and YugabyteDB all accept
// (multi-argument unnest, INSERT … ON CONFLICT … DO UPDATE … WHERE, jsonb,
// bytea), so several hubs can share one distributed database. Serialization
// failures (SQLSTATE 40001, routine on CockroachDB) and deadlocks are
// retried. The advisory lock around migrations is used where the server
// provides it; without it, each migration claims its version row first, so
// two hubs still apply it once.
package export
