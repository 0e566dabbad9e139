package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// ManifestOp is one op that wrote an attachment field: the x/ao/ index.
type ManifestOp struct {
	Origin string
	Seq    uint64
	Field  string
	Record string
	File   [32]byte // the SHA-256 of the whole file
	Wall   int64    // the op's wall time, ms
}

// ManifestOps calls fn for every manifest op of origin with seq > after, in
// seq order; fn returns false to stop.
func (s *Store) ManifestOps(origin string, after uint64, fn func(ManifestOp) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(func(txn *badger.Txn) error { return manifestOpsIn(txn, origin, after, fn) })
}

func manifestOpsIn(txn *badger.Txn, origin string, after uint64, fn func(ManifestOp) bool) error {
	prefix := manifestOpPrefix(origin)
	itOpts := badger.DefaultIteratorOptions
	itOpts.Prefix = prefix
	it := txn.NewIterator(itOpts)
	defer it.Close()
	for it.Seek(binary.BigEndian.AppendUint64(bytes.Clone(prefix), after+1)); it.Valid(); it.Next() {
		k := it.Item().Key()
		rest := k[len(prefix):]
		if len(rest) < 9 || rest[8] != '/' {
			return fmt.Errorf("%w: manifest op key %q", ErrCorrupt, k)
		}
		mo := ManifestOp{Origin: origin, Seq: binary.BigEndian.Uint64(rest), Field: string(rest[9:])}
		err := it.Item().Value(func(v []byte) error {
			if len(v) < 40 {
				return fmt.Errorf("%w: manifest op %s:%d of %d bytes", ErrCorrupt, origin, mo.Seq, len(v))
			}
			copy(mo.File[:], v)
			mo.Wall = int64(binary.BigEndian.Uint64(v[32:]))
			mo.Record = string(v[40:])
			return nil
		})
		if err != nil {
			return err
		}
		if !fn(mo) {
			return nil
		}
	}
	return nil
}

// ManifestOpsAfter calls fn for every manifest op whose seq is above
// marks[origin], origin by origin (every origin whose log is held); fn
// returns false to stop.
func (s *Store) ManifestOpsAfter(marks crdt.VersionVector, fn func(ManifestOp) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	stop := false
	return s.db.View(func(txn *badger.Txn) error {
		for _, origin := range s.VersionVector().Origins() {
			err := manifestOpsIn(txn, origin, marks[origin], func(mo ManifestOp) bool {
				stop = !fn(mo)
				return !stop
			})
			if err != nil || stop {
				return err
			}
		}
		return nil
	})
}

// SetAttached records a hub's watermark of whole attachments: per origin,
// every manifest op up to that seq names a file held whole (and exported,
// where the hub exports). Only raises entries.
func (s *Store) SetAttached(vv crdt.VersionVector) error { return s.raiseVV(keyAttached, vv) }

// Attached returns the watermark SetAttached keeps.
func (s *Store) Attached() (crdt.VersionVector, error) { return s.readVV(keyAttached) }
