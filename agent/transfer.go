package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/agent/xfer"
)

// The transfer of attachment chunks between peers (protocol.md, Attachment
// chunks). Every session asks its peer for the chunks this agent lacks, as
// the scheduler (agent/xfer) hands them out: in priority order, each chunk
// of one peer at a time, at most a window per peer. It answers the peer's
// requests once it has no ops left to send it, so dossiers go first.

// newFiles collects the files of manifests the store indexed (from the
// store's AttachmentFile hook, under its write lock) until changed() hands
// them to the scheduler.
type newFiles struct {
	mu    sync.Mutex
	files map[[32]byte]bool
}

func (n *newFiles) note(f [32]byte) {
	n.mu.Lock()
	if n.files == nil {
		n.files = map[[32]byte]bool{}
	}
	n.files[f] = true
	n.mu.Unlock()
}

func (n *newFiles) take() [][32]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.files) == 0 {
		return nil
	}
	out := make([][32]byte, 0, len(n.files))
	for f := range n.files {
		out = append(out, f)
	}
	n.files = nil
	return out
}

// attachmentHook is the store's AttachmentFile: attachmentFile, noting the
// file for the transfer.
func (a *Agent) attachmentHook(field, value string) ([32]byte, bool) {
	f, ok := attachmentFile(field, value)
	if ok {
		a.fresh.note(f)
	}
	return f, ok
}

// loadTransfers registers every manifest held with the scheduler, at start.
func (a *Agent) loadTransfers() error {
	return a.store.Manifests(func(file [32]byte, value string, wall int64) error {
		return a.addTransfer(value, wall)
	})
}

// takeNewFiles registers the manifests indexed since the last call.
func (a *Agent) takeNewFiles() {
	for _, f := range a.fresh.take() {
		value, found, err := a.store.Manifest(f)
		if err != nil || !found {
			continue // not committed, or the store is closing
		}
		wall, _, err := a.store.ManifestTime(f)
		if err != nil {
			continue
		}
		if err := a.addTransfer(value, wall); err != nil && !errors.Is(err, store.ErrClosed) {
			a.log.Warn("attachment transfer", "err", err)
		}
	}
}

func (a *Agent) addTransfer(value string, wall int64) error {
	m, err := attach.DecodeFieldValue(value)
	if err != nil {
		return nil // never indexed by a replica: AttachmentFile refuses it
	}
	// A file pruned after delivery is not fetched again: the hub holds it.
	if pruned, err := a.store.IsPruned(m.SHA256); err != nil || pruned {
		return err
	}
	missing, err := a.store.MissingChunks(m.Chunks)
	if err != nil {
		return err
	}
	a.xfer.Add(xfer.File{Manifest: m, Time: wall}, missing)
	return nil
}

// attachmentStatus is status' attachments part.
func (a *Agent) attachmentStatus() api.AttachmentStatus {
	st := a.xfer.Stats()
	pending := map[string]int64{}
	for k, n := range st.PendingBytes {
		pending[string(k)] = n
	}
	return api.AttachmentStatus{PendingBytes: pending, Complete: st.Complete, Incomplete: st.Incomplete,
		RefusedChunks: st.Refused, ReceivedChunks: st.Received, InFlight: st.InFlight, Storing: st.Storing,
		PrunedBytes: a.prunedBytes()}
}

// xferKey names the session's peer to the scheduler.
func (s *session) xferKey() string {
	if s.second {
		return s.peer.PeerID + "#2"
	}
	return s.peer.PeerID
}

// takeWant queues the peer's request for the writer loop. A peer asking
// for more than MaxQueuedWants at once is not served beyond that: it
// waits for its own timeout.
func (s *session) takeWant(w *wire.Want) {
	s.chunkMu.Lock()
	for _, h := range w.Hashes {
		if len(s.wants) >= maxQueuedWants {
			break
		}
		s.wants = append(s.wants, [32]byte(h))
	}
	s.chunkMu.Unlock()
	s.wake()
}

const maxQueuedWants = 2 * xfer.DefaultWindow

