package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// Forks. A device restored from an old backup, or one identity copied to
// two laptops, writes two different ops under one (origin, seq): its log
// forks. Every replica must end up holding the same log of that origin, so
// the store resolves a fork by a rule that depends only on the two ops at
// the fork point (see Wins), keeps the evidence, and moves the losing
// branch it holds out of the log, rebuilding the records it touched. The
// device that forked writes the payloads of its own orphaned ops again on
// the tip of the winning chain (Resign), so no acknowledged dossier of
// either branch is lost.
//
//	F/<origin>/<seq 8B>          CBOR forkValue: the two ops at the fork
//	                             point, the winner first (the evidence)
//	y/<origin>/<seq 8B><hash>    CBOR orphanValue: an op moved out of the
//	                             log because its branch lost; for this
//	                             device's own origin, whether (and as which
//	                             seq) it was written again
const (
	prefixFork   = "F/"
	prefixOrphan = "y/"
)

// ErrNotFork: two ops offered as fork evidence that are not two different,
// validly signed ops of one origin with the same seq and the same previous
// op.
var ErrNotFork = errors.New("not evidence of a fork")

// ErrForked: an op of the losing branch of a fork (see Wins), refused.
var ErrForked = errors.New("op of the losing branch of a forked log")

// Fork is the evidence that an origin's log forked at Seq: two different
// ops, both signed by the origin, both continuing the same op Seq-1.
type Fork struct {
	Origin string
	Seq    uint64
	Winner crdt.Signed
	Loser  crdt.Signed
}

type forkValue struct {
	Winner crdt.Signed `cbor:"1,keyasint"`
	Loser  crdt.Signed `cbor:"2,keyasint"`
}

type orphanValue struct {
	Op crdt.Signed `cbor:"1,keyasint"`
	// Resigned is the seq this device's own orphaned op was written again
	// as (0: not yet). Always 0 for other origins.
	Resigned uint64 `cbor:"2,keyasint,omitempty"`
}

func forkKey(origin string, seq uint64) []byte {
	return binary8(prefixFork+origin+"/", seq)
}

func orphanPrefix(origin string) []byte { return []byte(prefixOrphan + origin + "/") }

func orphanKey(o crdt.Opened) []byte {
	return append(binary8(prefixOrphan+o.Op.Origin+"/", o.Op.Seq), o.Hash[:]...)
}

func binary8(prefix string, seq uint64) []byte { return append([]byte(prefix), u64(seq)...) }

// Wins reports whether a beats b at a fork point: the op with the earlier
// hybrid logical time wins, and the lower hash between two of the same
// time. The rule reads nothing but the two ops, so every replica picks the
// same branch without talking to the others; and a laptop restored from an
// old backup writes after the chain its peers already hold, so that chain,
// which is usually the longer one and may already be at the hub, wins.
func Wins(a, b crdt.Opened) bool {
	if c := a.Op.Time.Compare(b.Op.Time); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.Hash[:], b.Hash[:]) < 0
}

// checkFork verifies two ops as fork evidence against the origin's stored
// key and returns them ordered winner first. Called under s.wmu.
func (s *Store) checkFork(a, b crdt.Signed) (Fork, crdt.Opened, crdt.Opened, error) {
	oa, err := crdt.Open(a)
	if err != nil {
		return Fork{}, crdt.Opened{}, crdt.Opened{}, fmt.Errorf("%w: %w", ErrNotFork, err)
	}
	ob, err := crdt.Open(b)
	if err != nil {
		return Fork{}, crdt.Opened{}, crdt.Opened{}, fmt.Errorf("%w: %w", ErrNotFork, err)
	}
	if oa.Op.Origin != ob.Op.Origin || oa.Op.Seq != ob.Op.Seq || oa.Hash == ob.Hash || !bytes.Equal(oa.Op.Prev, ob.Op.Prev) {
		return Fork{}, crdt.Opened{}, crdt.Opened{}, ErrNotFork
	}
	pub, ok := s.pubs[oa.Op.Origin]
	if !ok {
		return Fork{}, crdt.Opened{}, crdt.Opened{}, fmt.Errorf("%w: %s", ErrUnknownOrigin, oa.Op.Origin)
	}
	if !ed25519.Verify(pub, a.Body, a.Sig) || !ed25519.Verify(pub, b.Body, b.Sig) {
		return Fork{}, crdt.Opened{}, crdt.Opened{}, fmt.Errorf("%w: %w", ErrNotFork, crdt.ErrSignature)
	}
	if !Wins(oa, ob) {
		oa, ob = ob, oa
	}
	return Fork{Origin: oa.Op.Origin, Seq: oa.Op.Seq, Winner: oa.Signed, Loser: ob.Signed}, oa, ob, nil
}

