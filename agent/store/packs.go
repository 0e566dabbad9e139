package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Chunk packs: the bytes of attachment chunks received from peers, outside
// badger. badger would keep each chunk in its value log, written through a
// memory map and synced with msync, and on this hardware that writes chunks
// at a quarter of what the disk takes (docs/performance.md, Attachments). A
// pack is a plain append-only file of sealed chunks; a batch of chunks costs
// one write and one fsync, and badger keeps only a 16-byte pointer per
// chunk (b/<sha256>, keys.go), committed after the bytes are durable. So a
// pointer never names bytes a crash could lose, and bytes a crash leaves
// without a pointer are garbage the next collection reclaims.
//
// A pack file is the magic packMagic, then records: a random 12-byte nonce
// and the chunk sealed with AES-256-GCM under the pack key (derived from
// the store's encryption key with HKDF), with the chunk's SHA-256 as
// additional data. A record is authenticated whole, and bound to the hash
// its pointer is kept under: a flipped byte, a torn write or a pointer to
// the wrong record fails to open instead of serving other bytes. Random
// nonces, not counters, so that nothing about a nonce depends on state a
// crash can roll back; 2^32 records per key is 256 TiB of chunks.
//
// A store in clear (no encryption key, tests and the conversion of old
// directories) seals with a key derived from nothing: authenticated, not
// secret, like the rest of such a store.
//
// Every open of the store writes into a new pack, so a record is never
// written where a crash may have left part of another. A pack grows to
// packTarget and is then closed for good; collectPacks (prune.go) deletes a
// pack no pointer names and rewrites one whose live chunks fill less than
// half of it.

const (
	packDirName = "packs"
	packSuffix  = ".pack"
	packMagic   = "FSPACK1\n"
	// packTarget: a pack is closed once it holds this many bytes. Small
	// enough that a collection rewrites at most this much to free a pack,
	// large enough that a campaign of 100,000 dossiers' biometrics (about
	// 35 GB) is a few hundred files.
	packTarget = 256 << 20
	nonceSize  = 12
	// packOverhead is what sealing adds to a chunk: nonce and GCM tag.
	packOverhead = nonceSize + 16
	packPtrSize  = 16
)

// packPtr names one record: the pack, the record's offset and its length
// (nonce and tag included).
type packPtr struct {
	pack uint32
	off  uint64
	n    uint32
}

func (p packPtr) bytes() []byte {
	b := make([]byte, 0, packPtrSize)
	b = binary.BigEndian.AppendUint32(b, p.pack)
	b = binary.BigEndian.AppendUint64(b, p.off)
	return binary.BigEndian.AppendUint32(b, p.n)
}

func parsePackPtr(b []byte) (packPtr, error) {
	if len(b) != packPtrSize {
		return packPtr{}, fmt.Errorf("chunk pointer of %d bytes, want %d", len(b), packPtrSize)
	}
	p := packPtr{pack: binary.BigEndian.Uint32(b), off: binary.BigEndian.Uint64(b[4:]), n: binary.BigEndian.Uint32(b[12:])}
	if p.n < packOverhead || p.n > packOverhead+maxChunkSize {
		return packPtr{}, fmt.Errorf("chunk pointer with a record of %d bytes", p.n)
	}
	return p, nil
}

// maxChunkSize bounds what a pointer may name: attachment chunks are 64 KiB
// (agent/attach), and the store takes none larger.
const maxChunkSize = 64 << 10

// packs is the set of pack files of one store. append is called by writers
// only (under the store's wmu); reads run concurrently with it. gc is held
// for reading around a pointer's lookup and its read, and for writing only
// while a pack file is deleted, so no read ever follows a pointer into a
// deleted pack.
type packs struct {
	dir    string
	aead   cipher.AEAD
	target int64 // packTarget; smaller in tests
	gc     sync.RWMutex

	mu     sync.Mutex
	files  map[uint32]*os.File // open for reading, by pack id
	sizes  map[uint32]int64    // every pack's size, by pack id
	cur    *os.File            // the pack being written, or nil
	curID  uint32
	nextID uint32
}

// openPacks opens the pack directory dir (created when first written) with
// the store's encryption key (nil: a store in clear).
func openPacks(dir string, storeKey []byte) (*packs, error) {
	key, err := hkdf.Key(sha256.New, storeKey, nil, "fieldsync chunk packs v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	p := &packs{dir: dir, aead: aead, target: packTarget, files: map[uint32]*os.File{}, sizes: map[uint32]int64{}, nextID: 1}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chunk packs: %w", err)
	}
	for _, e := range entries {
		id, ok := packID(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("chunk packs: %w", err)
		}
		p.sizes[id] = info.Size()
		p.nextID = max(p.nextID, id+1)
	}
	return p, nil
}