// opsFirstFor: how long a session that still lacks ops the peer holds waits
// for another batch before it asks for chunks anyway.
const opsFirstFor = 5 * time.Second

// takeChunk handles a chunk frame: refused unless this session asked the
// peer for it; otherwise handed to the chunk sink, which checks it against
// its hash and stores it with others in one commit (keepChunks). It leaves
// the peer's window as it arrives, so the peer is asked for more while it
// is being stored. Blocks while the sink's queue is full: a slow disk slows
// the link, it does not grow memory.
func (s *session) takeChunk(c *wire.Chunk) error {
	a := s.a
	h := [32]byte(c.Hash)
	key := s.xferKey()
	if len(c.Data) == 0 {
		if !a.xfer.Asked(key, h) {
			a.xfer.Refused()
			a.log.Warn("refused chunk: not asked of this peer", "peer", s.peer.Name, "chunk", shortHash(h))
			return nil
		}
		a.xfer.Lacks(key, h, time.Now())
		s.wake()
		return nil
	}
	if !a.xfer.Arrived(key, h) {
		a.xfer.Refused()
		a.log.Warn("refused chunk: not asked of this peer", "peer", s.peer.Name, "chunk", shortHash(h))
		return nil
	}
	s.wake() // room in the window: ask for the next
	select {
	case a.chunkIn <- arrivedChunk{s: s, key: key, hash: h, data: c.Data}:
		return nil
	case <-a.stop:
		return errStopping
	}
}

// arrivedChunk is a chunk a session received, asked for, on its way to the
// store.
type arrivedChunk struct {
	s    *session
	key  string // the session's scheduler key
	hash [32]byte
	data []byte
}

// Group commit of received chunks. Storing each chunk in its own commit
// cost a sync to disk per chunk (64 KiB, a fingerprint's ~20 KB), which held
// a transfer to about 30 MB/s; the sink takes whatever chunks are queued
// when it is free, up to sinkBatchChunks or sinkBatchBytes, and stores them
// in one commit. Under a light load a batch is one chunk, as before; under a
// heavy one the batches grow, and so does throughput (docs/performance.md,
// Attachments).
const (
	// sinkQueue is how many received chunks may wait for the sink: 256,
	// at most 16 MiB (about 8 MiB with the chunks of photos and fingerprint
	// templates), beside one batch being stored. When it is full, sessions
	// stop reading: a slow disk slows the link instead of growing memory.
	sinkQueue = 256
	// sinkBatchChunks and sinkBatchBytes bound one batch: 256 chunks, 8
	// MiB (store.MaxChunkBatch, one write and sync of a chunk pack and one
	// commit of their pointers). The fixed cost of a sync is paid per
	// batch whatever its size (this machine's disk takes 2 MiB writes
	// each synced at 163 MB/s and 8 MiB ones at 711 MB/s), so a batch is
	// bounded by bytes, and the count is high enough that a batch of 20 KB
	// fingerprint chunks still reaches several MiB.
	sinkBatchChunks = 256
	sinkBatchBytes  = store.MaxChunkBatch
	// sinkWorkers: two sinks take batches from the queue, so that one
	// seals its batch (AES-GCM, outside the store's writers' lock) while
	// the other's is written and synced.
	sinkWorkers = 2
)

// chunkSink stores the chunks sessions received, in batches, until the
// agent stops; sinkWorkers of them run. Chunks still queued then are dropped: the scheduler that
// asked for them goes with the agent, and the next start asks again for
// every chunk not held.
func (a *Agent) chunkSink() {
	batch := make([]arrivedChunk, 0, sinkBatchChunks)
	for {
		batch = batch[:0]
		select {
		case c := <-a.chunkIn:
			batch = append(batch, c)
		case <-a.stop:
			return
		}
		size := len(batch[0].data)
	fill:
		for len(batch) < sinkBatchChunks && size < sinkBatchBytes {
			select {
			case c := <-a.chunkIn:
				batch = append(batch, c)
				size += len(c.data)
			default:
				break fill
			}
		}
		a.keepChunks(batch)
	}
}

