package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// credValue is the value under c/<origin>.
type credValue struct {
	Pub []byte `cbor:"1,keyasint"`
	Raw []byte `cbor:"2,keyasint"`
}

// PutCredential stores origin's credential bytes and public key. The caller
// has verified the credential; the store only keeps it, and checks ops of
// origin against pub from now on. Storing the same credential again is a
// no-op; a renewed credential (other bytes, same key) replaces the old one; a
// credential naming another key for a known origin is refused with
// ErrWrongKey, since that origin's stored log was verified with the first.
func (s *Store) PutCredential(origin string, pub ed25519.PublicKey, raw []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if !validOrigin(origin) {
		return fmt.Errorf("put credential: %q: %w", origin, ErrBadOrigin)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("put credential %s: %w: public key of %d bytes", origin, ErrWrongKey, len(pub))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return fmt.Errorf("put credential %s: %w", origin, err)
	}
	if old, ok := s.pubs[origin]; ok && !bytes.Equal(old, pub) {
		return fmt.Errorf("put credential %s: %w", origin, ErrWrongKey)
	}
	val, err := crdt.Marshal(credValue{Pub: pub, Raw: raw})
	if err != nil {
		return fmt.Errorf("put credential %s: %w", origin, err)
	}
	err = s.update(func(txn *badger.Txn) error {
		old, found, err := get(txn, credKey(origin))
		if err != nil || (found && bytes.Equal(old, val)) {
			return err
		}
		return txn.Set(credKey(origin), val)
	})
	if err != nil {
		return fmt.Errorf("put credential %s: %w", origin, err)
	}
	s.pubs[origin] = bytes.Clone(pub)
	return nil
}

// Credential returns origin's stored public key and credential bytes; ok is
// false if there are none. The slices are owned by the caller.
func (s *Store) Credential(origin string) (pub ed25519.PublicKey, raw []byte, ok bool, err error) {
	if err := s.enter(); err != nil {
		return nil, nil, false, err
	}
	defer s.leave()
	if !validOrigin(origin) {
		return nil, nil, false, nil
	}
	var c credValue
	err = s.db.View(func(txn *badger.Txn) error {
		b, found, err := get(txn, credKey(origin))
		if err != nil || !found {
			return err
		}
		ok = true
		return crdt.Unmarshal(b, &c)
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("read credential %s: %w", origin, err)
	}
	return ed25519.PublicKey(c.Pub), c.Raw, ok, nil
}

// Credentials returns every stored credential's bytes by origin.
func (s *Store) Credentials() (map[string][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := map[string][]byte{}
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixCred, true, func(k, v []byte) error {
			var c credValue
			if err := crdt.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("credential %q: %w", k, err)
			}
			out[string(k[len(prefixCred):])] = c.Raw
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return out, nil
}

// NotePeerHolds records that peer holds this device's own log up to seq. It
// only ever raises what is noted; a lower seq is ignored. Durable on return.
func (s *Store) NotePeerHolds(peer string, seq uint64) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if peer == "" {
		return errors.New("note peer holds: no peer id")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if seq <= s.peers[peer] {
		return nil
	}
	if err := s.checkFailed(); err != nil {
		return fmt.Errorf("note peer holds %s: %w", peer, err)
	}
	if err := s.update(func(txn *badger.Txn) error {
		return txn.Set(peerKey(peer), u64(seq))
	}); err != nil {
		return fmt.Errorf("note peer holds %s: %w", peer, err)
	}
	s.mu.Lock()
	s.peers[peer] = seq
	s.maxPeer = max(s.maxPeer, seq)
	s.mu.Unlock()
	return nil
}

func (s *Store) adoptSelf(origin string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.adoptSelfLocked(origin)
}

// adoptSelfLocked makes origin this device's self. If the store already
// holds ops of origin (its own log restored from peers), their creates are
// indexed first, so AtRisk counts them; m/self is written last, so an
// interrupted adoption is simply done again.
func (s *Store) adoptSelfLocked(origin string) error {
	switch s.self {
	case origin:
		return nil
	case "":
	default:
		return fmt.Errorf("%w: %s, this device is %s", ErrNotSelf, origin, s.self)
	}
	if !validOrigin(origin) {
		return fmt.Errorf("self %q: %w", origin, ErrBadOrigin)
	}
	if err := s.checkFailed(); err != nil {
		return err
	}
	var creates []uint64
	if s.heads[origin].Seq > 0 {
		var err error
		if creates, err = s.indexOwnCreates(origin); err != nil {
			return fmt.Errorf("index own creates: %w", err)
		}
	}
	if err := s.update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keySelf), []byte(origin))
	}); err != nil {
		return fmt.Errorf("store self: %w", err)
	}
	s.mu.Lock()
	s.self = origin
	for _, seq := range creates {
		s.ownCreates = insertSorted(s.ownCreates, seq)
	}
	s.mu.Unlock()
	return nil
}

// indexOwnCreates writes w/ entries for origin's stored KindCreate ops and
// returns their seqs. The entries are independent, so they are committed in
// as many transactions as they need.
func (s *Store) indexOwnCreates(origin string) ([]uint64, error) {
	var seqs []uint64
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, string(opPrefix(origin)), true, func(k, v []byte) error {
			var sg crdt.Signed
			if err := crdt.Unmarshal(v, &sg); err != nil {
				return fmt.Errorf("op %q: %w", k, err)
			}
			op, err := crdt.DecodeOp(sg.Body)
			if err != nil {
				return fmt.Errorf("op %q: %w", k, err)
			}
			if op.Kind != crdt.KindCreate {
				return nil
			}
			seqs = append(seqs, op.Seq)
			return wb.Set(ownKey(op.Seq), []byte(op.Record))
		})
	})
	if err != nil {
		return nil, err
	}
	if err := wb.Flush(); err != nil {
		return nil, err
	}
	return seqs, nil
}

// CollectGarbage reclaims value log space held by values no longer live:
// record states replaced by later ops. It rewrites each value log file whose
// share of garbage is at least discardRatio (0 < discardRatio < 1; 0.5 is a
// good default), then collects the chunk packs (collectPacks), and returns
// how many value log files it rewrote and packs it deleted. It runs alongside reads and
// writes; the agent calls it from its safety pass, every 10 minutes while idle (an hour of field work leaves little
// garbage: creates write none, each update one record state).
func (s *Store) CollectGarbage(discardRatio float64) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if discardRatio <= 0 || discardRatio >= 1 {
		return 0, fmt.Errorf("collect garbage: discard ratio %v not in (0, 1)", discardRatio)
	}
	n := 0
	for {
		err := s.db.RunValueLogGC(discardRatio)
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			packs, err := s.collectPacks()
			return n + packs, err
		default:
			return n, fmt.Errorf("collect garbage: %w", err)
		}
	}
}
