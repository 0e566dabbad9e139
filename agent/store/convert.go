package store

import (
	"github.com/dgraph-io/badger/v4"

	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
)

// Copy copies every key of the store at src into a new store at dst, each
// opened with its own options (so a plain store can be rewritten
// encrypted). It streams through a pipe: nothing is staged on disk in
// clear. dst must not hold a store yet. Neither store may be open
// elsewhere. src is opened read-only and never changed, so a copy cut short
// leaves it as it was (opening it for writing makes badger create a new
// value-log file, which a kill at that moment leaves unopenable).
func Copy(src, dst Options) (keys uint64, err error) {
	if err := src.validate(); err != nil {
		return 0, fmt.Errorf("copy store: source: %w", err)
	}
	if err := dst.validate(); err != nil {
		return 0, fmt.Errorf("copy store: destination: %w", err)
	}
	var srcFailed, dstFailed atomic.Bool
	// An empty log file left by a kill of an earlier open makes badger
	// refuse even a read-only open (deleting it changes nothing held), and
	// a damaged file would be copied short.
	if err := prepareFiles(src); err != nil {
		return 0, fmt.Errorf("copy store: %w", err)
	}
	in, err := openBadger(src.badgerOptions(&srcFailed).WithReadOnly(true))
	if err != nil {
		return 0, fmt.Errorf("copy store: open %s: %w", src.Dir, err)
	}
	defer in.Close()
	out, err := openBadger(dst.badgerOptions(&dstFailed))
	if err != nil {
		return 0, fmt.Errorf("copy store: open %s: %w", dst.Dir, err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := in.Backup(pw, 0)
		pw.CloseWithError(err)
		done <- err
	}()
	loadErr := out.Load(pr, 64)
	_ = pr.CloseWithError(errors.New("load ended"))
	backupErr := <-done
	var packErr error
	if backupErr == nil && loadErr == nil {
		packErr = copyPacks(src, dst, out)
	}
	closeErr := out.Close()
	if err := errors.Join(backupErr, loadErr, packErr, closeErr); err != nil {
		return 0, fmt.Errorf("copy store %s to %s: %w", src.Dir, dst.Dir, err)
	}
	if dstFailed.Load() {
		return 0, fmt.Errorf("copy store to %s: a write did not reach the disk", dst.Dir)
	}
	return countKeys(dst)
}

// copyPacks reseals the chunks of src's packs into dst's under dst's key,
// and points the copied b/ keys of out (dst's badger, holding src's
// pointers after the load) at them: badger's copy moved the pointers, not
// the bytes.
func copyPacks(src, dst Options, out *badger.DB) error {
	from, err := openPacks(filepath.Join(src.Dir, packDirName), src.EncryptionKey)
	if err != nil {
		return err
	}
	defer from.close()
	to, err := openPacks(filepath.Join(dst.Dir, packDirName), dst.EncryptionKey)
	if err != nil {
		return err
	}
	defer to.close()
	var todo []packedChunk
	err = out.View(func(txn *badger.Txn) error {
		var err error
		todo, err = packedChunks(txn, func(packPtr) bool { return true })
		return err
	})
	if err != nil {
		return err
	}
	return repack(from, to, todo, func(batch []ChunkData, ptrs []packPtr) error {
		wb := out.NewWriteBatch()
		for i, p := range ptrs {
			if err := wb.Set(packedKey(batch[i].Hash), p.bytes()); err != nil {
				wb.Cancel()
				return err
			}
		}
		return wb.Flush()
	})
}

// countKeys counts the keys of a closed store.
func countKeys(o Options) (uint64, error) {
	var failed atomic.Bool
	db, err := openBadger(o.badgerOptions(&failed).WithReadOnly(true))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n uint64
	txn := db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(iterOptionsKeysOnly())
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n, nil
}

func iterOptionsKeysOnly() badger.IteratorOptions {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	return o
}

func openBadger(o badger.Options) (*badger.DB, error) {
	db, err := badger.Open(o)
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return nil, ErrKeyMismatch
	}
	return db, err
}
