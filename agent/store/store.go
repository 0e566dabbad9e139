package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// Store is one device's durable state. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	dir string
	log *slog.Logger

	// wmu serialises writers (Write, Ingest, PutCredential, NotePeerHolds,
	// adopting self). Fields marked "writers" are only touched under it.
	wmu    sync.Mutex
	clock  crdt.Clock                   // writers
	pubs   map[string]ed25519.PublicKey // writers: origin -> public key
	failed error                        // writers: set when a commit failed

	// syncFailed is raised by the badger logger when badger reports a
	// failed sync it does not return (see slogBadger).
	syncFailed atomic.Bool
	commits    atomic.Uint64 // successful commits, for tests
	trim       trimmer       // keeps mapped value-log pages from piling up
	verifyAll  bool          // Options.VerifyEverySignature
	maySettle  func(string) bool
	indexKeys  func(*crdt.Record) []string
	// attachmentFile is Options.AttachmentFile.
	attachmentFile func(field, value string) ([32]byte, bool)
	// claims: chunks used by uploads in flight (chunks.go). Writers.
	claims map[[32]byte]*claim
	// packs holds the bytes of chunks received from peers (packs.go).
	packs *packs

	// mu guards the state readers see. It changes only after a commit has
	// succeeded, and only under wmu.
	mu         sync.RWMutex
	heads      map[string]crdt.Head
	records    uint64
	self       string
	ownCreates []uint64            // seqs of this device's KindCreate ops, ascending
	creates    map[string][]uint64 // origin -> seqs of its KindCreate ops, ascending
	peers      map[string]uint64
	maxPeer    uint64 // max over peers

	// Lifecycle: every call enters and leaves, so Close can wait for calls
	// in flight before closing badger under them.
	life   sync.Mutex
	idle   *sync.Cond
	users  int
	closed bool

	// Quarantine (quarantine.go).
	quarantine  func(origin string) bool // Options.Quarantine
	qheads      map[string]crdt.Head     // writers
	quarantined atomic.Int64
}

// Open opens (creating if needed) the store in opts.Dir and loads its heads,
// clock, counters and credentials into memory.
func Open(opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	s := &Store{
		dir:        opts.Dir,
		log:        opts.logger(),
		verifyAll:  opts.VerifyEverySignature,
		maySettle:  opts.MaySettle,
		indexKeys:  opts.IndexKeys,
		claims:     map[[32]byte]*claim{},
		quarantine: opts.Quarantine,
		trim:       trimmer{dir: opts.Dir},
		pubs:       map[string]ed25519.PublicKey{},
		heads:      map[string]crdt.Head{},
		peers:      map[string]uint64{},
		creates:    map[string][]uint64{},
	}
	if err := prepareFiles(opts); err != nil {
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	db, err := badger.Open(opts.badgerOptions(&s.syncFailed))
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		// The passphrase was checked by then (the vault's AEAD), so a
		// mismatch can also mean a damaged key registry.
		return nil, fmt.Errorf("open store %s: %w (or its KEYREGISTRY file is damaged)", opts.Dir, ErrKeyMismatch)
	}
	if err != nil && (strings.Contains(err.Error(), "data key") || strings.Contains(err.Error(), "key registry")) {
		// badger's messages about its key registry do not name the file.
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, &DamageError{File: filepath.Join(opts.Dir, badger.KeyRegistryFileName), Offset: -1, Reason: err.Error()})
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	s.db = db
	s.idle = sync.NewCond(&s.life)
	if s.packs, err = openPacks(filepath.Join(opts.Dir, packDirName), opts.EncryptionKey); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	if err := s.loadQuarantine(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	s.attachmentFile = opts.AttachmentFile
	if _, err := s.sweepUploads(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: remove chunks of cut uploads: %w", opts.Dir, err)
	}
	if opts.Self != "" {
		if err := s.adoptSelf(opts.Self); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
		}
	}
	// Loading scanned the indexes through badger's maps: hand those pages
	// back before the agent starts work.
	pageOutMapped(s.dir, true)
	return s, nil
}

