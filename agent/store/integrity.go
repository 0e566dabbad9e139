package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Damage badger would misread or repair by cutting, refused before it opens
// the store.
//
// badger takes damage in three of its files for the torn end of a write a
// crash cut short, and repairs it by cutting the file there, saying nothing:
//
//   - a memtable log (*.mem, the write-ahead log of writes not yet in a
//     table): replay stops at the first entry whose checksum fails and the
//     file is cut there. Every transaction after it, committed and
//     acknowledged, is gone, and the store opens in an older state that is
//     consistent in itself, so no check at open can see it: the agent would
//     serve the older state and write new ops over the seqs it lost;
//   - the newest value log (*.vlog): the same, at open; the values after the
//     cut are gone while their keys still point at them;
//   - the MANIFEST (the list of tables): a change set whose length runs past
//     the end of the file is taken for a torn append and dropped with every
//     table it lists, whose files badger then deletes as leftovers: the
//     store opens empty.
//
// And a table (*.sst) whose footer is damaged or cut makes badger panic, a
// block that fails its checksum makes badger's own verification panic, and
// unverified, it ends reads as if its keys did not exist.
// Found by flipping bytes in every file of stopped and killed stores
// (cmd/fieldsync TestCorruptExplore; docs/testing.md, "Corrupted files").
//
// checkFiles tells a torn end from damage before badger opens anything. A
// torn end is the last write, cut: no more than that write follows it.
// Damage is followed by more intact writes than one unsynced write could
// hold (logCheck says how many, for each kind of log); in the MANIFEST, it
// is the change set itself when only its length is wrong, or a first change
// set that is not whole (badger writes that one by a rename, never by an
// append). Tables are verified whole with badger's own table code, its
// panics recovered (verifyTables).
//
// A log file that ends inside an entry was cut short after it was written
// (badger sizes its log files before writing into them), and is refused.
//
// What it cannot see, in a store that was not closed cleanly (a clean close
// is recorded, closed.go, and makes every check exact): a log file cut
// exactly at an entry boundary, or a memtable log cut to 0 bytes, which
// reads like a crash while badger created it (removeEmptyLogs); damage in
// the last two transactions of the active memtable log, or in the reach of
// the last write batches of the newest value log where no memtable log
// points, which read like a torn end. After a memtable log is cut that way
// the store opens as it stood before the lost writes, like a restored
// backup: the device's peers send back the ops they hold, and the fork
// repair handles anything written meanwhile (docs/testing.md).

// ErrDamaged: a file of the store is damaged (a *DamageError says which).
var ErrDamaged = errors.New("store file damaged")

// DamageError names a damaged store file and where the damage is.
type DamageError struct {
	File   string // the file's path
	Offset int64  // where the damage starts, -1 when not one place
	Reason string
}

