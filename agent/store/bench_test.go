package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

const (
	benchOps   = 100_000
	benchBatch = 256
)

// benchLog is one origin's log of benchOps dossier captures, signed, made
// once per test binary.
var benchLog = sync.OnceValue(func() []crdt.Signed {
	return dossierLog(benchOps)
})

func dossierLog(n int) []crdt.Signed {
	g := newSigner("benchdev", 7)
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]crdt.Signed, n)
	tb := &testing.B{}
	for i := range out {
		out[i] = g.next(tb, recordID("benchdev", i), crdt.KindCreate, plain(dossier(r, i)), baseWall+int64(i))
	}
	return out
}

// BenchmarkIngest ingests benchOps signed ~1 KB dossier ops of one origin
// into a fresh store, in batches of benchBatch, and reports ops/s. Run it
// beside BenchmarkRawBadgerBatch, the same bytes written straight to badger:
//
//	go test ./agent/store -run '^$' -bench 'Ingest|RawBadger' -benchtime 1x
//
// BenchmarkIngest measures verified durable batched ingest in clear and
// encrypted at rest (the agent's only mode), and encrypted with a larger
// block cache: the cost of encryption is the ratio within one run.
func BenchmarkIngest(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchIngest(b, nil, 0) })
	key := bytes.Repeat([]byte{7}, 32)
	b.Run("encrypted", func(b *testing.B) { benchIngest(b, key, 0) })
	b.Run("encrypted-cache64", func(b *testing.B) { benchIngest(b, key, 64<<20) })
}

func benchIngest(b *testing.B, key []byte, cache int64) {
	log := benchLog()
	g := newSigner("benchdev", 7)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
		o := testOptions(dir)
		o.EncryptionKey = key
		if cache > 0 {
			o.BlockCacheSize = cache
		}
		s, err := Open(o)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.PutCredential(g.origin, g.pub(), nil); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for j := 0; j < len(log); j += benchBatch {
			res, err := s.Ingest(log[j:min(j+benchBatch, len(log))], baseWall)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Refused) > 0 {
				b.Fatalf("refused: %s", refusalsString(res.Refused))
			}
		}
		total += time.Since(start)
		if h := s.Head(g.origin); h.Seq != benchOps {
			b.Fatalf("head %d", h.Seq)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchOps*b.N)/total.Seconds(), "ops/s")
	// Peak memory is measured by TestPeakMemory in a process of its own:
	// here it would count the pre-signed log and the other benchmarks.
}

// BenchmarkRawBadgerBatch writes what ingest writes per op (the envelope
// under its log key, a record of the same size as the store's under its
// record key) in transactions of benchBatch ops with SyncWrites: the
// ceiling BenchmarkIngest is measured against. "tuned" uses the store's
// options, "defaults" badger's own.
func BenchmarkRawBadgerBatch(b *testing.B) {
	log := benchLog()
	envs := make([][]byte, len(log))
	recs := make([][]byte, len(log))
	for i, sg := range log {
		envs[i], _ = crdt.Marshal(sg)
		o, err := crdt.Open(sg)
		if err != nil {
			b.Fatal(err)
		}
		rec := crdt.NewRecord(o.Op.Record)
		rec.Apply(o.Op, func(crdt.Dot) bool { return false })
		recs[i], _ = crdt.Marshal(rec)
	}
	for _, mode := range []string{"tuned", "defaults"} {
		b.Run(mode, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
				bo := testOptions(dir).badgerOptions(nil)
				if mode == "defaults" {
					bo = badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil)
				}
				db, err := badger.Open(bo)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for j := 0; j < len(log); j += benchBatch {
					txn := db.NewTransaction(true)
					for k := j; k < min(j+benchBatch, len(log)); k++ {
						if err := txn.Set(opKey("benchdev", uint64(k+1)), envs[k]); err != nil {
							b.Fatal(err)
						}
						if err := txn.Set(recordKey(recordID("benchdev", k)), recs[k]); err != nil {
							b.Fatal(err)
						}
					}
					if err := txn.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				total += time.Since(start)
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchOps*b.N)/total.Seconds(), "ops/s")
		})
	}
}

// BenchmarkWrite is the local write path: one op per transaction, each
// durable on return, so it is bound by the fsync.
func BenchmarkWrite(b *testing.B) {
	s, _ := openTest(b, nil)
	key := testKey(3)
	r := rand.New(rand.NewPCG(3, 3))
	vals := make([]map[string]string, 256)
	for i := range vals {
		vals[i] = dossier(r, i)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.Write("me", key, recordID("me", i), crdt.KindCreate, vals[i%len(vals)], baseWall+int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkPutChunks writes 256 MB of 64 KiB chunks into a fresh encrypted
// store, one commit per chunk and in batches, and reports MB/s: the store's
// own ceiling for an attachment transfer.
//
//	go test ./agent/store -run '^$' -bench PutChunks -benchtime 1x
func BenchmarkPutChunks(b *testing.B) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, batch := range []int{1, 8, 32, 64} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			const n = 4096 // 256 MiB
			chunks := make([]ChunkData, n)
			for i := range chunks {
				h, data := randomChunk(uint64(i), 64<<10)
				chunks[i] = ChunkData{Hash: h, Data: data}
			}
			for i := 0; i < b.N; i++ {
				s, _ := openTest(b, func(o *Options) { o.EncryptionKey = key })
				t := time.Now()
				for j := 0; j < n; j += batch {
					if _, err := s.PutChunks(chunks[j:min(j+batch, n)]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*64<<10)/1e6/time.Since(t).Seconds(), "MB/s")
			}
		})
	}
}