// load reads the state kept in memory. It also checks each head against the
// op it names, so a store damaged below badger (a key without its value, a
// lost write) is refused at open rather than extended into a forked log.
func (s *Store) load() error {
	err := s.db.View(func(txn *badger.Txn) error {
		version, found, err := getU64(txn, []byte(keyVersion))
		if err != nil {
			return err
		}
		if found && version != layoutVersion {
			return fmt.Errorf("layout version %d, this build reads %d", version, layoutVersion)
		}
		if b, found, err := get(txn, []byte(keyClock)); err != nil {
			return err
		} else if found {
			if err := crdt.Unmarshal(b, &s.clock.Last); err != nil {
				return fmt.Errorf("read clock: %w", err)
			}
		}
		if b, found, err := get(txn, []byte(keySelf)); err != nil {
			return err
		} else if found {
			s.self = string(b)
		}
		if s.records, _, err = getU64(txn, []byte(keyRecords)); err != nil {
			return err
		}
		if err := scan(txn, prefixHead, true, func(k, v []byte) error {
			var h crdt.Head
			if err := crdt.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("read head %q: %w", k, err)
			}
			s.heads[string(k[len(prefixHead):])] = h
			return nil
		}); err != nil {
			return err
		}
		for origin, h := range s.heads {
			if err := checkHead(txn, origin, h); err != nil {
				return err
			}
		}
		if err := scan(txn, prefixCred, true, func(k, v []byte) error {
			var c credValue
			if err := crdt.Unmarshal(v, &c); err != nil || len(c.Pub) != ed25519.PublicKeySize {
				return fmt.Errorf("read credential %q: bad value", k)
			}
			s.pubs[string(k[len(prefixCred):])] = ed25519.PublicKey(c.Pub)
			return nil
		}); err != nil {
			return err
		}
		if err := scan(txn, prefixPeer, true, func(k, v []byte) error {
			seq, ok := readU64(v)
			if !ok {
				return fmt.Errorf("read peer %q: bad value", k)
			}
			s.peers[string(k[len(prefixPeer):])] = seq
			s.maxPeer = max(s.maxPeer, seq)
			return nil
		}); err != nil {
			return err
		}
		if err := scan(txn, prefixCreate, false, func(k, _ []byte) error {
			rest := k[len(prefixCreate):]
			if len(rest) < 9 || rest[len(rest)-9] != '/' {
				return fmt.Errorf("read create %q: bad key", k)
			}
			seq, _ := readU64(rest[len(rest)-8:])
			origin := string(rest[:len(rest)-9])
			s.creates[origin] = append(s.creates[origin], seq)
			return nil
		}); err != nil {
			return err
		}
		return scan(txn, prefixOwn, false, func(k, _ []byte) error {
			seq, ok := readU64(k[len(prefixOwn):])
			if !ok {
				return fmt.Errorf("read own create %q: bad key", k)
			}
			s.ownCreates = append(s.ownCreates, seq)
			return nil
		})
	})
	if err != nil {
		return err
	}
	if _, found, err := s.viewU64(keyVersion); err != nil {
		return err
	} else if !found {
		return s.update(func(txn *badger.Txn) error {
			return txn.Set([]byte(keyVersion), u64(layoutVersion))
		})
	}
	return nil
}

// errSyncFailed stands for a value log sync failure badger only logged.
var errSyncFailed = errors.New("badger reported a failed sync")

// commit commits txn, and fails the store if the commit fails: after a failed
// commit (or a sync badger only logged) the disk may or may not hold the
// writes, so nothing more is written until the store is reopened and its
// state read back from disk. Called under s.wmu (or before Open returns).
func (s *Store) commit(txn *badger.Txn) error {
	err := txn.Commit()
	if err == nil && s.syncFailed.Load() {
		err = errSyncFailed
	}
	if err != nil {
		s.failed = err
		return fmt.Errorf("commit: %w", err)
	}
	s.commits.Add(1)
	return nil
}

// update runs fn in a write transaction and commits it with s.commit.
func (s *Store) update(fn func(*badger.Txn) error) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	return s.commit(txn)
}

// checkFailed returns ErrFailed if an earlier commit failed.
func (s *Store) checkFailed() error {
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}

