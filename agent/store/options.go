package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/fieldsync/fieldsync/crdt"
)

// Options configure a store. The memory settings are sized for a laptop. An
// agent holding 100,000 dossiers of about 1 KB should stay well under 200 MB
// resident; badger's defaults (64 MB memtables ×5, a 256 MB block cache, all
// values in the LSM tree) peaked near 800 MB, nearly all of it Go heap held by
// compaction's table builders.
//
// The layout chosen: values of ValueThreshold bytes or more (op envelopes and
// records, 1–3 KB each) go to badger's value log, an append-only file, and the
// LSM tree holds only keys, value pointers and small values (heads, counters,
// index entries). Compaction then moves a few dozen bytes per key instead of
// kilobytes, which is what keeps both the heap and the CPU low on a two-core
// laptop. The cost is that rewritten records leave garbage in the value log,
// reclaimed by CollectGarbage.
//
// TestPeakMemory and BenchmarkIngest measure the figures these defaults give.
type Options struct {
	// Dir is the directory badger keeps its files in; created if missing.
	Dir string
	// Logger receives badger's own log lines at Warn and above (its Info and
	// Debug chatter is dropped). Nil means slog.Default().
	Logger *slog.Logger
	// Self is this device's own origin id, when known at Open. It is stored
	// in m/self; a store already holding another self is refused. Empty means
	// the self stored earlier, or the origin of the first Write.
	Self string
	// EncryptionKey, 32 bytes, encrypts every table, value log and
	// key-registry file with AES-256 (badger's encryption at rest; see
	// docs/storage.md for what it does and does not authenticate). Nil
	// leaves the store in clear: only tests of this package and the
	// conversion of an old directory open one.
	EncryptionKey []byte

	// MemTableSize is the size of one memtable, in bytes: 8 MB. With values
	// in the value log an op puts ~5 small entries in the memtable (~500
	// bytes with skiplist overhead), so 8 MB holds ~15,000 ops. One
	// transaction may hold 15% of it (badger's rule): room for ~2,000 ops,
	// well above a 256-op sync batch.
	MemTableSize int64
	// NumMemtables is how many memtables may be in memory at once, the one
	// being written plus those waiting to be flushed: 2, so memtables cost at
	// most ~20 MB of heap; a write waits for a flush rather than grow memory.
	NumMemtables int
	// NumLevelZeroTables is the level-0 table count that triggers compaction
	// into level 1: 3, so reads look into few level-0 tables.
	NumLevelZeroTables int
	// NumLevelZeroTablesStall is the level-0 table count at which writes
	// stall until compaction catches up: 8, so a burst of ingest is not
	// stalled while compaction follows on a two-core laptop.
	NumLevelZeroTablesStall int
	// BaseTableSize is the target size of one SSTable, in bytes: 2 MB
	// (badger's default). Each table being built is held in the heap, up to
	// ~10 at a time per compaction; tables of keys and pointers are small.
	BaseTableSize int64
	// BlockCacheSize is a cache of SSTable blocks, in bytes: 0. Tables are not
	// compressed (they hold keys and pointers, which compress little), so
	// in a plain store blocks are read straight from the memory-mapped files
	// and the OS page cache serves as the cache. An encrypted store must
	// decrypt each block it reads, so it keeps decrypted blocks in a cache
	// of at least EncryptedBlockCacheSize.
	BlockCacheSize int64
	// IndexCacheSize bounds the heap the SSTable indexes and bloom filters
	// may take, in bytes: 8 MB. 0 would keep every table's index in memory
	// unbounded; 100,000 dossiers need well under 1 MB, a hub with millions
	// of ops more.
	IndexCacheSize int64
	// ValueThreshold is the value size, in bytes, from which a value is
	// written to the value log instead of the LSM tree: 512. Op envelopes
	// and records (1–3 KB) go to the value log; heads (~45 bytes), counters,
	// index entries and small update ops stay in the tree.
	ValueThreshold int64
	// ValueLogFileSize is the size of one value log file, in bytes: 64 MB
	// (badger's default is 1 GB). Garbage collection rewrites a whole file at
	// a time, so small files are reclaimed sooner and with less I/O.
	ValueLogFileSize int64
	// NumCompactors is how many compaction goroutines run: 2, the minimum
	// badger accepts above none.
	NumCompactors int

	// VerifyEverySignature makes ingest check every op's signature, not only
	// the last of each run (whose signature vouches for the whole run through
	// the hash chain). A hub sets it: it is the end of every relay path, so it
	// must never keep, export or forward an op whose own signature a relay
	// damaged. It costs one ed25519 verification per op.
	VerifyEverySignature bool

	// MaySettle reports whether an origin may write settling ops (resolving
	// conflicts, merging or separating duplicates): only admin devices and
	// hubs. Ingest refuses a settling op of any other origin, and the rest of
	// that origin's run after it. Nil allows none but this device's own.
	MaySettle func(origin string) bool

	// IndexKeys returns the index keys of a record state (e.g. its personal
	// ID number, its folded name and date of birth): records sharing a key
	// are possible duplicates. Kept in the same transaction as the record.
	// Keys must not contain NUL. Nil keeps no index.
	IndexKeys func(*crdt.Record) []string

	// Quarantine reports whether ops of an origin not yet held are to be
	// kept apart rather than merged (the agent's rule for revoked devices).
	// Ingest then stores them under q/ after checking their chain and
	// signature, and the origin's head, records and indexes do not change.
	// It is called under the store's write lock and must not call the
	// store. Nil quarantines nothing; this device's own origin never is.
	Quarantine func(origin string) bool

	// AttachmentFile reports whether a field write is an attachment
	// manifest, and the SHA-256 of the file it describes (the agent answers
	// with agent/attach). Every op applied indexes those under x/a/, in its
	// own transaction, so the bytes of a file can be found by its hash. It
	// must be pure and fast: it is called for every field of every op. Nil
	// indexes nothing.
	AttachmentFile func(field, value string) (file [32]byte, ok bool)
}

