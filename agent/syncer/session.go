package syncer

import (
	"slices"

	"github.com/fieldsync/fieldsync/crdt"
)

// Config bounds one session.
type Config struct {
	// Window is how many batches may be unacknowledged at once: enough to keep
	// the receiver's disk busy while the next batch is on the wire.
	Window int
	// MaxOps and MaxBytes bound one batch (ops and bytes of op envelopes):
	// big enough to amortise a durable commit, small enough that a cut link
	// resends little.
	MaxOps   int
	MaxBytes int
}

// DefaultConfig returns bounds measured to suit laptops on Wi-Fi.
func DefaultConfig() Config {
	return Config{Window: 4, MaxOps: 512, MaxBytes: 512 << 10}
}

// Stats counts a session's traffic, for status and benchmarks.
type Stats struct {
	BatchesSent, BatchesReceived uint64
	OpsSent, OpsReceived         uint64
	// Flights counts the round trips the session needed: one for the hello
	// exchange, plus one each time this side had to wait for an ack before it
	// could send more.
	Flights uint64
}

// Session is one side of a sync session with one peer. Not safe for
// concurrent use: the caller serialises calls.
type Session struct {
	cfg Config
	// peerHas is what the peer is known to hold: its hello, raised by its acks
	// and by the ops it sent us.
	peerHas crdt.VersionVector
	// sent is the highest seq sent per origin (acknowledged or in flight).
	sent     crdt.VersionVector
	inflight map[uint64][]crdt.Range
	next     uint64
	hello    bool
	// stalled origins had ops refused by the peer in this session; they are
	// not offered again until a new session, so a bad op cannot loop.
	stalled map[string]bool
	// credSent records origins whose credential went out in this session.
	credSent  map[string]bool
	windowHit bool
	stats     Stats
	// offer, if set, says which origins' ops this side sends at all.
	offer func(origin string) bool
}

// Offer restricts what this side sends to the origins for which offer
// returns true (a hub sends a field laptop only the hub's own ops: its
// decisions, not the whole province).
func (s *Session) Offer(offer func(origin string) bool) { s.offer = offer }

// New starts a session.
func New(cfg Config) *Session {
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	if cfg.MaxOps <= 0 {
		cfg.MaxOps = 1
	}
	return &Session{
		cfg:      cfg,
		peerHas:  crdt.VersionVector{},
		sent:     crdt.VersionVector{},
		inflight: map[uint64][]crdt.Range{},
		stalled:  map[string]bool{},
		credSent: map[string]bool{},
	}
}

// Hello is the first message to send: the local version vector.
func (s *Session) Hello(local crdt.VersionVector) crdt.VersionVector { return local.Clone() }

// OnHello takes the peer's hello. A peer sends another hello during the
// session when its log of some origin became shorter (it gave up the
// losing branch of a fork): for every origin the new hello shows lower than
// the peer was known to hold (absent counts as 0), what it holds and what
// was sent fall to it, ops in flight of that origin are forgotten and the
// origin is offered again.
func (s *Session) OnHello(peer crdt.VersionVector) {
	if s.hello {
		for o, has := range s.peerHas {
			if peer[o] < has {
				s.PeerHolds(o, peer[o])
			}
		}
	} else {
		s.stats.Flights++
	}
	s.hello = true
	s.peerHas.Merge(peer)
	s.sent.Merge(peer)
}

// PeerHolds sets what the peer is known to hold of origin to seq, when that
// is lower: its log was found to part from this side's after seq. The
// origin's ops after seq are sent again; in-flight batches of it no longer
// count, and it is no longer stalled.
func (s *Session) PeerHolds(origin string, seq uint64) {
	if s.peerHas[origin] > seq {
		s.peerHas[origin] = seq
	}
	if s.sent[origin] > seq {
		s.sent[origin] = seq
	}
	delete(s.stalled, origin)
	for n, ranges := range s.inflight {
		s.inflight[n] = slices.DeleteFunc(ranges, func(r crdt.Range) bool { return r.Origin == origin })
	}
}

// Ready reports whether the hello exchange is done.
func (s *Session) Ready() bool { return s.hello }

// PeerHas returns what the peer is known to hold (a copy).
func (s *Session) PeerHas() crdt.VersionVector { return s.peerHas.Clone() }