// checkHead verifies that the op a head names is stored, hashes to the head,
// and is the last op of its origin's log.
func checkHead(txn *badger.Txn, origin string, h crdt.Head) error {
	if h.Seq == 0 {
		return nil
	}
	b, found, err := get(txn, opKey(origin, h.Seq))
	if err != nil {
		return err
	}
	var sg crdt.Signed
	if !found || crdt.Unmarshal(b, &sg) != nil || crdt.Hash(sg.Body) != h.Hash {
		return fmt.Errorf("head of %s names op %d, which is missing or damaged", origin, h.Seq)
	}
	// The record that op wrote went into the value log in the same
	// transaction (or later, rewritten by a later op): a value log cut
	// short loses it even where the op itself is small enough to live in
	// the tree (found by truncating the newest file of a stopped store).
	if op, err := crdt.DecodeOp(sg.Body); err == nil {
		if _, _, err := get(txn, recordKey(op.Record)); err != nil {
			return fmt.Errorf("record %s, written by op %d of %s, does not read back: %w", op.Record, h.Seq, origin, err)
		}
	}
	if _, found, err := get(txn, opKey(origin, h.Seq+1)); err != nil {
		return err
	} else if found {
		return fmt.Errorf("log of %s extends past its head %d", origin, h.Seq)
	}
	return nil
}

// Close waits for calls in flight and closes the store. Later calls return
// ErrClosed; closing twice returns nil.
func (s *Store) Close() error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.closed = true
	for s.users > 0 {
		s.idle.Wait()
	}
	s.life.Unlock()
	perr := s.packs.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.dir, err)
	}
	if perr != nil {
		return fmt.Errorf("close store %s: %w", s.dir, perr)
	}
	if s.failed == nil {
		// Without it the next open checks less, nothing more: not fatal.
		if err := writeCloseRecord(s.dir); err != nil {
			s.log.Warn("could not record the clean close of the store", "dir", s.dir, "err", err)
		}
	}
	return nil
}

func (s *Store) enter() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.users++
	return nil
}

func (s *Store) leave() {
	s.life.Lock()
	s.users--
	if s.users == 0 {
		s.idle.Broadcast()
	}
	s.life.Unlock()
}

// VersionVector returns a copy of the version vector: every origin's head
// seq. It reads memory only.
func (s *Store) VersionVector() crdt.VersionVector {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vv := make(crdt.VersionVector, len(s.heads))
	for o, h := range s.heads {
		vv[o] = h.Seq
	}
	return vv
}

// Heads returns a copy of every origin's head, read at one instant. It
// reads memory only.
func (s *Store) Heads() map[string]crdt.Head {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]crdt.Head, len(s.heads))
	for o, h := range s.heads {
		out[o] = h
	}
	return out
}

// Head returns the end of origin's log as stored (zero if none).
func (s *Store) Head(origin string) crdt.Head {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.heads[origin]
}

// Self returns this device's own origin id ("" until known).
func (s *Store) Self() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.self
}

// RecordCount returns the number of records held. It reads memory only.
func (s *Store) RecordCount() (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int(s.records), nil
}

