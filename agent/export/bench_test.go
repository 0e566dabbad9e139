package export

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchBatch is the hub's batch size: 512 ops and the 512 records they
// create, each about 1 KB.
const benchBatch = 512

// BenchmarkExport measures Export against the real server (fsync on, one
// commit per batch) and reports rows/s (op rows plus record rows) and
// dossiers/s (one op and one record each). The sub-benchmarks compare the
// ways to write a batch that were measured before choosing one:
//
//	unnest  one INSERT … SELECT FROM unnest(arrays) per table (Export's way)
//	batch   a pgx.Batch of one INSERT per row, pipelined in one round trip
//	copy    COPY into temporary tables, then INSERT … SELECT … ON CONFLICT
//
// plus unnest-update (records that exist already, at a higher version) and
// unnest-2hubs (two Exporters writing at once, as two hubs sharing a database).
func BenchmarkExport(b *testing.B) {
	u := freshDB(b)
	for _, bc := range []struct {
		name   string
		write  func(e *Exporter, ctx context.Context, bt *batch) error
		update bool
		hubs   int
	}{
		{name: "unnest", write: (*Exporter).write},
		{name: "batch", write: writeRowBatch},
		{name: "copy", write: writeCopy},
		{name: "unnest-update", write: (*Exporter).write, update: true},
		{name: "unnest-2hubs", write: (*Exporter).write, hubs: 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hubs := max(bc.hubs, 1)
			exps := make([]*Exporter, hubs)
			for i := range exps {
				e, err := Open(context.Background(), Config{URL: u})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(e.Close)
				exps[i] = e
			}
			src := newDossierSource(fmt.Sprintf("%s-%d", bc.name, b.N))
			n := b.N
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, hubs)
			for h := range hubs {
				wg.Go(func() {
					for i := h; i < n; i += hubs {
						// Export's own work: prepare (checks, JSON) and write.
						ops, recs := src.batch(i, benchBatch, bc.update)
						bt, err := prepare(ops, recs)
						if err == nil {
							err = bc.write(exps[h], ctx, bt)
						}
						if err != nil {
							errs[h] = err
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			rows := float64(2 * benchBatch * n)
			b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
			b.ReportMetric(rows/2/elapsed.Seconds(), "dossiers/s")
			b.ReportMetric(0, "ns/op") // per-batch time is in rows/s
		})
	}
}

// dossierSource makes batches of dossiers cheaply: an op of 1 KB of signed
// bytes and a record of about 1 KB of fields each, drawn from a few
// pre-made payloads (so making the data costs the benchmark next to nothing)
// under ids and seqs of their own.
type dossierSource struct {
	origin  string
	payload [][]byte
	fields  []map[string]string
}

func newDossierSource(origin string) *dossierSource {
	rng := rand.New(rand.NewPCG(1, 2))
	s := &dossierSource{origin: origin}
	for range 64 {
		signed := make([]byte, 1024)
		for j := range signed {
			signed[j] = byte(rng.Uint32())
		}
		s.payload = append(s.payload, signed)
		s.fields = append(s.fields, map[string]string{
			"full_name":   "Nguyễn Thị Minh Khai",
			"birth_date":  "1987-03-14",
			"personal_id": fmt.Sprintf("0792%08d", rng.IntN(1e8)),
			"commune":     fmt.Sprintf("Phường %d", rng.IntN(300)),
			"district":    "Quận Bình Thạnh",
			"province":    "Thành phố Hồ Chí Minh",
			"address":     "Số 12, đường Nguyễn Đình Chiểu, khu phố 3",
			"phone":       fmt.Sprintf("09%08d", rng.IntN(1e8)),
			"sex":         "nữ",
			"ethnicity":   "Kinh",
			"religion":    "không",
			"occupation":  "giáo viên tiểu học",
			"father":      "Nguyễn Văn Hùng",
			"mother":      "Trần Thị Lan",
			"note":        strings.Repeat("Ghi chú hồ sơ đăng ký. ", 14),
		})
	}
	return s
}

// batch returns batch number i: n new ops and their n records; with update,
// the records are the same n ids every time, at version i+1.
func (s *dossierSource) batch(i, n int, update bool) ([]Op, []Record) {
	ops := make([]Op, n)
	recs := make([]Record, n)
	for j := range n {
		seq := uint64(i*n + j + 1)
		id := fmt.Sprintf("%s-%08d", s.origin, seq)
		if update {
			id = fmt.Sprintf("upd-%04d", j)
		}
		at := wall.Add(time.Duration(seq) * time.Millisecond)
		ops[j] = Op{Origin: s.origin, Seq: seq, Signed: s.payload[seq%64], Record: id, At: at}
		recs[j] = Record{ID: id, Fields: s.fields[seq%64], Conflicts: map[string][]Value{}, Origin: s.origin,
			CreatedBy: "Máy đội 1", UpdatedAt: at, Version: uint64(i + 1)}
	}
	return ops, recs
}

// writeRowBatch writes a batch as one INSERT per row, queued in a pgx.Batch
// (sent in one round trip, each statement prepared once).
func writeRowBatch(e *Exporter, ctx context.Context, bt *batch) error {
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var q pgx.Batch
		for i := range bt.opOrigin {
			q.Queue(`INSERT INTO fieldsync_ops (origin, seq, record_id, at, signed) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (origin, seq) DO NOTHING`,
				bt.opOrigin[i], bt.opSeq[i], bt.opRecord[i], bt.opAt[i], bt.opSigned[i])
		}
		for i := range bt.recID {
			q.Queue(`INSERT INTO fieldsync_records AS r (id, fields, conflicts, origin, created_by, updated_at, version)
				VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6, $7)
				ON CONFLICT (id) DO UPDATE SET fields = excluded.fields, conflicts = excluded.conflicts,
					origin = COALESCE(excluded.origin, r.origin), created_by = COALESCE(excluded.created_by, r.created_by),
					updated_at = excluded.updated_at, version = excluded.version, exported_at = now()
				WHERE excluded.version >= r.version`,
				bt.recID[i], bt.recFields[i], bt.recConflicts[i], bt.recOrigin[i], bt.recCreatedBy[i], bt.recUpdated[i], bt.recVersion[i])
		}
		return tx.SendBatch(ctx, &q).Close()
	})
}

// writeCopy writes a batch with COPY into temporary tables dropped at
// commit, then one INSERT … SELECT per table. (Temporary tables are
// experimental in CockroachDB, one more reason it is not Export's way.)
func writeCopy(e *Exporter, ctx context.Context, bt *batch) error {
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE tmp_ops (origin text, seq bigint, record_id text, at timestamptz, signed bytea) ON COMMIT DROP;
			CREATE TEMP TABLE tmp_records (id text, fields jsonb, conflicts jsonb, origin text, created_by text, updated_at timestamptz, version bigint) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tmp_ops"}, []string{"origin", "seq", "record_id", "at", "signed"},
			pgx.CopyFromSlice(len(bt.opOrigin), func(i int) ([]any, error) {
				return []any{bt.opOrigin[i], bt.opSeq[i], bt.opRecord[i], bt.opAt[i], bt.opSigned[i]}, nil
			})); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tmp_records"},
			[]string{"id", "fields", "conflicts", "origin", "created_by", "updated_at", "version"},
			pgx.CopyFromSlice(len(bt.recID), func(i int) ([]any, error) {
				return []any{bt.recID[i], bt.recFields[i], bt.recConflicts[i], bt.recOrigin[i], bt.recCreatedBy[i], bt.recUpdated[i], bt.recVersion[i]}, nil
			})); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO fieldsync_ops (origin, seq, record_id, at, signed)
			SELECT origin, seq, record_id, at, signed FROM tmp_ops ON CONFLICT (origin, seq) DO NOTHING`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO fieldsync_records AS r (id, fields, conflicts, origin, created_by, updated_at, version)
			SELECT id, fields, conflicts, origin, created_by, updated_at, version FROM tmp_records
			ON CONFLICT (id) DO UPDATE SET fields = excluded.fields, conflicts = excluded.conflicts,
				origin = COALESCE(excluded.origin, r.origin), created_by = COALESCE(excluded.created_by, r.created_by),
				updated_at = excluded.updated_at, version = excluded.version, exported_at = now()
			WHERE excluded.version >= r.version`)
		return err
	})
}