// keepChunks stores a batch of arrived chunks in one commit
// (store.PutChunks, which checks each against its hash first), and only
// then tells the scheduler each is held: a chunk the scheduler counts as
// held is durable. A chunk whose bytes do not match is refused and asked of
// another peer. When the store fails, the chunks are wanted again and the
// sessions that brought them end, as a failed ingest ends its session.
func (a *Agent) keepChunks(batch []arrivedChunk) {
	in := make([]store.ChunkData, len(batch))
	for i, c := range batch {
		in[i] = store.ChunkData{Hash: c.hash, Data: c.data}
	}
	bad, err := a.store.PutChunks(in)
	if err != nil {
		ended := map[*session]bool{}
		for _, c := range batch {
			a.xfer.Lost(c.hash)
			if !ended[c.s] {
				ended[c.s] = true
				c.s.stream.Reset()
			}
		}
		if !errors.Is(err, store.ErrClosed) {
			a.log.Warn("attachment chunks not stored", "chunks", len(batch), "err", err)
		}
		return
	}
	now := time.Now()
	refused := make(map[int]bool, len(bad))
	for _, i := range bad {
		c := batch[i]
		refused[i] = true
		a.xfer.Refused()
		a.xfer.Lacks(c.key, c.hash, now)
		a.log.Warn("refused chunk: bytes do not match the hash asked for", "peer", c.s.peer.Name, "chunk", shortHash(c.hash))
	}
	for i, c := range batch {
		if !refused[i] {
			a.xfer.Got(c.key, c.hash)
			c.s.chunksIn.Add(1)
		}
	}
	if a.isHub && len(bad) < len(batch) {
		a.kickReceipts() // a file may be whole: export it, receipt it
	}
	if len(bad) > 0 {
		a.wakeSessions() // ask another peer
	}
}

func shortHash(h [32]byte) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 12)
	for i := range 6 {
		b[2*i], b[2*i+1] = hex[h[i]>>4], hex[h[i]&15]
	}
	return string(b)
}

// pushChunks answers the peer's requests, once no op is left to send it,
// then asks it for what this agent lacks. Writer loop only.
func (s *session) pushChunks() error {
	a := s.a
	s.mu.Lock()
	ready := s.sm.Ready()
	unsent := s.sm.Unsent(a.store.VersionVector())
	s.mu.Unlock()
	if !ready {
		return nil
	}
	if !unsent {
		for {
			s.chunkMu.Lock()
			if len(s.wants) == 0 {
				s.chunkMu.Unlock()
				break
			}
			h := s.wants[0]
			s.wants = s.wants[1:]
			s.chunkMu.Unlock()
			c := &wire.Chunk{Hash: h[:]}
			data, err := a.store.Chunk(h)
			switch {
			case err == nil:
				c.Data = data
			case !errors.Is(err, store.ErrNoChunk):
				return err
			}
			if err := s.send(&wire.Message{Chunk: c}); err != nil {
				return err
			}
			if len(c.Data) > 0 {
				s.chunksOut.Add(1)
			}
			// Acks must not wait behind a run of chunks, nor ops written
			// meanwhile: the rest of the run waits for them.
			if err := s.flushAcks(); err != nil {
				return err
			}
			s.mu.Lock()
			unsent = s.sm.Unsent(a.store.VersionVector())
			s.mu.Unlock()
			if unsent {
				s.wake()
				break
			}
		}
	}
	if !s.peerChunks.Load() {
		return nil
	}
	// Dossiers first: ask for chunks once this agent holds the ops the peer
	// has, or once the peer has sent no batch for a while (it holds ops
	// this agent refuses, a revoked origin's, and will not send them).
	s.mu.Lock()
	behind := s.sm.Behind(a.store.VersionVector())
	s.mu.Unlock()
	if behind && time.Since(time.Unix(0, s.lastBatch.Load())) < opsFirstFor {
		return nil
	}
	hashes := a.xfer.Next(s.xferKey(), time.Now())
	if len(hashes) == 0 {
		return nil
	}
	w := &wire.Want{Hashes: make([][]byte, len(hashes))}
	for i := range hashes {
		w.Hashes[i] = hashes[i][:]
	}
	return s.send(&wire.Message{Want: w})
}