// keepFork stores the evidence unless held already; it reports whether it
// is new. Called under s.wmu.
func (s *Store) keepFork(f Fork) (bool, error) {
	val, err := crdt.Marshal(forkValue{Winner: f.Winner, Loser: f.Loser})
	if err != nil {
		return false, err
	}
	fresh := false
	err = s.update(func(txn *badger.Txn) error {
		if _, found, err := get(txn, forkKey(f.Origin, f.Seq)); err != nil || found {
			return err
		}
		fresh = true
		return txn.Set(forkKey(f.Origin, f.Seq), val)
	})
	return fresh, err
}

// ForkResult says what TakeFork did.
type ForkResult struct {
	Fork Fork
	// New: the evidence was not held before.
	New bool
	// Rewound: this store held the losing branch and moved it out of the
	// log; its head of the origin is now Seq-1 and peers must be told.
	Rewound bool
}

// TakeFork checks two ops a peer offers as evidence of a fork (ErrNotFork,
// ErrUnknownOrigin), keeps the evidence, and when the store's log of that
// origin holds the loser at that seq, moves the losing branch out of the
// log (see the package's fork notes). Durable on return.
func (s *Store) TakeFork(a, b crdt.Signed) (ForkResult, error) {
	if err := s.enter(); err != nil {
		return ForkResult{}, err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return ForkResult{}, fmt.Errorf("take fork: %w", err)
	}
	f, _, loser, err := s.checkFork(a, b)
	if err != nil {
		return ForkResult{}, err
	}
	res := ForkResult{Fork: f}
	if res.New, err = s.keepFork(f); err != nil {
		return res, fmt.Errorf("take fork: %w", err)
	}
	if s.quarantine != nil && f.Origin != s.self && s.quarantine(f.Origin) {
		return res, nil
	}
	if s.heads[f.Origin].Seq < f.Seq {
		return res, nil
	}
	held, err := s.opHash(f.Origin, f.Seq)
	if err != nil {
		return res, fmt.Errorf("take fork: %w", err)
	}
	if held != loser.Hash {
		return res, nil
	}
	if err := s.rewind(f.Origin, f.Seq); err != nil {
		return res, fmt.Errorf("take fork: %w", err)
	}
	res.Rewound = true
	return res, nil
}

// opHash returns the hash of the op origin/seq in the log.
func (s *Store) opHash(origin string, seq uint64) ([crdt.HashSize]byte, error) {
	var h [crdt.HashSize]byte
	err := s.db.View(func(txn *badger.Txn) error {
		o, err := readOp(txn, origin, seq)
		h = o.Hash
		return err
	})
	return h, err
}

// readOp reads and decodes the op origin/seq of the log.
func readOp(txn *badger.Txn, origin string, seq uint64) (crdt.Opened, error) {
	b, found, err := get(txn, opKey(origin, seq))
	if err != nil {
		return crdt.Opened{}, err
	}
	if !found {
		return crdt.Opened{}, fmt.Errorf("log of %s: op %d missing", origin, seq)
	}
	var sg crdt.Signed
	if err := crdt.Unmarshal(b, &sg); err != nil {
		return crdt.Opened{}, fmt.Errorf("log of %s: op %d: %w", origin, seq, err)
	}
	return crdt.Open(sg)
}

// Forks returns the fork evidence held, by origin and seq.
func (s *Store) Forks() ([]Fork, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []Fork
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixFork, true, func(k, v []byte) error {
			rest := k[len(prefixFork):]
			if len(rest) < 9 || rest[len(rest)-9] != '/' {
				return fmt.Errorf("fork %q: bad key", k)
			}
			seq, _ := readU64(rest[len(rest)-8:])
			var fv forkValue
			if err := crdt.Unmarshal(v, &fv); err != nil {
				return fmt.Errorf("fork %q: %w", k, err)
			}
			out = append(out, Fork{Origin: string(rest[:len(rest)-9]), Seq: seq, Winner: fv.Winner, Loser: fv.Loser})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read forks: %w", err)
	}
	return out, nil
}

