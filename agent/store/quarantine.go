package store

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// Quarantine and the revocation list.
//
//	q/<origin>/<seq 8B>   CBOR crdt.Signed: an op of a quarantined origin,
//	                      verified (chain and signature) but not merged
//	V/qh/<origin>         CBOR crdt.Head: the last op quarantined of origin;
//	                      the quarantine continues the origin's log from its
//	                      head, gapless like the log
//	m/revocation          the newest revocation list installed (opaque bytes)
//	m/revocation.at       8B: when it was installed, unix milliseconds
const (
	prefixQuarantine = "q/"
	prefixQHead      = "V/qh/"
	keyRevocation    = "m/revocation"
	keyRevocationAt  = "m/revocation.at"
)

func quarantineKey(origin string, seq uint64) []byte {
	k := append([]byte(prefixQuarantine+origin), '/')
	return append(k, u64(seq)...)
}

// loadQuarantine reads the quarantine heads and counts the ops held.
func (s *Store) loadQuarantine() error {
	s.qheads = map[string]crdt.Head{}
	return s.db.View(func(txn *badger.Txn) error {
		if err := scan(txn, prefixQHead, true, func(k, v []byte) error {
			var h crdt.Head
			if err := crdt.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("read quarantine head %q: %w", k, err)
			}
			s.qheads[string(k[len(prefixQHead):])] = h
			return nil
		}); err != nil {
			return err
		}
		n := int64(0)
		err := scan(txn, prefixQuarantine, false, func(_, _ []byte) error { n++; return nil })
		s.quarantined.Store(n)
		return err
	})
}

// quarantineOrigin keeps ops of a quarantined origin apart: those that
// continue the quarantine (or, for the first, the origin's head) and verify
// against its key are stored under q/, nothing else changes. Duplicates and
// what does not link or verify are reported in res like any refusal.
// Called under s.wmu; it commits in its own transaction.
func (s *Store) quarantineOrigin(w *writer, origin string, ops []crdt.Opened, res *IngestResult) error {
	head, ok := s.qheads[origin]
	if !ok || head.Seq < w.head(origin).Seq {
		head = w.head(origin)
	}
	prev := head
	var run []crdt.Opened
	rest := 0
	for i, o := range ops {
		if o.Op.Seq <= prev.Seq {
			res.Duplicates++
			continue
		}
		if o.Op.Seq != prev.Seq+1 || (o.Op.Seq > 1 && !bytes.Equal(o.Op.Prev, prev.Hash[:])) {
			rest = len(ops) - i
			res.Refused = append(res.Refused, Refusal{Origin: origin, Seq: o.Op.Seq, Count: rest,
				Err: fmt.Errorf("%w: %s seq %d after %d (quarantine)", crdt.ErrChain, origin, o.Op.Seq, prev.Seq)})
			break
		}
		run = append(run, o)
		prev = crdt.Head{Seq: o.Op.Seq, Hash: o.Hash}
	}
	if len(run) == 0 {
		return nil
	}
	pub, known := s.pubs[origin]
	if !known {
		res.Refused = append(res.Refused, Refusal{Origin: origin, Seq: run[0].Op.Seq, Count: len(run), Err: fmt.Errorf("%w: %s", ErrUnknownOrigin, origin)})
		return nil
	}
	n, verr := crdt.VerifyRun(head, run, pub)
	if s.verifyAll {
		n, verr = verifyEach(run[:n], pub, n, verr)
	}
	if n < len(run) {
		res.Refused = append(res.Refused, Refusal{Origin: origin, Seq: run[n].Op.Seq, Count: len(run) - n, Err: verr})
	}
	if n == 0 {
		return nil
	}
	last := crdt.Head{Seq: run[n-1].Op.Seq, Hash: run[n-1].Hash}
	err := s.update(func(txn *badger.Txn) error {
		for _, o := range run[:n] {
			if err := txn.Set(quarantineKey(origin, o.Op.Seq), encodeEnvelope(o.Signed)); err != nil {
				return err
			}
		}
		return txn.Set([]byte(prefixQHead+origin), encodeHead(last))
	})
	if err != nil {
		return err
	}
	s.qheads[origin] = last
	s.quarantined.Add(int64(n))
	res.Quarantined += n
	return nil
}

// QuarantineCount is the number of ops held in quarantine.
func (s *Store) QuarantineCount() int { return int(s.quarantined.Load()) }

// Quarantined calls fn for every op in quarantine, by origin and seq, until
// it returns false.
func (s *Store) Quarantined(fn func(crdt.Signed) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	errStop := fmt.Errorf("stop")
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixQuarantine, true, func(k, v []byte) error {
			var sg crdt.Signed
			if err := crdt.Unmarshal(v, &sg); err != nil {
				return fmt.Errorf("quarantined op %q: %w", k, err)
			}
			if !fn(sg) {
				return errStop
			}
			return nil
		})
	})
	if err != nil && err != errStop {
		return fmt.Errorf("read quarantine: %w", err)
	}
	return nil
}

// PutRevocation keeps raw as the revocation list in force, installed at
// atMillis. The caller has verified it and checked it is newer. Durable on
// return.
func (s *Store) PutRevocation(raw []byte, atMillis int64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return fmt.Errorf("keep revocation list: %w", err)
	}
	err := s.update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keyRevocation), bytes.Clone(raw)); err != nil {
			return err
		}
		return txn.Set([]byte(keyRevocationAt), u64(uint64(atMillis)))
	})
	if err != nil {
		return fmt.Errorf("keep revocation list: %w", err)
	}
	return nil
}

// Revocation returns the list kept by PutRevocation and when it was
// installed; nil when there is none.
func (s *Store) Revocation() (raw []byte, atMillis int64, err error) {
	if err := s.enter(); err != nil {
		return nil, 0, err
	}
	defer s.leave()
	err = s.db.View(func(txn *badger.Txn) error {
		var found bool
		if raw, found, err = get(txn, []byte(keyRevocation)); err != nil || !found {
			return err
		}
		at, _, err := getU64(txn, []byte(keyRevocationAt))
		atMillis = int64(at)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read revocation list: %w", err)
	}
	return raw, atMillis, nil
}