func packID(name string) (uint32, bool) {
	num, ok := strings.CutSuffix(name, packSuffix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(num, 10, 32)
	return uint32(id), err == nil && id > 0
}

func (p *packs) path(id uint32) string {
	return filepath.Join(p.dir, fmt.Sprintf("%08d%s", id, packSuffix))
}

// sealedBatch is chunks sealed for a pack, not yet written: the records
// back to back, and where each starts and how long it is.
type sealedBatch struct {
	buf    []byte
	starts []int
}

// seal seals chunks into records. It needs no lock: a record's nonce is
// random, so it does not depend on where the record is written, and the
// costly part of a batch (AES-GCM) runs outside the writers' lock.
func (p *packs) seal(chunks []ChunkData) (sealedBatch, error) {
	size := 0
	for _, c := range chunks {
		if len(c.Data) > maxChunkSize {
			return sealedBatch{}, fmt.Errorf("chunk of %d bytes, at most %d", len(c.Data), maxChunkSize)
		}
		size += packOverhead + len(c.Data)
	}
	b := sealedBatch{buf: make([]byte, 0, size), starts: make([]int, len(chunks))}
	for i, c := range chunks {
		start := len(b.buf)
		b.starts[i] = start
		b.buf = b.buf[:start+nonceSize]
		if _, err := rand.Read(b.buf[start:]); err != nil {
			return sealedBatch{}, err
		}
		b.buf = p.aead.Seal(b.buf, b.buf[start:start+nonceSize], c.Data, c.Hash[:])
	}
	return b, nil
}

// append seals chunks and writes them, as write does.
func (p *packs) append(chunks []ChunkData) ([]packPtr, error) {
	b, err := p.seal(chunks)
	if err != nil {
		return nil, err
	}
	return p.write(b)
}

// write writes sealed records into the current pack with one write and one
// fsync, and returns their pointers, in order. When it returns nil the
// records are durable. Writers only.
func (p *packs) write(b sealedBatch) ([]packPtr, error) {
	if err := p.roll(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	f, id, off := p.cur, p.curID, p.sizes[p.curID]
	p.mu.Unlock()
	ptrs := make([]packPtr, len(b.starts))
	for i, start := range b.starts {
		end := len(b.buf)
		if i+1 < len(b.starts) {
			end = b.starts[i+1]
		}
		ptrs[i] = packPtr{pack: id, off: uint64(off) + uint64(start), n: uint32(end - start)}
	}
	if _, err := f.WriteAt(b.buf, off); err != nil {
		return nil, fmt.Errorf("write chunk pack %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync chunk pack %s: %w", f.Name(), err)
	}
	p.mu.Lock()
	p.sizes[id] = off + int64(len(b.buf))
	p.mu.Unlock()
	return ptrs, nil
}

// roll makes sure there is a pack to write into that is below packTarget:
// it closes the full one and creates the next, its entry durable in the
// directory before anything points into it. Writers only.
func (p *packs) roll() error {
	p.mu.Lock()
	full := p.cur != nil && p.sizes[p.curID] >= p.target
	have := p.cur != nil
	p.mu.Unlock()
	if have && !full {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("chunk packs: %w", err)
	}
	p.mu.Lock()
	id := p.nextID
	p.mu.Unlock()
	name := p.path(id)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("chunk packs: %w", err)
	}
	if _, err := f.Write([]byte(packMagic)); err != nil {
		f.Close()
		return fmt.Errorf("chunk packs: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("chunk packs: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		f.Close()
		return fmt.Errorf("chunk packs: %w", err)
	}
	p.mu.Lock()
	p.nextID = id + 1
	p.cur, p.curID = f, id
	p.sizes[id] = int64(len(packMagic))
	p.files[id] = f
	p.mu.Unlock()
	return nil
}

// read opens the record ptr names, which must hold the chunk with this hash.
// The caller holds gc for reading.
func (p *packs) read(ptr packPtr, hash [32]byte) ([]byte, error) {
	f, err := p.file(ptr.pack)
	if err != nil {
		return nil, err
	}
	rec := make([]byte, ptr.n)
	if _, err := f.ReadAt(rec, int64(ptr.off)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, p.damaged(ptr, "cannot read the record: "+err.Error())
	}
	data, err := p.aead.Open(rec[nonceSize:nonceSize], rec[:nonceSize], rec[nonceSize:], hash[:])
	if err != nil {
		return nil, p.damaged(ptr, "the record does not authenticate (damaged, or not this chunk)")
	}
	return data, nil
}

func (p *packs) damaged(ptr packPtr, why string) error {
	return &DamageError{File: p.path(ptr.pack), Offset: int64(ptr.off), Reason: why}
}

func (p *packs) file(id uint32) (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.files[id]; f != nil {
		return f, nil
	}
	f, err := os.Open(p.path(id))
	if err != nil {
		return nil, &DamageError{File: p.path(id), Offset: -1, Reason: "a chunk pointer names this pack, which cannot be opened: " + err.Error()}
	}
	p.files[id] = f
	return f, nil
}

// closed lists the packs no longer written, with their sizes.
func (p *packs) closed() map[uint32]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint32]int64, len(p.sizes))
	for id, n := range p.sizes {
		if p.cur == nil || id != p.curID {
			out[id] = n
		}
	}
	return out
}