// OrphanCount returns how many ops of origin were moved out of the log as
// a losing branch, and how many of those (this device's own) still wait to
// be written again.
func (s *Store) OrphanCount(origin string) (orphans, pending int, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, err
	}
	defer s.leave()
	err = s.db.View(func(txn *badger.Txn) error {
		return scan(txn, string(orphanPrefix(origin)), true, func(k, v []byte) error {
			var ov orphanValue
			if err := crdt.Unmarshal(v, &ov); err != nil {
				return fmt.Errorf("orphan %q: %w", k, err)
			}
			orphans++
			if ov.Resigned == 0 && origin == s.Self() {
				pending++
			}
			return nil
		})
	})
	return orphans, pending, err
}

// rewindChunk bounds the ops one rewind transaction moves, so a long losing
// branch never makes a transaction badger refuses as too big.
const rewindChunk = 256

// rewind moves origin's ops from seq from to the head out of the log (to
// y/), newest first in chunks, each chunk one transaction that leaves a
// consistent store: the head one below the chunk, and every record the
// chunk touched rebuilt from the ops that remain. Called under s.wmu.
func (s *Store) rewind(origin string, from uint64) error {
	for {
		head := s.heads[origin].Seq
		if head < from {
			return nil
		}
		lo := max(from, head-min(head, rewindChunk)+1)
		if err := s.rewindRange(origin, lo, head); err != nil {
			return err
		}
	}
}

func (s *Store) rewindRange(origin string, lo, hi uint64) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	touched := map[string]bool{}
	var dropCreates []uint64
	for seq := lo; seq <= hi; seq++ {
		o, err := readOp(txn, origin, seq)
		if err != nil {
			return err
		}
		val, err := crdt.Marshal(orphanValue{Op: o.Signed})
		if err != nil {
			return err
		}
		es := []entry{
			{key: orphanKey(o), val: val},
			{key: opKey(origin, seq), del: true},
			{key: historyKey(o.Op.Record, origin, seq), del: true},
		}
		if o.Op.Kind == crdt.KindCreate {
			dropCreates = append(dropCreates, seq)
			es = append(es, entry{key: createKey(origin, seq), del: true})
			if origin == s.self {
				es = append(es, entry{key: ownKey(seq), del: true})
			}
		}
		if err := setAll(txn, es); err != nil {
			return err
		}
		touched[o.Op.Record] = true
	}
	var head crdt.Head
	if lo > 1 {
		prev, err := readOp(txn, origin, lo-1)
		if err != nil {
			return err
		}
		head = crdt.Head{Seq: lo - 1, Hash: prev.Hash}
		if err := txn.Set(headKey(origin), encodeHead(head)); err != nil {
			return err
		}
	} else if err := txn.Delete(headKey(origin)); err != nil {
		return err
	}
	records := s.records
	ids := make([]string, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		existed, exists, err := s.rebuildRecord(txn, id, origin, lo)
		if err != nil {
			return fmt.Errorf("rebuild record %s: %w", id, err)
		}
		switch {
		case existed && !exists:
			records--
		case !existed && exists:
			records++
		}
	}
	if err := txn.Set([]byte(keyRecords), u64(records)); err != nil {
		return err
	}
	peers := map[string]uint64{}
	if origin == s.self {
		// A peer's note of this device's own log is about the branch that
		// is gone.
		for p, seq := range s.peers {
			if seq > head.Seq {
				peers[p] = head.Seq
				if err := txn.Set(peerKey(p), u64(head.Seq)); err != nil {
					return err
				}
			}
		}
	}
	if err := s.commit(txn); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if head.Seq == 0 {
		delete(s.heads, origin)
	} else {
		s.heads[origin] = head
	}
	s.records = records
	s.creates[origin] = slices.DeleteFunc(s.creates[origin], func(seq uint64) bool { return seq >= lo })
	if origin == s.self {
		s.ownCreates = slices.DeleteFunc(s.ownCreates, func(seq uint64) bool { return seq >= lo })
		for p, seq := range peers {
			s.peers[p] = seq
		}
		s.maxPeer = 0
		for _, seq := range s.peers {
			s.maxPeer = max(s.maxPeer, seq)
		}
	}
	return nil
}

