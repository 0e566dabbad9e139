package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/fieldsync/fieldsync/crdt"
)

// Attachment chunks (see keys.go): a/<sha256> holds a chunk's bytes, keyed by
// their SHA-256, so identical chunks are stored once whatever file or dossier
// they belong to. The store checks every chunk against its key before
// writing it; what a chunk belongs to is the manifest's business (agent/attach),
// which the store treats as an opaque field value.
//
// A local upload (Upload) writes each chunk as it arrives, in a transaction
// of its own, so the file is never held in memory. A chunk it is the first
// to write is marked u/<sha256> in the same transaction: written, but no
// committed manifest refers to it yet. The manifest op's transaction deletes
// those marks, so a chunk is either referred to by a committed op or marked.
// A refused or abandoned upload deletes the chunks it marked; a crash in the
// middle leaves marks, and Open deletes every marked chunk. Nothing a cut
// upload wrote outlives the next start.

// ErrChunkHash: chunk bytes whose SHA-256 is not the hash they were given
// under. Nothing is written.
var ErrChunkHash = errors.New("chunk does not match its hash")

// ErrNoChunk: no chunk with that hash is held.
var ErrNoChunk = errors.New("chunk not held")

// claim counts the uploads in flight that use a chunk. fresh: an upload
// wrote it and no committed manifest refers to it yet (it is marked u/).
// Writers only.
type claim struct {
	count int
	fresh bool
}

// PutChunk keeps a chunk received from anywhere, after checking that
// sha256(data) == hash (else ErrChunkHash). A chunk already held is not
// written again. It is durable when PutChunk returns. Whether the chunk is
// wanted (listed by a manifest this store holds, and missing) is the
// caller's check: see MissingChunks. It costs one commit (one sync to disk)
// per chunk: chunks arriving in a stream go through PutChunks.
func (s *Store) PutChunk(hash [32]byte, data []byte) error {
	bad, err := s.PutChunks([]ChunkData{{Hash: hash, Data: data}})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("put chunk %x: %w", hash[:6], ErrChunkHash)
	}
	return nil
}

// ChunkData is one chunk to keep: its bytes and the SHA-256 they must have.
type ChunkData struct {
	Hash [32]byte
	Data []byte
}

// MaxChunkBatch is the most chunk bytes PutChunks writes with one sync: 8
// MiB. A larger batch is written in several, each durable before the next.
const MaxChunkBatch = 8 << 20

// PutChunks keeps chunks received from anywhere, as PutChunk does, but in
// batches: the bytes go to a chunk pack with one write and one sync, then
// their pointers to badger in one commit (packs.go). Each chunk is checked
// against its hash first, outside the store's write lock; the positions in
// chunks of those that do not match are returned in bad, in order, and
// nothing of them is written. A chunk already held, or given twice, is
// written once. When the error is nil every chunk not in bad is held and
// durable; on an error, any of them may be missing (chunks are
// content-addressed, so writing one again is harmless). The caller keeps
// chunks, which PutChunks does not retain.
func (s *Store) PutChunks(chunks []ChunkData) (bad []int, err error) {
	good := make([]bool, len(chunks))
	for i, c := range chunks {
		if sha256.Sum256(c.Data) == c.Hash && len(c.Data) <= maxChunkSize {
			good[i] = true
		} else {
			bad = append(bad, i)
		}
	}
	if len(bad) == len(chunks) {
		return bad, nil
	}
	if err := s.enter(); err != nil {
		return bad, err
	}
	defer s.leave()
	var fresh []ChunkData
	err = s.db.View(func(txn *badger.Txn) error {
		seen := make(map[[32]byte]bool, len(chunks))
		for i, c := range chunks {
			if !good[i] || seen[c.Hash] {
				continue
			}
			seen[c.Hash] = true
			held, err := chunkHeld(txn, c.Hash)
			if err != nil {
				return err
			}
			if !held {
				fresh = append(fresh, c)
			}
		}
		return nil
	})
	if err != nil {
		return bad, fmt.Errorf("put chunks: look up chunk: %w", err)
	}
	for len(fresh) > 0 {
		n, size := 0, 0
		for n < len(fresh) && (n == 0 || size+len(fresh[n].Data) <= MaxChunkBatch) {
			size += len(fresh[n].Data)
			n++
		}
		// Sealed outside the writers' lock, so that two callers overlap
		// one's sealing with the other's sync. A chunk another caller
		// stores meanwhile is written twice: its first record becomes
		// garbage for the collection, nothing worse.
		sealed, err := s.packs.seal(fresh[:n])
		if err != nil {
			return bad, fmt.Errorf("put chunks: %w", err)
		}
		if err := s.writeSealed(fresh[:n], sealed); err != nil {
			return bad, fmt.Errorf("put chunks: %w", err)
		}
		fresh = fresh[n:]
	}
	return bad, nil
}

// writeSealed writes sealed records to a pack, then, once they are durable,
// their pointers to badger: a crash between the two leaves garbage in the
// pack, never a pointer to bytes that are not there.
func (s *Store) writeSealed(chunks []ChunkData, sealed sealedBatch) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return err
	}
	ptrs, err := s.packs.write(sealed)
	if err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error { return setPointers(txn, chunks, ptrs) })
}

