package export

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Each table is written by one statement whose rows come in as one array per
// column (unnest): one round trip per table whatever the batch size, and SQL
// that PostgreSQL, CockroachDB and YugabyteDB all run. BenchmarkExport
// compares it with a pgx.Batch of one INSERT per row and with COPY into a
// temporary table; see docs/postgres.md for the figures.

const insertOps = `INSERT INTO fieldsync_ops (origin, seq, record_id, at, signed)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::bytea[])
ON CONFLICT (origin, seq) DO NOTHING`

// upsertRecords replaces a row only with a state at least as new. An equal
// version with identical content is skipped, so a record exported by every
// hub of a province is written once, not once per hub. origin and created_by
// never change once known (the create op's author): a state that does not
// know them yet keeps the stored ones.
const upsertRecords = `INSERT INTO fieldsync_records AS r (id, fields, conflicts, origin, created_by, updated_at, version)
SELECT t.id, t.fields::jsonb, t.conflicts::jsonb, t.origin, t.created_by, t.updated_at, t.version
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bigint[])
	AS t(id, fields, conflicts, origin, created_by, updated_at, version)
ON CONFLICT (id) DO UPDATE SET
	fields = excluded.fields,
	conflicts = excluded.conflicts,
	origin = COALESCE(excluded.origin, r.origin),
	created_by = COALESCE(excluded.created_by, r.created_by),
	updated_at = excluded.updated_at,
	version = excluded.version,
	exported_at = now()
WHERE excluded.version > r.version
	OR (excluded.version = r.version AND (
		excluded.fields IS DISTINCT FROM r.fields OR
		excluded.conflicts IS DISTINCT FROM r.conflicts OR
		excluded.updated_at IS DISTINCT FROM r.updated_at OR
		(excluded.origin IS NOT NULL AND excluded.origin IS DISTINCT FROM r.origin) OR
		(excluded.created_by IS NOT NULL AND excluded.created_by IS DISTINCT FROM r.created_by)))`

// Export writes one batch in one transaction: the ops (an op already stored
// is left as it is) and the records (a row is replaced only by a state whose
// Version is at least the stored one). It returns nil only after the
// transaction committed; on any error nothing of the batch is written,
// except when the connection broke during COMMIT, where the outcome is
// unknown and exporting the batch again is safe. Export retries a batch the
// server aborted for a serialization failure or a deadlock (Config.Retries).
//
// Errors wrapping ErrInvalid are permanent: the batch itself cannot be
// stored. Export does not retain ops or records after it returns.
func (e *Exporter) Export(ctx context.Context, ops []Op, records []Record) error {
	if e.closed() {
		return ErrClosed
	}
	if len(ops) == 0 && len(records) == 0 {
		return nil
	}
	b, err := prepare(ops, records)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := e.write(ctx, b)
		if err == nil {
			return nil
		}
		if attempt >= e.retries || !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("export %d ops, %d records: %w", len(b.opOrigin), len(b.recID), err)
		}
		e.log.Warn("postgres export aborted by the server, retrying", "attempt", attempt+1, "err", err)
		// A short pause lets the competing transaction finish; longer
		// back-off is the hub's, which retries the whole batch later.
		select {
		case <-ctx.Done():
			return fmt.Errorf("export: %w", ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
}

func (e *Exporter) write(ctx context.Context, b *batch) error {
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if len(b.opOrigin) > 0 {
			if _, err := tx.Exec(ctx, insertOps, b.opOrigin, b.opSeq, b.opRecord, b.opAt, b.opSigned); err != nil {
				return fmt.Errorf("insert ops: %w", err)
			}
		}
		if e.afterOps != nil {
			e.afterOps(ctx)
		}
		if len(b.recID) > 0 {
			if _, err := tx.Exec(ctx, upsertRecords, b.recID, b.recFields, b.recConflicts,
				b.recOrigin, b.recCreatedBy, b.recUpdated, b.recVersion); err != nil {
				return fmt.Errorf("upsert records: %w", err)
			}
		}
		return nil
	})
}

// retryable tells whether the server aborted the transaction for a
// concurrency reason a new attempt may not meet.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "40001" || pe.Code == "40P01" // serialization_failure, deadlock_detected
}

// batch is a batch as column arrays, deduplicated and sorted by key. Sorting
// makes every hub lock rows in the same order, so two hubs exporting
// overlapping batches wait for each other instead of deadlocking.
type batch struct {
	opOrigin []string
	opSeq    []int64
	opRecord []string
	opAt     []pgtype.Timestamptz
	opSigned [][]byte

	recID        []string
	recFields    []string
	recConflicts []string
	recOrigin    []pgtype.Text
	recCreatedBy []pgtype.Text
	recUpdated   []pgtype.Timestamptz
	recVersion   []int64
}