// remove deletes a closed pack. The caller has committed the removal of
// every pointer into it, and holds gc for writing.
func (p *packs) remove(id uint32) error {
	p.mu.Lock()
	if p.cur != nil && id == p.curID {
		p.mu.Unlock()
		return fmt.Errorf("chunk packs: %s is being written", p.path(id))
	}
	f := p.files[id]
	delete(p.files, id)
	delete(p.sizes, id)
	p.mu.Unlock()
	if f != nil {
		f.Close()
	}
	if err := os.Remove(p.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("chunk packs: %w", err)
	}
	return syncDir(p.dir)
}

// bytes is the size of every pack on disk.
func (p *packs) bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, s := range p.sizes {
		n += s
	}
	return n
}

func (p *packs) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for id, f := range p.files {
		errs = append(errs, f.Close())
		delete(p.files, id)
	}
	p.cur = nil
	return errors.Join(errs...)
}

// collectPacks reclaims the space of chunks no pointer names any more
// (dropped by PruneFiles, or written by a batch a crash cut before its
// pointers were committed): a closed pack no pointer names is deleted, and
// one whose named records fill less than half of it has them copied into
// the current pack, their pointers moved, and is deleted. The current pack
// is closed first when it holds garbage, so it can go the same way. It
// returns how many packs it deleted. It holds the writers' lock throughout:
// no chunk is written while pointers move.
func (s *Store) collectPacks() (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFailed(); err != nil {
		return 0, fmt.Errorf("collect chunk packs: %w", err)
	}
	live := map[uint32]int64{}
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefixPacked, true, func(_, v []byte) error {
			p, err := parsePackPtr(v)
			if err != nil {
				return err
			}
			live[p.pack] += int64(p.n)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("collect chunk packs: %w", err)
	}
	p := s.packs
	p.mu.Lock()
	if p.cur != nil && int64(len(packMagic))+live[p.curID] < p.sizes[p.curID] {
		p.cur = nil // written no more; its reader stays open
	}
	p.mu.Unlock()
	var empty, sparse []uint32
	for id, size := range p.closed() {
		switch {
		case live[id] == 0:
			empty = append(empty, id)
		case 2*live[id] < size-int64(len(packMagic)):
			sparse = append(sparse, id)
		}
	}
	if len(sparse) > 0 {
		move := map[uint32]bool{}
		for _, id := range sparse {
			move[id] = true
		}
		if err := s.movePacked(move); err != nil {
			return 0, fmt.Errorf("collect chunk packs: %w", err)
		}
	}
	n := 0
	for _, id := range append(empty, sparse...) {
		p.gc.Lock()
		err := p.remove(id)
		p.gc.Unlock()
		if err != nil {
			return n, fmt.Errorf("collect chunk packs: %w", err)
		}
		n++
	}
	if n > 0 {
		s.log.Info("chunk packs collected", "deleted", n, "moved_from", len(sparse))
	}
	return n, nil
}

// movePacked copies every chunk kept in the packs of from into the current
// pack, in batches, and commits their new pointers. The caller holds wmu.
func (s *Store) movePacked(from map[uint32]bool) error {
	var todo []packedChunk
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		todo, err = packedChunks(txn, func(p packPtr) bool { return from[p.pack] })
		return err
	})
	if err != nil {
		return err
	}
	return repack(s.packs, s.packs, todo, func(batch []ChunkData, ptrs []packPtr) error {
		return s.update(func(txn *badger.Txn) error { return setPointers(txn, batch, ptrs) })
	})
}

// packedChunk is a chunk kept in a pack: its hash and where it is.
type packedChunk struct {
	hash [32]byte
	ptr  packPtr
}

// packedChunks lists the chunks whose pointers keep says to.
func packedChunks(txn *badger.Txn, keep func(packPtr) bool) ([]packedChunk, error) {
	var out []packedChunk
	err := scan(txn, prefixPacked, true, func(k, v []byte) error {
		p, err := parsePackPtr(v)
		if err != nil || !keep(p) {
			return err
		}
		var h [32]byte
		copy(h[:], k[len(prefixPacked):])
		out = append(out, packedChunk{h, p})
		return nil
	})
	return out, err
}

// repack reads the chunks of todo from one set of packs and writes them to
// another (or the same), in batches of at most MaxChunkBatch, and hands
// each batch, durable, with its new pointers to point, which records them.
func repack(from, to *packs, todo []packedChunk, point func([]ChunkData, []packPtr) error) error {
	for len(todo) > 0 {
		var batch []ChunkData
		size := 0
		for len(todo) > 0 && (len(batch) == 0 || size+int(todo[0].ptr.n) <= MaxChunkBatch) {
			data, err := from.read(todo[0].ptr, todo[0].hash)
			if err != nil {
				return err
			}
			batch = append(batch, ChunkData{Hash: todo[0].hash, Data: data})
			size += len(data)
			todo = todo[1:]
		}
		ptrs, err := to.append(batch)
		if err != nil {
			return err
		}
		if err := point(batch, ptrs); err != nil {
			return err
		}
	}
	return nil
}
