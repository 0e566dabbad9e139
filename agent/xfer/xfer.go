// Package xfer schedules the transfer of attachment chunks between peers:
// which chunks this replica still lacks (those of the manifests it holds),
// in which order to ask for them, and which peer is asked for which. It does
// no I/O: the agent's sessions ask it what to request next, and report what
// arrived, what a peer said it does not hold, and when a session ends.
//
// Rules:
//   - Order: fingerprints before photos before documents; within a kind the
//     oldest manifest first (by its op's time, then its file hash), and a
//     file's chunks in their order.
//   - A chunk is asked of one peer at a time: never of two at once.
//   - A peer is not asked for a chunk it said it lacks, for LackFor; after
//     that it may have got it and is asked again.
//   - Each peer has at most Window chunks asked and not arrived, so a
//     session holds at most Window × 64 KiB on the wire and a cut link loses
//     at most that. A request unanswered for Timeout is given up, so a silent
//     peer does not keep a chunk from the others.
//   - A chunk that has arrived (Arrived) leaves its peer's window at once,
//     while the agent checks and stores it, and is asked of no one until it
//     is settled: held (Got), refused (Lacks) or not kept (Lost). Storing
//     in batches therefore never stalls the link, and a chunk being stored
//     when its session ends is not asked again elsewhere.
//
// Chunks are content-addressed and each is kept as soon as it is verified
// and stored, so a transfer cut at any point resumes from whatever peer
// holds the rest.
package xfer

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
)

// Hash is a chunk's SHA-256.
type Hash = [32]byte

// Defaults.
const (
	DefaultWindow  = 8
	DefaultLackFor = time.Second
	DefaultTimeout = 30 * time.Second
)

// Rank is the order of kinds: fingerprints first, then photos, then
// documents.
func Rank(k attach.Kind) int {
	switch k {
	case attach.KindFingerprint:
		return 0
	case attach.KindPhoto:
		return 1
	default:
		return 2
	}
}

// File is one manifest the replica holds.
type File struct {
	Manifest attach.Manifest
	// Time orders files of one kind: the manifest op's wall time in ms.
	Time int64
}

type chunk struct {
	hash  Hash
	size  int64
	kind  attach.Kind
	time  int64
	file  Hash
	index int
}

type flight struct {
	peer  string
	since time.Time
}

// Scheduler is safe for concurrent use.
type Scheduler struct {
	Window  int
	LackFor time.Duration
	Timeout time.Duration

	mu       sync.Mutex
	files    map[Hash]int    // file → chunks still missing (complete files are 0)
	owners   map[Hash][]Hash // missing chunk → the files listing it
	want     map[Hash]*chunk // missing chunks
	order    []*chunk        // want, sorted, and chunks no longer wanted (stale)
	dirty    bool            // order needs a sort
	stale    int             // entries of order no longer wanted
	pending  map[attach.Kind]int64
	unfilled int             // files with a chunk missing
	inflight map[Hash]flight // asked, unanswered
	arrived  map[Hash]bool   // arrived, being stored: asked of no one
	perPeer  map[string]int  // in flight per peer
	lacks    map[string]map[Hash]time.Time
	refused  uint64
	received uint64
}

// New returns a scheduler with the default window, lack and timeout.
func New() *Scheduler {
	return &Scheduler{
		Window: DefaultWindow, LackFor: DefaultLackFor, Timeout: DefaultTimeout,
		files: map[Hash]int{}, pending: map[attach.Kind]int64{}, owners: map[Hash][]Hash{}, want: map[Hash]*chunk{},
		inflight: map[Hash]flight{}, arrived: map[Hash]bool{}, perPeer: map[string]int{}, lacks: map[string]map[Hash]time.Time{},
	}
}