// DefaultOptions returns the options for a store in dir, sized for a laptop.
// EncryptedBlockCacheSize is the block cache an encrypted store uses at
// least: 16 MB, the hot top of the index tables of a campaign's store.
const EncryptedBlockCacheSize = 16 << 20

func DefaultOptions(dir string) Options {
	return Options{
		Dir:                     dir,
		MemTableSize:            8 << 20,
		NumMemtables:            2,
		NumLevelZeroTables:      3,
		NumLevelZeroTablesStall: 8,
		BaseTableSize:           2 << 20,
		BlockCacheSize:          0,
		IndexCacheSize:          8 << 20,
		ValueThreshold:          512,
		ValueLogFileSize:        64 << 20,
		NumCompactors:           2,
	}
}

func (o Options) validate() error {
	switch {
	case o.Dir == "":
		return errors.New("no directory")
	case o.EncryptionKey != nil && len(o.EncryptionKey) != 32:
		return fmt.Errorf("encryption key is %d bytes, want 32", len(o.EncryptionKey))
	case o.Self != "" && !validOrigin(o.Self):
		return fmt.Errorf("self %q: %w", o.Self, ErrBadOrigin)
	case o.MemTableSize < 1<<20:
		return fmt.Errorf("memtable size %d below 1 MB", o.MemTableSize)
	case o.NumMemtables < 1:
		return fmt.Errorf("%d memtables", o.NumMemtables)
	case o.NumLevelZeroTables < 1 || o.NumLevelZeroTablesStall <= o.NumLevelZeroTables:
		return fmt.Errorf("level 0 tables %d, stall %d: need 1 <= tables < stall", o.NumLevelZeroTables, o.NumLevelZeroTablesStall)
	case o.BaseTableSize < 64<<10:
		return fmt.Errorf("base table size %d below 64 KB", o.BaseTableSize)
	case o.BlockCacheSize < 0 || o.IndexCacheSize < 0:
		return fmt.Errorf("cache sizes %d, %d", o.BlockCacheSize, o.IndexCacheSize)
	case o.ValueThreshold < 1 || o.ValueThreshold > (15*o.MemTableSize)/100:
		return fmt.Errorf("value threshold %d: must be 1..15%% of the memtable size", o.ValueThreshold)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return fmt.Errorf("value log file size %d: must be 1 MB..2 GB", o.ValueLogFileSize)
	case o.NumCompactors < 2:
		return fmt.Errorf("%d compactors: badger needs at least 2", o.NumCompactors)
	}
	return nil
}

