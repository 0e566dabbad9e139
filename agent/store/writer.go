package store

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// entry is one staged write: a set, or a delete when del is true.
type entry struct {
	key, val []byte
	del      bool
}

// cached is a record as it stands after the ops staged so far.
type cached struct {
	rec        *crdt.Record
	exists     bool // stored, or created by a staged op
	conflicted bool // x/c/<id> is set
}

// writer applies ops to badger in as few transactions as fit, each op whole.
// It keeps the state the staged ops produce (heads, counters, clock, records)
// apart from the store's published state, and publishes it only when a
// commit succeeds. Used under s.wmu only.
type writer struct {
	s      *Store
	txn    *badger.Txn
	staged []entry // every write in txn, in order, whole ops only

	heads      map[string]crdt.Head // heads changed by staged ops
	records    uint64
	clock      crdt.Clock
	ownCreates []uint64   // own creates staged, not yet published
	creates    []crdt.Dot // creates of every origin staged, not yet published
	cache      map[string]*cached

	applied   []crdt.Dot // ops staged, in order
	published int        // applied[:published] are committed
}

func (s *Store) newWriter() *writer {
	s.mu.RLock()
	records := s.records
	s.mu.RUnlock()
	return &writer{
		s:       s,
		txn:     s.db.NewTransaction(true),
		heads:   map[string]crdt.Head{},
		records: records,
		clock:   s.clock,
		cache:   map[string]*cached{},
	}
}

// head is origin's head as of the staged ops.
func (w *writer) head(origin string) crdt.Head {
	if h, ok := w.heads[origin]; ok {
		return h
	}
	return w.s.heads[origin] // writers may read s.heads without s.mu
}

// delivered reports whether an op is applied, counting staged ops: the
// version vector as it stands before the op being applied.
func (w *writer) delivered(d crdt.Dot) bool {
	return d.Seq != 0 && d.Seq <= w.head(d.Origin).Seq
}

// record returns the cached state of record id, reading it if needed.
func (w *writer) record(id string) (*cached, error) {
	if c, ok := w.cache[id]; ok {
		return c, nil
	}
	rec, err := readRecord(w.txn, id)
	if err != nil {
		return nil, fmt.Errorf("read record %s: %w", id, err)
	}
	c := &cached{rec: rec, exists: rec != nil}
	if rec == nil {
		c.rec = crdt.NewRecord(id)
	} else {
		c.conflicted = hasConflict(rec)
	}
	w.cache[id] = c
	return c, nil
}

// apply stages one verified op, the next of its origin, with every write it
// makes. clock is the writer's clock advanced for this op. It returns
// ErrTooLarge if the op's writes do not fit in a transaction even alone; the
// op is then not applied and the writer is unchanged.
func (w *writer) apply(o crdt.Opened, clock crdt.Clock) error {
	op := o.Op
	c, err := w.record(op.Record)
	if err != nil {
		return err
	}
	// Apply to a copy: if the op cannot be staged, the cache must not
	// hold its effect.
	rec := cloneRecord(c.rec)
	rec.Apply(op, w.delivered)
	conflicted := hasConflict(rec)

	env := encodeEnvelope(o.Signed)
	recVal, err := encodeRecord(rec)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	head := crdt.Head{Seq: op.Seq, Hash: o.Hash}
	headVal := encodeHead(head)
	es := make([]entry, 0, 7)
	es = append(es,
		entry{key: opKey(op.Origin, op.Seq), val: env},
		entry{key: recordKey(op.Record), val: recVal},
		entry{key: headKey(op.Origin), val: headVal},
	)
	switch {
	case conflicted && !c.conflicted:
		es = append(es, entry{key: conflictKey(op.Record), val: []byte{}})
	case !conflicted && c.conflicted:
		es = append(es, entry{key: conflictKey(op.Record), del: true})
	}
	records := w.records
	if !c.exists {
		records++
		es = append(es, entry{key: []byte(keyRecords), val: u64(records)})
	}
	// History: every op that touched the record.
	es = append(es, entry{key: historyKey(op.Record, op.Origin, op.Seq), val: []byte{}})
	// Indexes for possible duplicates: keys of the state before and after.
	if w.s.indexKeys != nil {
		var before []string
		if c.exists {
			before = w.s.indexKeys(c.rec)
		}
		after := w.s.indexKeys(rec)
		for _, k := range before {
			if !slices.Contains(after, k) {
				es = append(es, entry{key: indexKey(k, op.Record), del: true})
			}
		}
		for _, k := range after {
			if !slices.Contains(before, k) {
				es = append(es, entry{key: indexKey(k, op.Record), val: []byte{}})
			}
		}
	}
	// Attachment manifests, by the SHA-256 of their file, for serving the
	// bytes (GET /v1/attachments/{sha256}) and for the transfer to find a
	// manifest's chunks.
	if w.s.attachmentFile != nil {
		for name, fw := range op.Fields {
			if file, ok := w.s.attachmentFile(name, fw.Value); ok {
				es = append(es, entry{key: manifestKey(file), val: []byte(fw.Value)},
					entry{key: manifestTimeKey(file), val: u64(uint64(op.Time.Wall))},
					entry{key: manifestOpKey(op.Origin, op.Seq, name), val: manifestOpValue(file, op.Time.Wall, op.Record)})
			}
		}
	}
	own := op.Kind == crdt.KindCreate && op.Origin == w.s.self
	if own {
		es = append(es, entry{key: ownKey(op.Seq), val: []byte(op.Record)})
	}
	if op.Kind == crdt.KindCreate {
		es = append(es, entry{key: createKey(op.Origin, op.Seq), val: []byte(op.Record)})
	}
	if clock.Last != w.clock.Last {
		b, err := crdt.Marshal(clock.Last)
		if err != nil {
			return fmt.Errorf("encode clock: %w", err)
		}
		es = append(es, entry{key: []byte(keyClock), val: b})
	}
	if err := w.stage(es); err != nil {
		return err
	}
	w.cache[op.Record] = &cached{rec: rec, exists: true, conflicted: conflicted}
	w.heads[op.Origin] = head
	w.records = records
	w.clock = clock
	if own {
		w.ownCreates = append(w.ownCreates, op.Seq)
	}
	if op.Kind == crdt.KindCreate {
		w.creates = append(w.creates, op.Dot())
	}
	w.applied = append(w.applied, op.Dot())
	return nil
}