// Add registers a file and the chunks of it not held (missing, a subset of
// its manifest's chunks). A file already known is ignored.
func (s *Scheduler) Add(f File, missing []Hash) {
	m := f.Manifest
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[m.SHA256]; ok {
		return
	}
	miss := map[Hash]bool{}
	for _, h := range missing {
		miss[h] = true
	}
	var counted []Hash // the file's chunks it waits for: owners below
	for i, h := range m.Chunks {
		if !miss[h] {
			continue
		}
		delete(miss, h) // a hash twice in one file counts once
		counted = append(counted, h)
		size := int64(attach.ChunkSize)
		if i == len(m.Chunks)-1 {
			size = m.Size - int64(i)*attach.ChunkSize
		}
		if c := s.want[h]; c != nil {
			if before(Rank(m.Kind), f.Time, m.SHA256, i, c) {
				s.pending[c.kind] -= c.size
				s.pending[m.Kind] += c.size
				c.kind, c.time, c.file, c.index = m.Kind, f.Time, m.SHA256, i
				s.dirty = true
			}
			continue
		}
		c := &chunk{hash: h, size: size, kind: m.Kind, time: f.Time, file: m.SHA256, index: i}
		s.want[h] = c
		s.pending[m.Kind] += size
		s.order = append(s.order, c)
		s.dirty = true
	}
	s.files[m.SHA256] = len(counted)
	if len(counted) > 0 {
		s.unfilled++
	}
	// Only the chunks the file counts: a chunk of it that the caller found
	// held (stored, and the scheduler not told yet) must not count it down
	// when the scheduler is told.
	for _, h := range counted {
		s.owners[h] = append(s.owners[h], m.SHA256)
	}
}

func before(rank int, t int64, file Hash, index int, c *chunk) bool {
	if r := Rank(c.kind); rank != r {
		return rank < r
	}
	if t != c.time {
		return t < c.time
	}
	if d := cmp.Compare(string(file[:]), string(c.file[:])); d != 0 {
		return d < 0
	}
	return index < c.index
}

// compactAfter is how many stale entries order may hold before Next drops
// them: each Next walks past the stale entries at the front of the order,
// each drop walks the whole order once.
const compactAfter = 256

// sortLocked drops the stale entries of order and sorts it, if chunks were
// added since the last sort; else it only drops them, once they are many.
// Removing a held chunk leaves it stale in order rather than sorting again,
// which cost a sort of every missing chunk per chunk received.
func (s *Scheduler) sortLocked() {
	if !s.dirty {
		if s.stale > compactAfter {
			s.order = slices.DeleteFunc(s.order, func(c *chunk) bool { return s.want[c.hash] != c })
			s.stale = 0
		}
		return
	}
	s.order = slices.DeleteFunc(s.order, func(c *chunk) bool { return s.want[c.hash] != c })
	s.stale = 0
	slices.SortFunc(s.order, func(x, y *chunk) int {
		if before(Rank(x.kind), x.time, x.file, x.index, y) {
			return -1
		}
		if before(Rank(y.kind), y.time, y.file, y.index, x) {
			return 1
		}
		return 0
	})
	s.dirty = false
}

// Next returns the chunks to ask peer for now, in order: at most the room
// left in its window, none in flight elsewhere or being stored, none it
// said it lacks recently. They count as in flight to peer until Arrived,
// Got, Lacks or Drop.
func (s *Scheduler) Next(peer string, now time.Time) []Hash {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	room := s.Window - s.perPeer[peer]
	if room <= 0 || len(s.want) == 0 {
		return nil
	}
	s.sortLocked()
	lacks := s.lacks[peer]
	var out []Hash
	for _, c := range s.order {
		if len(out) == room {
			break
		}
		if s.want[c.hash] != c {
			continue
		}
		if _, busy := s.inflight[c.hash]; busy || s.arrived[c.hash] {
			continue
		}
		if t, ok := lacks[c.hash]; ok && now.Sub(t) < s.LackFor {
			continue
		}
		s.inflight[c.hash] = flight{peer: peer, since: now}
		out = append(out, c.hash)
	}
	s.perPeer[peer] += len(out)
	return out
}

// expireLocked gives up requests unanswered for Timeout.
func (s *Scheduler) expireLocked(now time.Time) {
	for h, f := range s.inflight {
		if now.Sub(f.since) >= s.Timeout {
			s.releaseLocked(h, f.peer)
		}
	}
}

func (s *Scheduler) releaseLocked(h Hash, peer string) {
	delete(s.inflight, h)
	if s.perPeer[peer]--; s.perPeer[peer] <= 0 {
		delete(s.perPeer, peer)
	}
}

// Asked reports whether h is in flight to peer: a chunk that is not was not
// asked of it, and is refused.
func (s *Scheduler) Asked(peer string, h Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.inflight[h]
	return ok && f.peer == peer
}