// badgerOptions maps o onto badger's options. Everything durability depends
// on is set explicitly here rather than left to badger's defaults.
func (o Options) badgerOptions(syncFailed *atomic.Bool) badger.Options {
	return badger.DefaultOptions(o.Dir).
		WithSyncWrites(true). // a commit that returns nil is on disk
		WithLogger(slogBadger{l: o.logger(), syncFailed: syncFailed}).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(o.NumMemtables).
		WithNumLevelZeroTables(o.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(o.NumLevelZeroTablesStall).
		WithBaseTableSize(o.BaseTableSize).
		WithBlockCacheSize(o.blockCacheSize()).
		WithIndexCacheSize(o.IndexCacheSize).
		WithValueThreshold(o.ValueThreshold).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithNumCompactors(o.NumCompactors).
		WithCompression(options.None).
		// Check each value log entry's checksum when it is read, so a torn or
		// damaged value surfaces as an error, never as wrong data.
		WithVerifyValueChecksum(true).
		// Writers are serialised by the store's mutex, so badger's conflict
		// tracking would only cost memory and time.
		WithDetectConflicts(false).
		// Each SSTable block's checksum is verified when it is read from
		// disk (cache misses only). That alone is not enough: a block that
		// fails its check ends badger's iterators and point reads as if its
		// keys did not exist, so a damaged table made heads, dossiers or
		// the whole store vanish without an error (found by flipping bytes
		// of a stopped store, TestE2ECorruptedStoreFile). So every table is
		// also verified whole before badger opens it (verifyTables,
		// integrity.go), since badger's own verification at open panics on
		// the first bad block. Cost: reading the tables (keys, pointers,
		// small values) at every start, about 14 MB and 0.15 s for 100,000
		// dossiers on the development machine.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithMetricsEnabled(false).
		WithNumGoroutines(2).
		WithEncryptionKey(o.EncryptionKey).
		WithEncryptionKeyRotationDuration(keyRotation)
}

// keyRotation: badger makes a new data key (wrapped by EncryptionKey in its
// key registry) every 7 days, bounding how much is encrypted under one key.
const keyRotation = 7 * 24 * time.Hour

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o Options) blockCacheSize() int64 {
	if o.EncryptionKey != nil {
		return max(o.BlockCacheSize, EncryptedBlockCacheSize)
	}
	return o.BlockCacheSize
}

// slogBadger routes badger's logging to slog at Warn and above.
//
// It also watches for one line. badger syncs the value log at the end of a
// write and only logs a failure ("Error while curlf sync"), then reports the
// commit as successful once the memtable's log is synced. A commit whose
// values may not be on disk must not be acknowledged, so the adapter raises
// syncFailed, and the store checks it after every commit (the line is logged
// before the commit returns).
type slogBadger struct {
	l          *slog.Logger
	syncFailed *atomic.Bool
}

func (b slogBadger) Errorf(format string, args ...any) {
	if b.syncFailed != nil && strings.Contains(format, "sync") {
		b.syncFailed.Store(true)
	}
	b.log(slog.LevelError, format, args)
}
func (b slogBadger) Warningf(format string, args ...any) {
	b.log(slog.LevelWarn, format, args)
}
func (slogBadger) Infof(string, ...any)  {}
func (slogBadger) Debugf(string, ...any) {}

func (b slogBadger) log(level slog.Level, format string, args []any) {
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

var _ badger.Logger = slogBadger{}