// rebuildRecord recomputes record id from the ops of its history that stay
// in the log (every op but origin's from seq from on), in (origin, seq)
// order: crdt.Record.Apply commutes across origins when each origin's ops
// come in seq order, and "delivered" is what this replay applied so far, so
// a value a remaining op superseded stays superseded. It rewrites the
// record, its conflict mark and its duplicate index keys, and deletes the
// record when no op of it remains.
func (s *Store) rebuildRecord(txn *badger.Txn, id, origin string, from uint64) (existed, exists bool, err error) {
	old, err := readRecord(txn, id)
	if err != nil {
		return false, false, err
	}
	existed = old != nil
	var dots []crdt.Dot
	prefix := prefixHistory + id + "/"
	if err := scan(txn, prefix, false, func(k, _ []byte) error {
		rest := k[len(prefix):]
		if len(rest) < 10 || rest[len(rest)-9] != '/' {
			return fmt.Errorf("history %q: bad key", k)
		}
		seq, _ := readU64(rest[len(rest)-8:])
		o := string(rest[:len(rest)-9])
		if o == origin && seq >= from {
			return nil
		}
		dots = append(dots, crdt.Dot{Origin: o, Seq: seq})
		return nil
	}); err != nil {
		return false, false, err
	}
	slices.SortFunc(dots, crdt.Dot.Compare)
	rec := crdt.NewRecord(id)
	applied := map[crdt.Dot]bool{}
	for _, d := range dots {
		o, err := readOp(txn, d.Origin, d.Seq)
		if err != nil {
			return false, false, err
		}
		rec.Apply(o.Op, func(x crdt.Dot) bool { return applied[x] })
		applied[d] = true
	}
	exists = len(dots) > 0
	var before, after []string
	if s.indexKeys != nil {
		if old != nil {
			before = s.indexKeys(old)
		}
		if exists {
			after = s.indexKeys(rec)
		}
	}
	for _, k := range before {
		if !slices.Contains(after, k) {
			if err := txn.Delete(indexKey(k, id)); err != nil {
				return false, false, err
			}
		}
	}
	for _, k := range after {
		if !slices.Contains(before, k) {
			if err := txn.Set(indexKey(k, id), []byte{}); err != nil {
				return false, false, err
			}
		}
	}
	if !exists {
		if err := txn.Delete(conflictKey(id)); err != nil {
			return false, false, err
		}
		return existed, false, txn.Delete(recordKey(id))
	}
	val, err := encodeRecord(rec)
	if err != nil {
		return false, false, err
	}
	if err := txn.Set(recordKey(id), val); err != nil {
		return false, false, err
	}
	if hasConflict(rec) {
		return existed, true, txn.Set(conflictKey(id), []byte{})
	}
	return existed, true, txn.Delete(conflictKey(id))
}

// Resign writes again, as new ops of origin (this device's own) on the tip
// of its log, the payloads of its own ops that a lost fork moved out of the
// log and that were not written again yet: the same record, kind, field
// values and time. A seen dot naming one of those orphaned ops is renamed
// to the op that replaces it, so an edit still supersedes exactly what it
// superseded. Each op is committed with the note that it was written
// again, so a crash neither loses nor repeats one. It returns the ops
// written.
func (s *Store) Resign(origin string, key ed25519.PrivateKey) ([]crdt.Opened, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return nil, fmt.Errorf("resign: %w", err)
	}
	if origin != s.self {
		return nil, fmt.Errorf("resign: %w: %s", ErrNotSelf, origin)
	}
	if pub, ok := s.pubs[origin]; ok && !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("resign: %w", ErrWrongKey)
	}
	type orphan struct {
		key []byte
		val orphanValue
		op  crdt.Opened
	}
	var pending []orphan
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, string(orphanPrefix(origin)), true, func(k, v []byte) error {
			var ov orphanValue
			if err := crdt.Unmarshal(v, &ov); err != nil {
				return fmt.Errorf("orphan %q: %w", k, err)
			}
			if ov.Resigned != 0 {
				return nil
			}
			o, err := crdt.Open(ov.Op)
			if err != nil {
				return fmt.Errorf("orphan %q: %w", k, err)
			}
			pending = append(pending, orphan{key: bytes.Clone(k), val: ov, op: o})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("resign: %w", err)
	}
	// Keys order orphans by seq, as they were written.
	renamed := map[uint64]uint64{}
	var out []crdt.Opened
	for _, p := range pending {
		w := s.newWriter()
		old := p.op.Op
		fields := make(map[string]crdt.FieldWrite, len(old.Fields))
		for name, fw := range old.Fields {
			seen := make([]crdt.Dot, 0, len(fw.Seen))
			for _, d := range fw.Seen {
				if n, ok := renamed[d.Seq]; ok && d.Origin == origin {
					d.Seq = n
				}
				seen = append(seen, d)
			}
			if len(seen) == 0 {
				seen = nil
			}
			fields[name] = crdt.FieldWrite{Value: fw.Value, Seen: seen}
		}
		head := w.head(origin)
		op := &crdt.Op{Origin: origin, Seq: head.Seq + 1, Time: old.Time, Record: old.Record, Kind: old.Kind, Fields: fields}
		if op.Seq > 1 {
			op.Prev = head.Hash[:]
		}
		signed, err := crdt.Sign(op, key)
		if err == nil {
			var o crdt.Opened
			if o, err = crdt.Open(signed); err == nil {
				if err = w.apply(o, w.clock); err == nil {
					p.val.Resigned = op.Seq
					var val []byte
					if val, err = crdt.Marshal(p.val); err == nil {
						if err = w.stage([]entry{{key: p.key, val: val}}); err == nil {
							err = w.finish()
						}
					}
				}
				if err == nil {
					renamed[old.Seq] = op.Seq
					out = append(out, o)
				}
			}
		}
		w.txn.Discard()
		if err != nil {
			return out, fmt.Errorf("resign %s seq %d: %w", origin, old.Seq, err)
		}
	}
	return out, nil
}

