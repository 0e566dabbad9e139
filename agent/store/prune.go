package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// Pruning (agent --prune-delivered): once a hub's receipt says it holds a
// file whole, a laptop may drop the file's chunks and keep its manifest. A
// pruned file is marked P/<sha256>, so the agent does not fetch it again
// from peers; m/pruned is how far each origin's manifest ops have been
// pruned, and m/pruned.bytes the bytes dropped in all.
//
// A dropped chunk's bytes leave the disk at the next CollectGarbage: a
// chunk kept in badger when the value log GC rewrites the value log file it
// sits in (the file being written is rewritten only once it is full), a
// chunk in a pack when collectPacks deletes or rewrites its pack.

// PruneFiles marks files pruned and drops the chunks given (those of the
// files that no file still to deliver shares, with their sizes), except
// chunks an upload in flight uses. It returns the bytes dropped.
func (s *Store) PruneFiles(files [][32]byte, chunks map[[32]byte]int64) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	var freed int64
	var drop [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for h, size := range chunks {
			if s.claims[h] != nil {
				continue
			}
			held := false
			for _, key := range [][]byte{chunkKey(h), packedKey(h)} {
				_, err := txn.Get(key)
				if err == badger.ErrKeyNotFound {
					continue
				}
				if err != nil {
					return err
				}
				held = true
				drop = append(drop, key)
			}
			if held {
				freed += size
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	marks := make([]entry, 0, len(files)+1)
	for _, f := range files {
		marks = append(marks, entry{key: prunedKey(f), val: []byte{}})
	}
	total, _, err := s.viewU64(keyPrunedBytes)
	if err != nil {
		return 0, err
	}
	marks = append(marks, entry{key: []byte(keyPrunedBytes), val: u64(total + uint64(freed))})
	// Marks first: a crash before the chunks go leaves files marked whose
	// chunks are still held, which the next pass drops.
	if err := s.deleteBatches(marks); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	// DropPrefix, not deletes: it removes the keys from every LSM level at
	// once, so badger learns at once which value log bytes are garbage and
	// the next value log GC frees them (a deletion would wait for
	// compactions to reach the keys, days on a quiet laptop). It blocks
	// badger's writes while it runs; every writer of this store holds wmu,
	// as this does, so none meets the block.
	for len(drop) > 0 {
		n := min(len(drop), 1024)
		if err := s.db.DropPrefix(drop[:n]...); err != nil {
			return 0, fmt.Errorf("prune: drop chunks: %w", err)
		}
		drop = drop[n:]
	}
	return freed, nil
}

// IsPruned reports whether a file's chunks were dropped after delivery.
func (s *Store) IsPruned(file [32]byte) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		_, found, err = get(txn, prunedKey(file))
		return err
	})
	return found, err
}

// PrunedBytes is how many bytes of chunks PruneFiles has dropped in all.
func (s *Store) PrunedBytes() (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n, _, err := s.viewU64(keyPrunedBytes)
	return int64(n), err
}

// SetPruned raises how far each origin's manifest ops have been pruned.
func (s *Store) SetPruned(vv crdt.VersionVector) error { return s.raiseVV(keyPruned, vv) }

// Pruned returns what SetPruned keeps.
func (s *Store) Pruned() (crdt.VersionVector, error) { return s.readVV(keyPruned) }