// Plan returns the ranges of ops to put into the next batch, given what the
// local replica holds, or nil when nothing is to be sent now (nothing missing,
// window full, or hello not yet received). The caller reads at most MaxOps ops
// and MaxBytes bytes from the ranges in order, then calls Sent with what it
// actually put in the batch.
func (s *Session) Plan(local crdt.VersionVector) []crdt.Range {
	if !s.hello {
		return nil
	}
	missing := local.Missing(s.sent)
	var out []crdt.Range
	budget := uint64(s.cfg.MaxOps)
	for _, r := range missing {
		if s.stalled[r.Origin] || (s.offer != nil && !s.offer(r.Origin)) {
			continue
		}
		if r.Len() > budget {
			r.To = r.From + budget - 1
		}
		out = append(out, r)
		budget -= r.Len()
		if budget == 0 {
			break
		}
	}
	if len(out) > 0 && len(s.inflight) >= s.cfg.Window {
		s.windowHit = true
		return nil
	}
	return out
}

// NeedsCredential reports whether a batch carrying ops of origin must carry
// its credential too: the peer holds nothing of it and it was not yet sent.
func (s *Session) NeedsCredential(origin string) bool {
	return s.peerHas[origin] == 0 && !s.credSent[origin]
}

// Sent records a batch put on the wire with the given ranges and returns its
// number.
func (s *Session) Sent(ranges []crdt.Range, ops int, creds []string) uint64 {
	s.next++
	n := s.next
	s.inflight[n] = ranges
	for _, r := range ranges {
		if r.To > s.sent[r.Origin] {
			s.sent[r.Origin] = r.To
		}
	}
	for _, o := range creds {
		s.credSent[o] = true
	}
	s.stats.BatchesSent++
	s.stats.OpsSent += uint64(ops)
	return n
}

// OnAck takes the peer's acknowledgement of batch n with its heads after
// applying it. It reports the origins whose ops the peer refused: they stall
// for the rest of the session.
func (s *Session) OnAck(n uint64, heads crdt.VersionVector) (refused []string) {
	ranges, ok := s.inflight[n]
	if !ok {
		return nil
	}
	if s.windowHit {
		s.stats.Flights++
		s.windowHit = false
	}
	delete(s.inflight, n)
	s.peerHas.Merge(heads)
	for _, r := range ranges {
		if heads[r.Origin] < r.To {
			refused = append(refused, r.Origin)
			s.stalled[r.Origin] = true
			// Later batches of that origin in flight will fail too; forget
			// them as sent so a new session starts from what landed.
			s.sent[r.Origin] = s.peerHas[r.Origin]
		}
	}
	return refused
}

// Received notes a batch the peer sent us: dots names the last op of each
// origin in it. The peer holds them, so they are never echoed back to it.
func (s *Session) Received(dots []crdt.Dot, ops int) {
	for _, d := range dots {
		if d.Seq > s.peerHas[d.Origin] {
			s.peerHas[d.Origin] = d.Seq
		}
		if d.Seq > s.sent[d.Origin] {
			s.sent[d.Origin] = d.Seq
		}
	}
	s.stats.BatchesReceived++
	s.stats.OpsReceived += uint64(ops)
}

// InFlight is the number of unacknowledged batches.
func (s *Session) InFlight() int { return len(s.inflight) }

// Unsent reports whether the local replica holds ops to offer the peer that
// were not sent in this session yet (true before the peer's hello): what
// must go before any attachment chunk.
func (s *Session) Unsent(local crdt.VersionVector) bool {
	if !s.hello {
		return true
	}
	for _, r := range local.Missing(s.sent) {
		if !s.stalled[r.Origin] && (s.offer == nil || s.offer(r.Origin)) {
			return true
		}
	}
	return false
}

// Behind reports whether the peer holds ops this replica lacks, as far as
// its hello and what it sent since tell: a receiver asks for attachment
// chunks only once it has the peer's ops, so dossiers cross a thin link
// first.
func (s *Session) Behind(local crdt.VersionVector) bool {
	return !s.hello || len(s.peerHas.Missing(local)) > 0
}

// InSync reports whether the peer holds everything local holds (of what this
// side offers) and nothing is in flight.
func (s *Session) InSync(local crdt.VersionVector) bool {
	if !s.hello || len(s.inflight) > 0 {
		return false
	}
	for _, r := range local.Missing(s.peerHas) {
		if s.offer == nil || s.offer(r.Origin) {
			return false
		}
	}
	return true
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats { return s.stats }