// prepare checks and converts a batch. Within it, an op repeated keeps its
// first copy and a record repeated keeps its highest Version (the later one
// on a tie): one statement cannot update a row twice.
func prepare(ops []Op, records []Record) (*batch, error) {
	b := &batch{}

	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int {
		return cmp.Or(cmp.Compare(ops[i].Origin, ops[j].Origin), cmp.Compare(ops[i].Seq, ops[j].Seq))
	})
	for n, i := range idx {
		op := &ops[i]
		if n > 0 {
			prev := &ops[idx[n-1]]
			if prev.Origin == op.Origin && prev.Seq == op.Seq {
				continue
			}
		}
		if err := checkOp(op); err != nil {
			return nil, err
		}
		b.opOrigin = append(b.opOrigin, op.Origin)
		b.opSeq = append(b.opSeq, int64(op.Seq))
		b.opRecord = append(b.opRecord, op.Record)
		b.opAt = append(b.opAt, timestamptz(op.At))
		b.opSigned = append(b.opSigned, op.Signed)
	}

	idx = idx[:0]
	for i := range records {
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(i, j int) int {
		return cmp.Or(cmp.Compare(records[i].ID, records[j].ID), cmp.Compare(records[i].Version, records[j].Version))
	})
	var buf bytes.Buffer
	for n, i := range idx {
		if n+1 < len(idx) && records[idx[n+1]].ID == records[i].ID {
			continue // a later copy of this record is at least as new
		}
		r := &records[i]
		if err := checkRecord(r); err != nil {
			return nil, err
		}
		fields, err := encodeJSON(&buf, r.Fields, len(r.Fields) == 0)
		if err != nil {
			return nil, fmt.Errorf("%w: record %q fields: %w", ErrInvalid, r.ID, err)
		}
		conflicts, err := encodeJSON(&buf, r.Conflicts, len(r.Conflicts) == 0)
		if err != nil {
			return nil, fmt.Errorf("%w: record %q conflicts: %w", ErrInvalid, r.ID, err)
		}
		b.recID = append(b.recID, r.ID)
		b.recFields = append(b.recFields, fields)
		b.recConflicts = append(b.recConflicts, conflicts)
		b.recOrigin = append(b.recOrigin, nullText(r.Origin))
		b.recCreatedBy = append(b.recCreatedBy, nullText(r.CreatedBy))
		b.recUpdated = append(b.recUpdated, timestamptz(r.UpdatedAt))
		b.recVersion = append(b.recVersion, int64(r.Version))
	}
	return b, nil
}

func checkOp(op *Op) error {
	switch {
	case op.Origin == "":
		return fmt.Errorf("%w: op with an empty origin", ErrInvalid)
	case op.Seq > math.MaxInt64:
		return fmt.Errorf("%w: op %s/%d: seq beyond bigint", ErrInvalid, op.Origin, op.Seq)
	case op.Record == "":
		return fmt.Errorf("%w: op %s/%d: empty record id", ErrInvalid, op.Origin, op.Seq)
	}
	if err := checkTexts(op.Origin, op.Record); err != nil {
		return fmt.Errorf("%w: op %q/%d: %w", ErrInvalid, op.Origin, op.Seq, err)
	}
	return nil
}

func checkRecord(r *Record) error {
	if r.ID == "" {
		return fmt.Errorf("%w: record with an empty id", ErrInvalid)
	}
	if r.Version > math.MaxInt64 {
		return fmt.Errorf("%w: record %q: version beyond bigint", ErrInvalid, r.ID)
	}
	if err := checkTexts(r.ID, r.Origin, r.CreatedBy); err != nil {
		return fmt.Errorf("%w: record %q: %w", ErrInvalid, r.ID, err)
	}
	for k, v := range r.Fields {
		if err := checkTexts(k, v); err != nil {
			return fmt.Errorf("%w: record %q field %q: %w", ErrInvalid, r.ID, k, err)
		}
	}
	for k, vs := range r.Conflicts {
		if err := checkTexts(k); err != nil {
			return fmt.Errorf("%w: record %q conflict %q: %w", ErrInvalid, r.ID, k, err)
		}
		for _, v := range vs {
			if err := checkTexts(v.Value, v.Device, v.DeviceID, v.Op); err != nil {
				return fmt.Errorf("%w: record %q conflict %q: %w", ErrInvalid, r.ID, k, err)
			}
		}
	}
	return nil
}

// checkTexts refuses what PostgreSQL text and jsonb cannot hold (a NUL byte)
// and what encoding/json would silently change (invalid UTF-8 becomes
// U+FFFD): the database must hold the values byte for byte or not at all.
func checkTexts(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("text %.40q is not valid UTF-8", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return fmt.Errorf("text %.40q holds a NUL byte", s)
			}
		}
	}
	return nil
}

// encodeJSON encodes v for a jsonb column; empty encodes as {} (the columns
// are NOT NULL and a reader should not have to tell null from {}).
func encodeJSON(buf *bytes.Buffer, v any, empty bool) (string, error) {
	if empty {
		return "{}", nil
	}
	buf.Reset()
	enc := json.NewEncoder(buf)
	// jsonb stores characters, not escapes: <, > and & need no escaping.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

func timestamptz(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

func nullText(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}