// checkForkInBatch looks for a fork among the ops of a batch that the log
// already holds (seq at most the head): when the last of them differs from
// the op the log holds at its seq, the two branches part somewhere among
// them. At the first op that differs, both ops naming the same previous op,
// the evidence is kept (res.Forks) and the rule decides: when the incoming
// op wins, the store's own branch is moved out of the log (res.Rewound) and
// the incoming ops from there on are returned to be applied as the log's
// continuation; when it loses, they are refused with ErrForked. When even
// the first differing op names another previous op, the fork lies below the
// batch: res.Probes asks the caller to find it with the sender. It costs one
// read per origin and batch that carries duplicates, and a read per
// duplicate only when there is a fork. Called under s.wmu.
func (s *Store) checkForkInBatch(w *writer, origin string, ops []crdt.Opened, res *IngestResult) ([]crdt.Opened, error) {
	head := w.head(origin)
	last := -1
	for i, o := range ops {
		if o.Op.Seq <= head.Seq {
			last = i
		}
	}
	if last < 0 {
		if len(ops) > 0 && ops[0].Op.Seq == head.Seq+1 && head.Seq > 0 && !bytes.Equal(ops[0].Op.Prev, head.Hash[:]) {
			res.Probes = append(res.Probes, crdt.Dot{Origin: origin, Seq: head.Seq})
		}
		return ops, nil
	}
	own, err := readOp(w.txn, origin, ops[last].Op.Seq)
	if err != nil {
		return nil, err
	}
	if own.Hash == ops[last].Hash {
		return ops, nil
	}
	at := last
	for i := 0; i < last; i++ {
		if ops[i].Op.Seq > head.Seq {
			continue
		}
		o, err := readOp(w.txn, origin, ops[i].Op.Seq)
		if err != nil {
			return nil, err
		}
		if o.Hash != ops[i].Hash {
			at, own = i, o
			break
		}
	}
	res.Duplicates += at
	refuse := func(err error) ([]crdt.Opened, error) {
		res.Refused = append(res.Refused, Refusal{Origin: origin, Seq: ops[at].Op.Seq, Count: len(ops) - at, Err: err})
		return nil, nil
	}
	if !bytes.Equal(ops[at].Op.Prev, own.Op.Prev) {
		res.Probes = append(res.Probes, crdt.Dot{Origin: origin, Seq: ops[at].Op.Seq})
		return refuse(fmt.Errorf("%w: %s forked below seq %d", ErrForked, origin, ops[at].Op.Seq))
	}
	f, winner, _, err := s.checkFork(ops[at].Signed, own.Signed)
	if err != nil {
		return refuse(err)
	}
	fresh, err := s.keepFork(f)
	if err != nil {
		return nil, err
	}
	if fresh {
		res.Forks = append(res.Forks, f)
	}
	if winner.Hash != ops[at].Hash {
		return refuse(fmt.Errorf("%w: %s seq %d", ErrForked, origin, f.Seq))
	}
	if err := w.commit(); err != nil {
		return nil, err
	}
	if err := s.rewind(origin, f.Seq); err != nil {
		return nil, err
	}
	w.reset()
	res.Rewound = append(res.Rewound, origin)
	return ops[at:], nil
}