// Arrived records that h, asked of peer, has arrived and is being checked
// and stored: it leaves peer's window, so peer may be asked for more, and
// is asked of no one until Got, Lacks or Lost. It reports false, changing
// nothing, when h is not in flight to peer: a chunk not asked of it, which
// the caller refuses.
func (s *Scheduler) Arrived(peer string, h Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.inflight[h]
	if !ok || f.peer != peer {
		return false
	}
	s.releaseLocked(h, peer)
	if _, wanted := s.want[h]; wanted {
		s.arrived[h] = true
	}
	return true
}

// Got records that h, asked of peer (arrived or not), is now held: verified
// and durable.
func (s *Scheduler) Got(peer string, h Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inflight[h]; ok && f.peer == peer {
		s.releaseLocked(h, peer)
	}
	delete(s.arrived, h)
	s.heldLocked(h)
	s.received++
}

// Lost records that an arrived chunk was not kept (the store failed to
// write it): it is wanted again, from any peer.
func (s *Scheduler) Lost(h Hash) {
	s.mu.Lock()
	delete(s.arrived, h)
	s.mu.Unlock()
}

// Held records that h is held, however it came (a local upload too).
func (s *Scheduler) Held(h Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inflight[h]; ok {
		s.releaseLocked(h, f.peer)
	}
	delete(s.arrived, h)
	s.heldLocked(h)
}

func (s *Scheduler) heldLocked(h Hash) {
	c, ok := s.want[h]
	if !ok {
		return
	}
	delete(s.want, h)
	s.pending[c.kind] -= c.size
	s.stale++
	for _, f := range s.owners[h] {
		if s.files[f] > 0 {
			if s.files[f]--; s.files[f] == 0 {
				s.unfilled--
			}
		}
	}
	delete(s.owners, h)
}

// Lacks records that peer does not hold h (it said so, or sent bytes that
// do not match, in flight or arrived): h is asked of another peer, and of
// this one again only after LackFor.
func (s *Scheduler) Lacks(peer string, h Hash, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inflight[h]; ok && f.peer == peer {
		s.releaseLocked(h, peer)
	}
	delete(s.arrived, h)
	if s.lacks[peer] == nil {
		s.lacks[peer] = map[Hash]time.Time{}
	}
	s.lacks[peer][h] = now
}

// Refused counts a chunk refused: not asked of that peer, or not matching.
func (s *Scheduler) Refused() {
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
}

// Drop forgets a peer whose session ended: what was in flight to it may be
// asked of others. Chunks that arrived from it are still being stored and
// stay so.
func (s *Scheduler) Drop(peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, f := range s.inflight {
		if f.peer == peer {
			s.releaseLocked(h, peer)
		}
	}
	delete(s.perPeer, peer)
	delete(s.lacks, peer)
}

// Wanted reports whether some chunk is still missing.
func (s *Scheduler) Wanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.want) > 0
}

// Stats is what status shows.
type Stats struct {
	// PendingBytes: bytes of missing chunks, by kind (a chunk shared by two
	// kinds counts for the first in order).
	PendingBytes map[attach.Kind]int64
	Complete     int // files held whole
	Incomplete   int // files with a chunk missing
	Refused      uint64
	Received     uint64 // chunks received from peers and kept
	InFlight     int    // asked of peers, not arrived
	Storing      int    // arrived, being checked and stored
}

// Stats returns the counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{PendingBytes: map[attach.Kind]int64{}, Refused: s.refused, Received: s.received,
		InFlight: len(s.inflight), Storing: len(s.arrived),
		Complete: len(s.files) - s.unfilled, Incomplete: s.unfilled}
	for _, k := range attach.Kinds {
		st.PendingBytes[k] = s.pending[k]
	}
	return st
}

// Whole reports whether file is a registered file whose every chunk is
// held. A file not registered yet (its manifest just committed) is not.
func (s *Scheduler) Whole(file Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.files[file]
	return ok && n == 0
}

// Forget stops wanting a file (its bytes were pruned after delivery): its
// missing chunks no other file lists are no longer asked for.
func (s *Scheduler) Forget(file Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.files[file]
	if !ok {
		return
	}
	if n > 0 {
		s.unfilled--
	}
	delete(s.files, file)
	for h, owners := range s.owners {
		i := slices.Index(owners, file)
		if i < 0 {
			continue
		}
		owners = slices.Delete(owners, i, i+1)
		if len(owners) > 0 {
			s.owners[h] = owners
			continue
		}
		delete(s.owners, h)
		if c, ok := s.want[h]; ok {
			s.pending[c.kind] -= c.size
			delete(s.want, h)
			s.stale++
		}
	}
}