// ReadOps returns origin's ops from seq from on, in order, as stored
// envelopes: at most maxOps of them and, after the first, no more than about
// maxBytes of bodies and signatures (a limit ≤ 0 means none). It returns no
// ops when from is past the head. The returned slices are owned by the
// caller.
func (s *Store) ReadOps(origin string, from uint64, maxOps, maxBytes int) ([]crdt.Signed, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if !validOrigin(origin) {
		return nil, nil
	}
	from = max(from, 1)
	var out []crdt.Signed
	total := 0
	err := s.db.View(func(txn *badger.Txn) error {
		itOpts := badger.DefaultIteratorOptions
		itOpts.Prefix = opPrefix(origin)
		if maxOps > 0 {
			itOpts.PrefetchSize = min(maxOps, itOpts.PrefetchSize)
		}
		it := txn.NewIterator(itOpts)
		defer it.Close()
		want := from
		for it.Seek(opKey(origin, from)); it.Valid(); it.Next() {
			if maxOps > 0 && len(out) >= maxOps {
				return nil
			}
			item := it.Item()
			seq, ok := readU64(item.Key()[len(itOpts.Prefix):])
			if !ok || seq != want {
				return fmt.Errorf("log of %s: key %q where op %d should be", origin, item.Key(), want)
			}
			var sg crdt.Signed
			if err := item.Value(func(v []byte) error { return crdt.Unmarshal(v, &sg) }); err != nil {
				return fmt.Errorf("log of %s: op %d: %w", origin, seq, err)
			}
			size := len(sg.Body) + len(sg.Sig)
			s.trim.note(size)
			if maxBytes > 0 && len(out) > 0 && total+size > maxBytes {
				return nil
			}
			out = append(out, sg)
			total += size
			want++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ops: %w", err)
	}
	return out, nil
}

// Record returns the stored state of record id, or ErrNotFound.
func (s *Store) Record(id string) (*crdt.Record, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var rec *crdt.Record
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = readRecord(txn, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read record %s: %w", id, err)
	}
	if rec == nil {
		return nil, fmt.Errorf("read record %s: %w", id, ErrNotFound)
	}
	return rec, nil
}

// Records calls fn for each record in id order, starting after the id after
// ("" starts at the first), until fn returns false. fn runs inside a read
// transaction: it sees one consistent snapshot and may call the store's read
// methods, but should not block for long.
func (s *Store) Records(after string, fn func(*crdt.Record) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.db.View(func(txn *badger.Txn) error {
		itOpts := badger.DefaultIteratorOptions
		itOpts.Prefix = []byte(prefixRecord)
		itOpts.PrefetchSize = 16
		it := txn.NewIterator(itOpts)
		defer it.Close()
		start := recordKey(after)
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			if after != "" && bytes.Equal(item.Key(), start) {
				continue
			}
			rec := new(crdt.Record)
			if err := item.Value(func(v []byte) error { return crdt.Unmarshal(v, rec) }); err != nil {
				return fmt.Errorf("record %q: %w", item.Key(), err)
			}
			if !fn(rec) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	return nil
}

// ConflictedRecords calls fn with the id of each record that has a field in
// conflict, in id order, until fn returns false. It reads the conflict index,
// not the records.
func (s *Store) ConflictedRecords(fn func(id string) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.db.View(func(txn *badger.Txn) error {
		var stop = errors.New("stop")
		err := scan(txn, prefixConflict, false, func(k, _ []byte) error {
			if !fn(string(k[len(prefixConflict):])) {
				return stop
			}
			return nil
		})
		if err == stop {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("read conflicts: %w", err)
	}
	return nil
}

// AtRisk counts the records this device created (its own KindCreate ops):
// held are those whose create op some peer is known to hold (seq at most the
// highest NotePeerHolds), atRisk the rest, which exist only on this laptop.
// self must be the store's self origin; for any other origin both are 0.
func (s *Store) AtRisk(self string) (held, atRisk int, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, err
	}
	defer s.leave()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if self == "" || self != s.self {
		return 0, 0, nil
	}
	held = sort.Search(len(s.ownCreates), func(i int) bool { return s.ownCreates[i] > s.maxPeer })
	return held, len(s.ownCreates) - held, nil
}

// PeerHolds returns the highest seq of this device's own log that peer is
// known to hold (0 if none noted).
func (s *Store) PeerHolds(peer string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.peers[peer]
}

// readRecord returns the record stored under id, or nil if there is none.
func readRecord(txn *badger.Txn, id string) (*crdt.Record, error) {
	b, found, err := get(txn, recordKey(id))
	if err != nil || !found {
		return nil, err
	}
	rec := new(crdt.Record)
	if err := crdt.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return rec, nil
}

// get returns a copy of the value under key; found is false if there is none.
func get(txn *badger.Txn, key []byte) (val []byte, found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	val, err = item.ValueCopy(nil)
	return val, err == nil, err
}

func getU64(txn *badger.Txn, key []byte) (uint64, bool, error) {
	b, found, err := get(txn, key)
	if err != nil || !found {
		return 0, false, err
	}
	v, ok := readU64(b)
	if !ok {
		return 0, false, fmt.Errorf("key %q: bad counter", key)
	}
	return v, true, nil
}

func (s *Store) viewU64(key string) (v uint64, found bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		v, found, err = getU64(txn, []byte(key))
		return err
	})
	return v, found, err
}

// scan calls fn for every key under prefix, in order. The slices are only
// valid during the call. With values false, only keys are read.
func scan(txn *badger.Txn, prefix string, values bool, fn func(k, v []byte) error) error {
	itOpts := badger.DefaultIteratorOptions
	itOpts.Prefix = []byte(prefix)
	itOpts.PrefetchValues = values
	it := txn.NewIterator(itOpts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var v []byte
		if values {
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		if err := fn(item.Key(), v); err != nil {
			return err
		}
	}
	return nil
}

// insertSorted adds seq to an ascending slice (own seqs normally arrive in
// order, so this is an append).
func insertSorted(s []uint64, seq uint64) []uint64 {
	if n := len(s); n == 0 || s[n-1] < seq {
		return append(s, seq)
	}
	i, found := slices.BinarySearch(s, seq)
	if found {
		return s
	}
	return slices.Insert(s, i, seq)
}