// setPointers records where each chunk of a batch now is in the packs.
func setPointers(txn *badger.Txn, chunks []ChunkData, ptrs []packPtr) error {
	for i, p := range ptrs {
		if err := txn.Set(packedKey(chunks[i].Hash), p.bytes()); err != nil {
			return err
		}
	}
	return nil
}

// chunkHeld reports whether a chunk is held, in badger (a/) or in a pack
// (b/).
func chunkHeld(txn *badger.Txn, hash [32]byte) (bool, error) {
	for _, key := range [][]byte{packedKey(hash), chunkKey(hash)} {
		_, err := txn.Get(key)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return false, err
		}
	}
	return false, nil
}

// Chunk returns a copy of the chunk with this hash, or an error wrapping
// ErrNoChunk. Bytes in a pack that do not authenticate are a *DamageError
// naming the pack: never served.
func (s *Store) Chunk(hash [32]byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.packs.gc.RLock()
	defer s.packs.gc.RUnlock()
	var data []byte
	var ptr []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var found bool
		var err error
		if ptr, found, err = get(txn, packedKey(hash)); err != nil || found {
			return err
		}
		data, found, err = get(txn, chunkKey(hash))
		if err == nil && !found {
			return ErrNoChunk
		}
		return err
	})
	if err == nil && ptr != nil {
		var p packPtr
		if p, err = parsePackPtr(ptr); err == nil {
			data, err = s.packs.read(p, hash)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read chunk %x: %w", hash[:6], err)
	}
	if ptr == nil {
		s.trim.note(len(data))
	}
	return data, nil
}

// HasChunk reports whether the chunk with this hash is held.
func (s *Store) HasChunk(hash [32]byte) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	return s.hasChunk(hash)
}

func (s *Store) hasChunk(hash [32]byte) (bool, error) {
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		found, err = chunkHeld(txn, hash)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("look up chunk: %w", err)
	}
	return found, nil
}

