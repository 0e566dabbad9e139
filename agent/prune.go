package agent

import (
	"errors"

	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/store"
)

// With --prune-delivered, a laptop drops the bytes of the attachments a
// hub's receipt says it holds whole, keeping their manifests: a campaign's
// photos need not all fit on one laptop's disk. A chunk that a file still to
// deliver shares is kept. The safety pass runs it whenever the receipts
// changed, then the value log GC, so the disk space comes back at once.

// pruneDelivered runs one prune pass if the receipts changed since the
// last. Safety loop only.
func (a *Agent) pruneDelivered() {
	if !a.cfg.PruneDelivered {
		return
	}
	a.up.mu.Lock()
	version := a.up.version
	a.up.mu.Unlock()
	if version == a.prunedAt {
		return
	}
	freed, files, err := a.pruneOnce()
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			a.log.Warn("prune delivered attachments", "err", err)
		}
		return
	}
	a.prunedAt = version
	if files == 0 {
		return
	}
	a.log.Info("pruned delivered attachments: their bytes are safe at the hub", "files", files, "bytes_freed", freed)
	if n, err := a.store.CollectGarbage(0.5); err != nil {
		a.log.Warn("value log garbage collection", "err", err)
	} else {
		a.log.Info("reclaimed value log space", "files_rewritten", n)
	}
}

func (a *Agent) pruneOnce() (freed int64, files int, err error) {
	attached := a.safeAttached()
	done, err := a.store.Pruned()
	if err != nil {
		return 0, 0, err
	}
	manifest := func(file [32]byte) (attach.Manifest, bool) {
		m, ok, _ := a.indexedManifest(file)
		return m, ok
	}
	// What is still to deliver keeps its chunks.
	keepFile := map[[32]byte]bool{}
	keep := map[[32]byte]bool{}
	err = a.store.ManifestOpsAfter(attached, func(mo store.ManifestOp) bool {
		keepFile[mo.File] = true
		if m, ok := manifest(mo.File); ok {
			for _, h := range m.Chunks {
				keep[h] = true
			}
		}
		return true
	})
	if err != nil {
		return 0, 0, err
	}
	var prune [][32]byte
	chunks := map[[32]byte]int64{}
	for _, origin := range attached.Origins() {
		upTo := attached[origin]
		err := a.store.ManifestOps(origin, done[origin], func(mo store.ManifestOp) bool {
			if mo.Seq > upTo {
				return false
			}
			m, ok := manifest(mo.File)
			if !ok || keepFile[mo.File] {
				return true
			}
			prune = append(prune, mo.File)
			for i, h := range m.Chunks {
				if !keep[h] {
					chunks[h] = int64(m.ChunkLen(i))
				}
			}
			return true
		})
		if err != nil {
			return 0, 0, err
		}
	}
	if len(prune) > 0 {
		if freed, err = a.store.PruneFiles(prune, chunks); err != nil {
			return 0, 0, err
		}
		for _, f := range prune {
			a.xfer.Forget(f)
		}
	}
	if err := a.store.SetPruned(attached); err != nil {
		return freed, len(prune), err
	}
	return freed, len(prune), nil
}

// prunedBytes is status' attachments.pruned_bytes.
func (a *Agent) prunedBytes() int64 {
	n, err := a.store.PrunedBytes()
	if err != nil {
		return 0
	}
	return n
}