// stage adds one op's writes to the transaction. When badger says the
// transaction is full, the transaction (which may hold part of this op) is
// dropped, the whole ops staged before are committed in a fresh one, and the
// op is staged again in the next.
func (w *writer) stage(es []entry) error {
	err := setAll(w.txn, es)
	if err == nil {
		w.staged = append(w.staged, es...)
		return nil
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	w.txn.Discard()
	w.txn = w.s.db.NewTransaction(true)
	if len(w.staged) == 0 {
		return ErrTooLarge
	}
	// The same writes fitted before, in the same order: they fit again.
	if err := setAll(w.txn, w.staged); err != nil {
		return err
	}
	if err := w.commit(); err != nil {
		return err
	}
	if err := setAll(w.txn, es); err != nil {
		if errors.Is(err, badger.ErrTxnTooBig) {
			w.txn.Discard()
			w.txn = w.s.db.NewTransaction(true)
			return ErrTooLarge
		}
		return err
	}
	w.staged = append(w.staged, es...)
	return nil
}

func setAll(txn *badger.Txn, es []entry) error {
	for _, e := range es {
		var err error
		if e.del {
			err = txn.Delete(e.key)
		} else {
			err = txn.Set(e.key, e.val)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// commit makes the staged ops durable, publishes the state they produce and
// starts a new transaction. A failed commit marks the store failed.
func (w *writer) commit() error {
	if len(w.staged) == 0 {
		return nil
	}
	if err := w.s.commit(w.txn); err != nil {
		w.txn = w.s.db.NewTransaction(true)
		return err
	}
	s := w.s
	s.mu.Lock()
	for o, h := range w.heads {
		s.heads[o] = h
	}
	s.records = w.records
	for _, seq := range w.ownCreates {
		s.ownCreates = insertSorted(s.ownCreates, seq)
	}
	for _, d := range w.creates {
		s.creates[d.Origin] = insertSorted(s.creates[d.Origin], d.Seq)
	}
	s.mu.Unlock()
	w.creates = w.creates[:0]
	s.clock = w.clock
	w.ownCreates = w.ownCreates[:0]
	w.staged = w.staged[:0]
	w.published = len(w.applied)
	w.txn = s.db.NewTransaction(true)
	return nil
}

// reset forgets the state staged ops produced, after a commit, when the
// store's state changed under the writer (a fork's rewind).
func (w *writer) reset() {
	// A transaction reads the snapshot it began with: start one that sees
	// what changed.
	w.txn.Discard()
	w.txn = w.s.db.NewTransaction(true)
	w.cache = map[string]*cached{}
	w.heads = map[string]crdt.Head{}
	w.records = w.s.records
}

// finish commits what is staged and releases the transaction.
func (w *writer) finish() error {
	err := w.commit()
	w.txn.Discard()
	return err
}

func hasConflict(r *crdt.Record) bool {
	for _, reg := range r.Fields {
		if reg.Conflict() {
			return true
		}
	}
	return false
}

// cloneRecord copies r deeply enough for Apply not to touch the original:
// Apply replaces registers in the map and edits their slices in place.
func cloneRecord(r *crdt.Record) *crdt.Record {
	c := *r
	c.Fields = make(map[string]crdt.Register, len(r.Fields))
	for name, reg := range r.Fields {
		c.Fields[name] = crdt.Register{Live: slices.Clone(reg.Live), Pending: slices.Clone(reg.Pending)}
	}
	return &c
}