func (e *DamageError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at byte %d", e.Offset)
	}
	return fmt.Sprintf("%s is damaged%s: %s (tệp dữ liệu bị hỏng)", e.File, at, e.Reason)
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// badger's log files (*.vlog, *.mem): a 20-byte header (data key id, IV),
// then entries: meta byte, user meta byte, uvarint key length, value length
// and expiry, the key and value (encrypted when the store is), and a
// big-endian CRC-32C of all that. A transaction's entries in a memtable log
// carry bitTxn, and it ends with an entry carrying bitFinTxn whose key is
// "!badger!txn" and an 8-byte version; value-log entries carry neither.
const (
	logFileHeader   = 20
	bitValuePointer = 1 << 1
	bitTxn          = 1 << 6
	bitFinTxn       = 1 << 7
	finKeyLen       = len("!badger!txn") + 8
	maxEntryHeader  = 22
	// maxKeyLen bounds a key (badger's limit is 65,000 bytes plus 8).
	maxKeyLen = 1 << 16
	// scanBlock is how much of a file is read at a time.
	scanBlock = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logReader reads a log file through a window, so a file of 128 MB (badger
// allocates value logs twice their size) is never held whole.
type logReader struct {
	f    *os.File
	size int64
	base int64
	buf  []byte
}

// at returns up to n bytes at off (fewer at the end of the file).
func (r *logReader) at(off int64, n int) ([]byte, error) {
	if off >= r.size {
		return nil, nil
	}
	n = int(min(int64(n), r.size-off))
	if off < r.base || off+int64(n) > r.base+int64(len(r.buf)) {
		want := int(min(int64(max(n, scanBlock)), r.size-off))
		if cap(r.buf) < want {
			r.buf = make([]byte, want)
		}
		r.buf = r.buf[:want]
		if _, err := r.f.ReadAt(r.buf, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		r.base = off
	}
	i := int(off - r.base)
	return r.buf[i : i+n], nil
}

// entry states.
const (
	entryBad = iota // does not check: damage, or the torn end of a crash
	entryOK
	entryCut // claims more bytes than the file holds
)

// entry decodes the entry at off: its meta, key length and size when its
// checksum holds. The zeros after the last entry do not check. An entry
// cut by the end of the file is never a crash's doing: badger sizes a log
// file before it writes into it (through a memory map), so only a file
// truncated afterwards ends inside an entry.
func (r *logReader) entry(off int64) (meta byte, klen uint64, size int64, state int, err error) {
	meta, klen, _, _, size, state, err = r.entryParts(off)
	return meta, klen, size, state, err
}

// entryParts is entry with the header's length and the value's.
func (r *logReader) entryParts(off int64) (meta byte, klen, vlen uint64, hlen int, size int64, state int, err error) {
	h, err := r.at(off, maxEntryHeader)
	if err != nil || len(h) < 5 {
		return 0, 0, 0, 0, 0, entryBad, err
	}
	i := 2
	klen, n := binary.Uvarint(h[i:])
	if n <= 0 {
		return 0, 0, 0, 0, 0, entryBad, nil
	}
	i += n
	vlen, n = binary.Uvarint(h[i:])
	if n <= 0 {
		return 0, 0, 0, 0, 0, entryBad, nil
	}
	i += n
	_, n = binary.Uvarint(h[i:])
	if n <= 0 {
		return 0, 0, 0, 0, 0, entryBad, nil
	}
	i += n
	if klen == 0 || klen > maxKeyLen || vlen > 1<<31 {
		return 0, 0, 0, 0, 0, entryBad, nil
	}
	total := int64(i) + int64(klen+vlen) + 4
	if off+total > r.size {
		return 0, 0, 0, 0, 0, entryCut, nil
	}
	b, err := r.at(off, int(total))
	if err != nil || int64(len(b)) < total {
		return 0, 0, 0, 0, 0, entryBad, err
	}
	if crc32.Checksum(b[:total-4], castagnoli) != binary.BigEndian.Uint32(b[total-4:]) {
		return 0, 0, 0, 0, 0, entryBad, nil
	}
	return b[0], klen, vlen, i, total, entryOK, nil
}

// logCheck says how much intact data after an entry that does not check
// makes it damage rather than the torn end of a crash.
//
// A kill -9 leaves the last write cut and nothing after it. A power cut
// can do more: what was written but not yet synced may reach the disk in
// part and in any order (a page lost, the next one kept), so intact entries
// may follow a hole that is only an unacknowledged write. But only the last
// write can be unsynced: badger syncs the value log after each batch of
// transactions, and a memtable log after each transaction. So damage is
// what is followed by more than one write could hold:
//   - in the active memtable log (the newest), two committed transactions
//     (their closing entries check): one may be the unsynced one;
//   - in an older memtable log (full, synced, not yet in a table), one;
//   - in the newest value log, an entry that checks beyond slack bytes
//     (what one batch can hold); older value logs are not walked (badger
//     does not cut them at open; their entries are checked on every read).
//
// strict is for a store that was closed cleanly (closed.go): nothing was
// being written, and an entry that does not check before the end of the
// file is damage wherever it is.
type logCheck struct {
	wal    bool
	fins   int   // wal: committed transactions after the damage that make it damage
	slack  int64 // value log: bytes after the damage within which intact entries may be a torn write
	strict bool
	// reach (value log): how far the memtable logs' entries point into it
	// (walReach). badger syncs a batch's values before it writes their
	// pointers to a memtable log, so everything before reach was synced:
	// damage there is damage, whatever follows.
	reach int64
}

// checkLogFile walks a log file's entries to the first that does not check,
// then looks beyond it for intact writes (logCheck).
func checkLogFile(path string, c logCheck) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < logFileHeader {
		return &DamageError{File: path, Offset: fi.Size(), Reason: fmt.Sprintf("%d bytes, shorter than the %d-byte header badger writes first", fi.Size(), logFileHeader)}
	}
	r := &logReader{f: f, size: fi.Size()}
	off := int64(logFileHeader)
	for {
		_, _, size, state, err := r.entry(off)
		if err != nil {
			return err
		}
		if state == entryCut {
			return &DamageError{File: path, Offset: off, Reason: fmt.Sprintf("cut short: the entry there runs past the end of the file (%d bytes); badger would drop it and what it held", r.size)}
		}
		if state != entryOK {
			break // the zeros after the last entry, or damage: look beyond either way
		}
		off += size
	}
	if c.strict && off != r.size {
		return &DamageError{File: path, Offset: off, Reason: "an entry there does not check, in a store that was closed cleanly"}
	}
	if off < c.reach {
		return &DamageError{File: path, Offset: off, Reason: fmt.Sprintf(
			"an entry there does not check, and committed writes point at values up to byte %d: badger would cut the file there and drop them", c.reach)}
	}
	from, need := off+1, 1
	if c.wal {
		need = c.fins
	} else {
		from = off + 1 + c.slack
	}
	at, found, err := r.findIntact(from, c.wal, need)
	if err != nil || !found {
		return err
	}
	what := fmt.Sprintf("an entry that checks follows at byte %d", at)
	if c.wal {
		what = fmt.Sprintf("committed transactions follow it (the %s ending at byte %d)", ordinal(need), at)
	}
	return &DamageError{File: path, Offset: off, Reason: fmt.Sprintf(
		"an entry there does not check, and %s: badger would cut the file there and drop them", what)}
}

func ordinal(n int) string {
	if n == 1 {
		return "first"
	}
	return "second"
}

// findIntact scans from off to the end for the start of an entry that
// checks: the need-th closing entry of a transaction (wal) or a value
// entry. Candidates are picked by their first bytes, so a scan of zeros or
// of encrypted bytes costs little.
func (r *logReader) findIntact(off int64, wal bool, need int) (int64, bool, error) {
	var blk []byte
	found := 0
	for base := off; base < r.size; base += scanBlock {
		b, err := r.at(base, scanBlock+2)
		if err != nil {
			return 0, false, err
		}
		blk = append(blk[:0], b...) // r.entry below moves r's window
		for i := 0; i+2 < len(blk) && i < scanBlock; i++ {
			if wal {
				if blk[i]&bitFinTxn == 0 || blk[i+1] != 0 || int(blk[i+2]) != finKeyLen {
					continue
				}
			} else if blk[i] != 0 || blk[i+1] != 0 || blk[i+2] < 9 || blk[i+2] >= 0x80 {
				continue
			}
			at := base + int64(i)
			meta, klen, _, state, err := r.entry(at)
			if err != nil {
				return 0, false, err
			}
			if state == entryOK && (!wal || (meta&bitFinTxn != 0 && klen == uint64(finKeyLen))) {
				if found++; found >= need {
					return at, true, nil
				}
			}
		}
	}
	return 0, false, nil
}

// walReach returns how far the entries of the memtable logs mems point into
// the value log fid: the end of the furthest value they name. An entry
// whose value is in the value log holds a pointer (file, length, offset:
// three uint32 in the machine's order, little-endian on every platform
// fieldsync is built for), encrypted with the rest of its key and value
// under the log's data key (the file header's key id) and an IV of the
// header's base IV and the entry's offset.
func walReach(mems []string, fid uint32, kr *badger.KeyRegistry) (int64, error) {
	var reach int64
	for _, path := range mems {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return 0, err
		}
		r := &logReader{f: f, size: fi.Size()}
		hdr, err := r.at(0, logFileHeader)
		if err != nil || len(hdr) < logFileHeader {
			f.Close()
			return 0, err // checkLogFile reports a short file
		}
		keyID, baseIV := binary.BigEndian.Uint64(hdr[:8]), append([]byte(nil), hdr[8:20]...)
		dk, err := kr.DataKey(keyID)
		if err != nil {
			f.Close()
			return 0, &DamageError{File: path, Offset: 0, Reason: fmt.Sprintf("its data key %d is not in the key registry", keyID)}
		}
		for off := int64(logFileHeader); ; {
			meta, klen, vlen, hlen, size, state, err := r.entryParts(off)
			if err != nil {
				f.Close()
				return 0, err
			}
			if state != entryOK {
				break
			}
			if meta&bitValuePointer != 0 && vlen >= 12 {
				b, err := r.at(off, int(size))
				if err != nil {
					f.Close()
					return 0, err
				}
				kv := b[hlen : hlen+int(klen+vlen)]
				if dk != nil {
					iv := make([]byte, 16)
					copy(iv, baseIV)
					binary.BigEndian.PutUint32(iv[12:], uint32(off))
					if kv, err = y.XORBlockAllocate(kv, dk.Data, iv); err != nil {
						f.Close()
						return 0, err
					}
				}
				v := kv[klen:]
				if binary.LittleEndian.Uint32(v[0:]) == fid {
					reach = max(reach, int64(binary.LittleEndian.Uint32(v[8:]))+int64(binary.LittleEndian.Uint32(v[4:])))
				}
			}
			off += size
		}
		f.Close()
	}
	return reach, nil
}

// checkManifest checks badger's MANIFEST: a magic and version, then change
// sets, each a big-endian length and CRC-32C, then the bytes.
//
// strict is for a store closed cleanly: then no append was cut.
func checkManifest(path string, strict bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	damaged := func(off int, reason string) error {
		return &DamageError{File: path, Offset: int64(off), Reason: reason}
	}
	if len(b) < 8 {
		return damaged(len(b), "shorter than its 8-byte magic and version")
	}
	for off, first := 8, true; off < len(b); first = false {
		rest := len(b) - off
		if rest < 8 {
			if first || strict {
				return damaged(off, "its first change set is cut short (badger writes that one whole, by a rename)")
			}
			return nil // an append cut by a crash: badger drops it, rightly
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		body := b[off+8:]
		if n > len(body) {
			if first || strict {
				return damaged(off, "its first change set is cut short (badger writes that one whole, by a rename)")
			}
			if lengthDamaged(b[off:off+4], body, sum) {
				return damaged(off, "the length of a change set is damaged: badger would drop it and every table it lists")
			}
			return nil // an append cut by a crash
		}
		if crc32.Checksum(body[:n], castagnoli) != sum {
			return damaged(off, "a change set does not match its checksum")
		}
		off += 8 + n
	}
	return nil
}

// lengthDamaged reports whether some value of one byte of the length field
// makes body's prefix match sum: the change set is whole, only its length
// is wrong.
func lengthDamaged(field, body []byte, sum uint32) bool {
	var l [4]byte
	for i := range 4 {
		for v := range 256 {
			copy(l[:], field)
			l[i] = byte(v)
			if n := int(binary.BigEndian.Uint32(l[:])); n <= len(body) && crc32.Checksum(body[:n], castagnoli) == sum {
				return true
			}
		}
	}
	return false
}

// verifyTables checks every table the MANIFEST lists, whole, with
// badger's own table code, before badger opens them: its footer, its index
// and every block against their checksums. badger's own check at open
// cannot be used: it dereferences a nil block on the first checksum that
// fails and panics, as it does on a footer it cannot follow (both in a
// goroutine of its own, where no recover reaches). Here the panic is
// recovered and the table named. A table the MANIFEST does not list is a
// leftover badger deletes; a missing one badger reports.
func verifyTables(o Options, kr *badger.KeyRegistry) error {
	dir := o.Dir
	fp, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer fp.Close()
	var failed atomic.Bool
	m, _, err := badger.ReplayManifestFile(fp, 0, o.badgerOptions(&failed))
	if err != nil {
		return &DamageError{File: fp.Name(), Offset: -1, Reason: err.Error()}
	}
	if len(m.Tables) == 0 {
		return nil
	}
	cache, err := ristretto.NewCache(&ristretto.Config[uint64, *fb.TableIndex]{NumCounters: 1000, MaxCost: 4 << 20, BufferItems: 64})
	if err != nil {
		return err
	}
	defer cache.Close()
	ids := make([]uint64, 0, len(m.Tables))
	for id := range m.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tm := m.Tables[id]
		dk, err := kr.DataKey(tm.KeyID)
		if err != nil {
			return &DamageError{File: filepath.Join(dir, badger.KeyRegistryFileName), Offset: -1,
				Reason: fmt.Sprintf("no data key %d for table %d: %v", tm.KeyID, id, err)}
		}
		if err := verifyTable(table.NewFilename(id, dir), table.Options{ReadOnly: true, ChkMode: options.OnTableAndBlockRead,
			DataKey: dk, Compression: tm.Compression, IndexCache: cache}); err != nil {
			return err
		}
	}
	return nil
}

// verifyTable opens one table read-only, which reads its footer and index
// and verifies every block (opts.ChkMode), and closes it.
func verifyTable(path string, opts table.Options) (err error) {
	if info, err := os.Stat(path); err == nil && info.Size() == 0 {
		return &DamageError{File: path, Offset: 0, Reason: "empty"}
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // badger says which table is missing
	}
	if err != nil {
		return fmt.Errorf("open table %s: %w", path, err)
	}
	opened := false
	defer func() {
		if p := recover(); p != nil {
			err = &DamageError{File: path, Offset: -1, Reason: "it does not match its checksums (badger could not read it)"}
		}
		if !opened {
			_ = mf.Close(-1)
		}
	}()
	t, err := table.OpenTable(mf, opts)
	if err != nil {
		opened = true // OpenTable closes the file when it fails
		return &DamageError{File: path, Offset: -1, Reason: err.Error()}
	}
	// Close the mapping only: releasing the table (DecrRef) would delete
	// its file.
	opened = true
	return t.MmapFile.Close(-1)
}

// checkFiles checks the files of the store in o.Dir that badger would
// misread or cut: every memtable log, the newest value log, the MANIFEST
// and every table. Called under badger's directory lock, after
// removeEmptyLogs.
func checkFiles(o Options, strict bool) error {
	dir := o.Dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	kr, err := openKeyRegistry(o)
	if err != nil {
		return err
	}
	defer kr.Close()
	newest := map[string]int{".vlog": -1, ".mem": -1}
	var mems []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		for suffix := range newest {
			if num, ok := strings.CutSuffix(name, suffix); ok {
				if fid, err := strconv.Atoi(num); err == nil {
					newest[suffix] = max(newest[suffix], fid)
					if suffix == ".mem" {
						mems = append(mems, name)
					}
				}
			}
		}
	}
	var memPaths []string
	for _, name := range mems {
		memPaths = append(memPaths, filepath.Join(dir, name))
		c := logCheck{wal: true, fins: 1, strict: strict}
		if fid, _ := strconv.Atoi(strings.TrimSuffix(name, ".mem")); fid == newest[".mem"] {
			c.fins = 2 // the active memtable's last transaction may be the unsynced one
		}
		if err := checkLogFile(filepath.Join(dir, name), c); err != nil {
			return err
		}
	}
	if fid := newest[".vlog"]; fid >= 0 {
		// One batch of transactions can hold 15% of a memtable (badger's
		// limit) and badger may batch a few: twice that.
		reach, err := walReach(memPaths, uint32(fid), kr)
		if err != nil {
			return err
		}
		c := logCheck{slack: 2 * (15 * o.MemTableSize / 100), strict: strict, reach: reach}
		if err := checkLogFile(filepath.Join(dir, fmt.Sprintf("%06d.vlog", fid)), c); err != nil {
			return err
		}
	}
	if err := checkManifest(filepath.Join(dir, "MANIFEST"), strict); err != nil {
		return err
	}
	return verifyTables(o, kr)
}

// openKeyRegistry opens badger's key registry read-only, for the data keys
// of log files and tables.
func openKeyRegistry(o Options) (*badger.KeyRegistry, error) {
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: o.Dir, ReadOnly: true, EncryptionKey: o.EncryptionKey,
		EncryptionKeyRotationDuration: keyRotation})
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		// The passphrase was checked by then (the vault's AEAD), so a
		// mismatch can also mean a damaged key registry.
		return nil, fmt.Errorf("%w (or its KEYREGISTRY file is damaged)", ErrKeyMismatch)
	}
	if err != nil {
		return nil, &DamageError{File: filepath.Join(o.Dir, badger.KeyRegistryFileName), Offset: -1, Reason: err.Error()}
	}
	return kr, nil
}
