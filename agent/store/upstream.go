package store

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// Delivery counts one origin's dossiers: created by it (captured) and, of
// those, covered by a hub's receipt (delivered upstream).
type Delivery struct {
	Captured  int
	Delivered int
}

// Deliveries counts, per origin holding records here, the dossiers it
// created and how many of them are covered by receipts (origin -> highest
// seq stored upstream). Cheap: in-memory create indexes, no scan.
func (s *Store) Deliveries(receipts crdt.VersionVector) map[string]Delivery {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]Delivery, len(s.creates))
	for origin, seqs := range s.creates {
		upTo := receipts[origin]
		delivered := sort.Search(len(seqs), func(i int) bool { return seqs[i] > upTo })
		out[origin] = Delivery{Captured: len(seqs), Delivered: delivered}
	}
	return out
}

// Undelivered calls fn with the id of every record whose creating op is not
// covered by receipts, by origin then seq; fn returns false to stop.
func (s *Store) Undelivered(receipts crdt.VersionVector, fn func(id string) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.mu.RLock()
	origins := make([]string, 0, len(s.creates))
	for o := range s.creates {
		origins = append(origins, o)
	}
	s.mu.RUnlock()
	sort.Strings(origins)
	return s.db.View(func(txn *badger.Txn) error {
		for _, origin := range origins {
			itOpts := badger.DefaultIteratorOptions
			itOpts.Prefix = []byte(prefixCreate + origin + "/")
			it := txn.NewIterator(itOpts)
			for it.Seek(createKey(origin, receipts[origin]+1)); it.Valid(); it.Next() {
				var id string
				if err := it.Item().Value(func(v []byte) error { id = string(v); return nil }); err != nil {
					it.Close()
					return err
				}
				if !fn(id) {
					it.Close()
					return nil
				}
			}
			it.Close()
		}
		return nil
	})
}

// PutReceipt keeps the latest receipt of a hub (the caller has verified it
// and checked it is newer than the one held).
func (s *Store) PutReceipt(hub string, raw []byte) error {
	if !validOrigin(hub) {
		return fmt.Errorf("put receipt: %w: %q", ErrBadOrigin, hub)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.update(func(txn *badger.Txn) error { return txn.Set(receiptKey(hub), raw) })
}

// Receipts returns the latest receipt held of every hub (hub -> raw bytes).
func (s *Store) Receipts() (map[string][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := map[string][]byte{}
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixReceipt, true, func(k, v []byte) error {
			out[string(k[len(prefixReceipt):])] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// SetExported records how far each origin's log has been exported to
// PostgreSQL (committed there). Only raises entries.
func (s *Store) SetExported(vv crdt.VersionVector) error { return s.raiseVV(keyExported, vv) }

// Exported returns how far each origin's log has been exported.
func (s *Store) Exported() (crdt.VersionVector, error) { return s.readVV(keyExported) }

// raiseVV merges vv into the version vector kept under key.
func (s *Store) raiseVV(key string, vv crdt.VersionVector) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.update(func(txn *badger.Txn) error {
		cur, err := vvIn(txn, key)
		if err != nil {
			return err
		}
		cur.Merge(vv)
		b, err := crdt.Marshal(cur)
		if err != nil {
			return err
		}
		return txn.Set([]byte(key), b)
	})
}

func (s *Store) readVV(key string) (crdt.VersionVector, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out crdt.VersionVector
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = vvIn(txn, key)
		return err
	})
	return out, err
}

func vvIn(txn *badger.Txn, key string) (crdt.VersionVector, error) {
	vv := crdt.VersionVector{}
	item, err := txn.Get([]byte(key))
	if err == badger.ErrKeyNotFound {
		return vv, nil
	}
	if err != nil {
		return nil, err
	}
	err = item.Value(func(v []byte) error { return crdt.Unmarshal(v, &vv) })
	return vv, err
}

// History returns every op that touched a record, as stored envelopes, in
// the order of their (hybrid logical clock) time, except that an op always
// comes after every op whose value it saw and after its origin's earlier
// ops. Times alone do not respect causality: a received time more than
// MaxClockDriftMillis ahead of the receiver's wall clock does not move its
// clock, so a correction made on a laptop with a right clock can carry an
// earlier time than the value it corrected, written on a laptop whose clock
// ran days ahead.
func (s *Store) History(id string) ([]crdt.Opened, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []crdt.Opened
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := prefixHistory + id + "/"
		return scan(txn, prefix, false, func(k, _ []byte) error {
			rest := k[len(prefix):]
			if len(rest) < 9 {
				return fmt.Errorf("history key %q: bad", k)
			}
			origin := string(rest[:len(rest)-9])
			seq, _ := readU64(rest[len(rest)-8:])
			item, err := txn.Get(opKey(origin, seq))
			if err != nil {
				return fmt.Errorf("history of %s: op %s:%d: %w", id, origin, seq, err)
			}
			var sg crdt.Signed
			if err := item.Value(func(v []byte) error { return crdt.Unmarshal(v, &sg) }); err != nil {
				return err
			}
			o, err := crdt.Open(sg)
			if err != nil {
				return err
			}
			out = append(out, o)
			return nil
		})
	})
	return causalOrder(out), err
}