// MissingChunks returns the hashes of a manifest's chunk list (in its order)
// that are not held. It reads keys only.
func (s *Store) MissingChunks(hashes [][32]byte) ([][32]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var missing [][32]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for _, h := range hashes {
			held, err := chunkHeld(txn, h)
			if err != nil {
				return err
			}
			if !held {
				missing = append(missing, h)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("missing chunks: %w", err)
	}
	return missing, nil
}

// ChunkStats counts the chunks held and their bytes (as badger estimates
// them from its value pointers, within a few bytes a chunk, and from the
// pack pointers, exactly). It reads keys only, and pack pointers.
func (s *Store) ChunkStats() (chunks int, bytes int64, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, err
	}
	defer s.leave()
	err = s.db.View(func(txn *badger.Txn) error {
		if err := scan(txn, prefixPacked, true, func(_, v []byte) error {
			p, err := parsePackPtr(v)
			if err != nil {
				return err
			}
			chunks++
			bytes += int64(p.n) - packOverhead
			return nil
		}); err != nil {
			return err
		}
		itOpts := badger.DefaultIteratorOptions
		itOpts.Prefix = []byte(prefixChunk)
		itOpts.PrefetchValues = false
		it := txn.NewIterator(itOpts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			chunks++
			bytes += it.Item().ValueSize()
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count chunks: %w", err)
	}
	return chunks, bytes, nil
}

// Manifest returns the value of an attachment field naming a file with this
// SHA-256 (any one, when several ops name the same file: their chunk lists
// are the same), as kept by the x/a/ index of Options.AttachmentFile.
func (s *Store) Manifest(file [32]byte) (value string, found bool, err error) {
	if err := s.enter(); err != nil {
		return "", false, err
	}
	defer s.leave()
	var b []byte
	err = s.db.View(func(txn *badger.Txn) error {
		var err error
		b, found, err = get(txn, manifestKey(file))
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("read manifest index: %w", err)
	}
	return string(b), found, nil
}

// Upload is one local file being attached: its chunks are written as they
// come (Put), then the manifest op that refers to them (Commit), or they are
// removed again (Abort). Not safe for concurrent use; several Uploads may run
// at once. An Upload must end with Commit or Abort.
type Upload struct {
	s      *Store
	hashes [][32]byte
	mine   map[[32]byte]bool
	done   bool
}

// BeginUpload starts an upload.
func (s *Store) BeginUpload() *Upload {
	return &Upload{s: s, mine: map[[32]byte]bool{}}
}

// Put keeps one chunk of the file, after checking sha256(data) == hash (else
// ErrChunkHash, and nothing is written). A chunk already held, or already put
// by this upload, is not written again.
func (u *Upload) Put(hash [32]byte, data []byte) error {
	if u.done {
		return errors.New("put chunk: upload already ended")
	}
	if sha256.Sum256(data) != hash {
		return fmt.Errorf("put chunk %x: %w", hash[:6], ErrChunkHash)
	}
	if u.mine[hash] {
		return nil
	}
	s := u.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return fmt.Errorf("put chunk: %w", err)
	}
	if c := s.claims[hash]; c != nil {
		c.count++
	} else {
		held, err := s.hasChunk(hash)
		if err != nil {
			return err
		}
		c = &claim{count: 1, fresh: !held}
		if !held {
			s.trim.note(len(data))
			err := s.update(func(txn *badger.Txn) error {
				if err := txn.Set(chunkKey(hash), data); err != nil {
					return err
				}
				return txn.Set(uploadKey(hash), []byte{})
			})
			if err != nil {
				return fmt.Errorf("put chunk: %w", err)
			}
		}
		s.claims[hash] = c
	}
	u.mine[hash] = true
	u.hashes = append(u.hashes, hash)
	return nil
}

// Commit writes the manifest op: an op of this device updating record
// recordID with values (the attachment field and its manifest), as
// Store.Write with KindUpdate, in the same transaction as the removal of the
// marks of the chunks this upload wrote, so they are kept. On an error
// (ErrNotFound for an unknown record, or any of Write's) the upload is
// aborted: its new chunks are removed.
func (u *Upload) Commit(origin string, key ed25519.PrivateKey, recordID string, values map[string]string, wallMillis int64) (crdt.Opened, error) {
	if u.done {
		return crdt.Opened{}, errors.New("commit upload: already ended")
	}
	s := u.s
	if err := s.enter(); err != nil {
		return crdt.Opened{}, err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var unmark []entry
	for _, h := range u.hashes {
		if s.claims[h].fresh {
			unmark = append(unmark, entry{key: uploadKey(h), del: true})
		}
	}
	o, err := s.write(origin, key, recordID, crdt.KindUpdate, values, nil, wallMillis, unmark)
	if err != nil {
		if aerr := u.abortLocked(); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return crdt.Opened{}, fmt.Errorf("write %s: %w", recordID, err)
	}
	for _, h := range u.hashes {
		c := s.claims[h]
		c.fresh = false
		if c.count--; c.count == 0 {
			delete(s.claims, h)
		}
	}
	u.done = true
	return o, nil
}

// Abort ends an upload that is not committed: the chunks it was the first to
// write, and that no other upload in flight uses, are removed. Aborting an
// ended upload does nothing.
func (u *Upload) Abort() error {
	if u.done {
		return nil
	}
	s := u.s
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return u.abortLocked()
}

func (u *Upload) abortLocked() error {
	s := u.s
	u.done = true
	var dels []entry
	for _, h := range u.hashes {
		c := s.claims[h]
		if c.count--; c.count > 0 {
			continue // another upload in flight uses it, and removes it if it fails
		}
		delete(s.claims, h)
		if c.fresh {
			dels = append(dels, entry{key: chunkKey(h), del: true}, entry{key: uploadKey(h), del: true})
		}
	}
	if len(dels) == 0 {
		return nil
	}
	if err := s.checkFailed(); err != nil {
		return nil // the marks stay; Open removes the chunks
	}
	if err := s.deleteBatches(dels); err != nil {
		return fmt.Errorf("remove chunks of an abandoned upload: %w", err)
	}
	return nil
}

// deleteBatches commits deletions in transactions of at most 512 keys.
func (s *Store) deleteBatches(dels []entry) error {
	for len(dels) > 0 {
		n := min(len(dels), 512)
		if err := s.update(func(txn *badger.Txn) error { return setAll(txn, dels[:n]) }); err != nil {
			return err
		}
		dels = dels[n:]
	}
	return nil
}

// sweepUploads removes, at Open, the chunks of uploads a crash cut: every
// chunk still marked u/.
func (s *Store) sweepUploads() (int, error) {
	var dels []entry
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixUpload, false, func(k, _ []byte) error {
			if len(k) != len(prefixUpload)+32 {
				return fmt.Errorf("upload mark %q: bad key", k)
			}
			var h [32]byte
			copy(h[:], k[len(prefixUpload):])
			dels = append(dels, entry{key: chunkKey(h), del: true}, entry{key: uploadKey(h), del: true})
			return nil
		})
	})
	if err != nil || len(dels) == 0 {
		return 0, err
	}
	return len(dels) / 2, s.deleteBatches(dels)
}

// Manifests calls fn for every file a held manifest names (the x/a/ index),
// with the manifest's value and the wall time (ms) of the op that indexed it
// (0 when not known: an op indexed before the time was kept).
func (s *Store) Manifests(fn func(file [32]byte, value string, wallMillis int64) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixManifest, true, func(k, v []byte) error {
			if len(k) != len(prefixManifest)+32 {
				return nil
			}
			var file [32]byte
			copy(file[:], k[len(prefixManifest):])
			t, _, err := getU64(txn, manifestTimeKey(file))
			if err != nil {
				return err
			}
			return fn(file, string(v), int64(t))
		})
	})
}

// ManifestTime returns the wall time (ms) of the op that indexed the
// manifest of this file, and whether it is held.
func (s *Store) ManifestTime(file [32]byte) (int64, bool, error) {
	if err := s.enter(); err != nil {
		return 0, false, err
	}
	defer s.leave()
	var t uint64
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		t, found, err = getU64(txn, manifestTimeKey(file))
		return err
	})
	return int64(t), found, err
}
