package store

import (
	"sync/atomic"
)

// trimEvery is how many bytes of values may pass through badger's mapped
// files (written or read) before the store hands the mapped pages back to the
// kernel: 16 MB.
//
// Why: badger writes and reads its value log through memory maps, so every
// dossier written or synced stays resident in this process (about 2 KB per
// dossier: the op and the record state), and resident memory grows with the
// data, past 250 MB at 100,000 dossiers, although the Go heap stays near 40
// MB. Those pages are clean copies of the files (every commit is synced); the
// kernel could drop them under pressure, but a laptop's owner sees them as the
// agent's memory. Paging them out keeps the agent's footprint bounded; the
// files stay in the kernel's page cache as long as it has room.
const trimEvery = 16 << 20

// trimmer counts bytes through the mapped files and trims when due.
type trimmer struct {
	dir     string
	touched atomic.Int64
	rounds  atomic.Int64
	trims   atomic.Int64
}

// note records n bytes through the mapped files and trims when due. Cheap
// when not due: one atomic add.
func (t *trimmer) note(n int) {
	if t.touched.Add(int64(n)) < trimEvery {
		return
	}
	t.touched.Store(0)
	// Every other time the table files too: they hold the keys (about
	// eight per dossier with the indexes) and are read on every lookup, so
	// they are kept resident longer than the value log.
	round := t.rounds.Add(1)
	if pageOutMapped(t.dir, round%2 == 0) {
		t.trims.Add(1)
	}
}

// Trim pages out every mapped page of the store's files now: for an idle
// moment (the agent's safety pass), so an agent that has gone quiet after a
// burst gives its memory back.
func (s *Store) Trim() { pageOutMapped(s.dir, true) }