// causalOrder sorts one record's ops by (time, dot), then takes them in the
// first order that puts each op after the ops it names as seen and after its
// origin's earlier ops (Kahn's algorithm, the earliest ready op first).
func causalOrder(ops []crdt.Opened) []crdt.Opened {
	sort.SliceStable(ops, func(i, j int) bool {
		if c := ops[i].Op.Time.Compare(ops[j].Op.Time); c != 0 {
			return c < 0
		}
		return ops[i].Op.Dot().Compare(ops[j].Op.Dot()) < 0
	})
	at := make(map[crdt.Dot]int, len(ops))
	for i, o := range ops {
		at[o.Op.Dot()] = i
	}
	waits := make([]int, len(ops)) // ops that must come first, not yet taken
	after := make([][]int, len(ops))
	for i, o := range ops {
		before := map[int]bool{}
		for _, fw := range o.Op.Fields {
			for _, d := range fw.Seen {
				if j, ok := at[d]; ok && j != i {
					before[j] = true
				}
			}
		}
		for j, p := range ops {
			if p.Op.Origin == o.Op.Origin && p.Op.Seq < o.Op.Seq {
				before[j] = true
			}
		}
		waits[i] = len(before)
		for j := range before {
			after[j] = append(after[j], i)
		}
	}
	out := make([]crdt.Opened, 0, len(ops))
	taken := make([]bool, len(ops))
	for len(out) < len(ops) {
		next := -1
		for i := range ops {
			if !taken[i] && waits[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 { // cannot happen: what an op saw was written before it
			for i := range ops {
				if !taken[i] {
					next = i
					break
				}
			}
		}
		taken[next] = true
		out = append(out, ops[next])
		for _, k := range after[next] {
			waits[k]--
		}
	}
	return out
}

// IndexGroups calls fn for every index key shared by two or more records,
// with their ids in order; fn returns false to stop. One scan of the index.
func (s *Store) IndexGroups(fn func(key string, ids []string) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(func(txn *badger.Txn) error {
		var cur string
		var ids []string
		stop := false
		flush := func() {
			if len(ids) > 1 && !stop {
				stop = !fn(cur, ids)
			}
		}
		err := scan(txn, prefixIndex, false, func(k, _ []byte) error {
			rest := string(k[len(prefixIndex):])
			i := strings.LastIndexByte(rest, 0)
			if i < 0 {
				return fmt.Errorf("index key %q: bad", k)
			}
			key, id := rest[:i], rest[i+1:]
			if key != cur {
				flush()
				cur, ids = key, nil
			}
			ids = append(ids, id)
			return nil
		})
		flush()
		return err
	})
}
