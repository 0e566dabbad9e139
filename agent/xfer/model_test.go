package xfer

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/attach"
)

// An arrived chunk leaves its peer's window at once, is asked of no one
// while it is being stored, not even once its session ends, and is settled
// by Got, Lacks or Lost.
func TestArrivedLeavesTheWindowNotTheWant(t *testing.T) {
	s := New()
	now := time.Now()
	m := file(attach.KindPhoto, "big", 3*DefaultWindow)
	s.Add(File{Manifest: m}, m.Chunks)
	first := s.Next("a", now)
	if len(first) != DefaultWindow {
		t.Fatalf("asked %d", len(first))
	}
	if s.Arrived("b", first[0]) {
		t.Fatal("a chunk asked of a arrived from b")
	}
	for _, h := range first[:3] {
		if !s.Arrived("a", h) {
			t.Fatal("an asked chunk refused")
		}
	}
	if s.Arrived("a", first[0]) {
		t.Fatal("a chunk arrived twice")
	}
	more := s.Next("a", now)
	if len(more) != 3 || slices.Contains(first, more[0]) {
		t.Fatalf("after 3 arrived, a is asked %d more: %x", len(more), more)
	}
	if st := s.Stats(); st.InFlight != DefaultWindow || st.Storing != 3 {
		t.Fatalf("%+v", st)
	}
	// a's session ends: what was on the wire goes to b, what arrived stays.
	s.Drop("a")
	got := s.Next("b", now)
	for _, h := range first[:3] {
		if slices.Contains(got, h) {
			t.Fatalf("a chunk being stored was asked of b")
		}
	}
	s.Got("a", first[0])
	s.Lost(first[1])
	s.Lacks("a", first[2], now)
	if st := s.Stats(); st.Storing != 0 || st.Received != 1 {
		t.Fatalf("%+v", st)
	}
	// Lost and refused chunks are wanted again: the refused one not from a.
	again := s.Next("a", now)
	if !slices.Contains(again, first[1]) || slices.Contains(again, first[2]) || slices.Contains(again, first[0]) {
		t.Fatalf("a is asked %x", again)
	}
}

// The scheduler against a naive reference, over random sequences of every
// call: what Next hands out (and in which order) and what Stats counts.
func TestSchedulerAgainstReference(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runModel(t, seed, 3000)
		})
	}
}

type refChunk struct {
	size           int64
	kind           attach.Kind
	time           int64
	file           Hash
	index          int
	held           bool
	arrived        bool
	flightPeer     string
	flightSince    time.Time
	inFlight, want bool
}

type reference struct {
	window          int
	lackFor, expire time.Duration
	chunks          map[Hash]*refChunk
	files           map[Hash][]Hash // the chunks each file waits for
	lacks           map[string]map[Hash]time.Time
	received        uint64
}

func (r *reference) expireAll(now time.Time) {
	for _, c := range r.chunks {
		if c.inFlight && now.Sub(c.flightSince) >= r.expire {
			c.inFlight = false
		}
	}
}

func (r *reference) next(peer string, now time.Time) []Hash {
	r.expireAll(now)
	room := r.window
	for _, c := range r.chunks {
		if c.inFlight && c.flightPeer == peer {
			room--
		}
	}
	var order []Hash
	for h, c := range r.chunks {
		if c.want {
			order = append(order, h)
		}
	}
	slices.SortFunc(order, func(x, y Hash) int {
		a, b := r.chunks[x], r.chunks[y]
		return cmp.Or(cmp.Compare(Rank(a.kind), Rank(b.kind)), cmp.Compare(a.time, b.time),
			cmp.Compare(string(a.file[:]), string(b.file[:])), cmp.Compare(a.index, b.index))
	})
	var out []Hash
	for _, h := range order {
		if len(out) >= room {
			break
		}
		c := r.chunks[h]
		if c.inFlight || c.arrived {
			continue
		}
		if t, ok := r.lacks[peer][h]; ok && now.Sub(t) < r.lackFor {
			continue
		}
		c.inFlight, c.flightPeer, c.flightSince = true, peer, now
		out = append(out, h)
	}
	return out
}

// hold is Got from peer, or Held when peer is "".
func (r *reference) hold(peer string, h Hash) {
	c := r.chunks[h]
	if c.inFlight && (peer == "" || c.flightPeer == peer) {
		c.inFlight = false
	}
	c.arrived = false
	if c.want {
		c.want, c.held = false, true
	}
}

func (r *reference) stats() Stats {
	st := Stats{PendingBytes: map[attach.Kind]int64{}, Received: r.received}
	for _, k := range attach.Kinds {
		st.PendingBytes[k] = 0
	}
	for _, c := range r.chunks {
		if c.want {
			st.PendingBytes[c.kind] += c.size
		}
		if c.inFlight {
			st.InFlight++
		}
		if c.arrived {
			st.Storing++
		}
	}
	for _, hs := range r.files {
		done := true
		for _, h := range hs {
			done = done && r.chunks[h].held
		}
		if done {
			st.Complete++
		} else {
			st.Incomplete++
		}
	}
	return st
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 77))
	s := New()
	s.Window, s.LackFor, s.Timeout = 4, time.Second, 5*time.Second
	ref := &reference{window: 4, lackFor: time.Second, expire: 5 * time.Second,
		chunks: map[Hash]*refChunk{}, files: map[Hash][]Hash{}, lacks: map[string]map[Hash]time.Time{}}
	now := time.Unix(1_750_000_000, 0)
	peers := []string{"a", "b", "c"}
	var pool []Hash // every chunk hash made so far
	anyChunk := func() Hash {
		if len(pool) == 0 || rng.IntN(10) == 0 {
			return sha256.Sum256([]byte(fmt.Sprint("unknown", rng.Uint64())))
		}
		return pool[rng.IntN(len(pool))]
	}
	kinds := []attach.Kind{attach.KindPhoto, attach.KindFingerprint, attach.KindDocument}
	for step := range steps {
		var what string
		switch op := rng.IntN(100); {
		case op < 12 && len(ref.files) < 150: // a new file, sharing some chunks
			n := 1 + rng.IntN(6)
			m := attach.Manifest{Kind: kinds[rng.IntN(3)], ChunkSize: attach.ChunkSize,
				Size:   int64(n-1)*attach.ChunkSize + 1 + rng.Int64N(attach.ChunkSize),
				SHA256: sha256.Sum256([]byte(fmt.Sprint("file", step)))}
			for i := range n {
				h := sha256.Sum256([]byte(fmt.Sprint("chunk", step, i)))
				if len(pool) > 0 && rng.IntN(5) == 0 {
					if old := pool[rng.IntN(len(pool))]; !slices.Contains(m.Chunks, old) {
						h = old
					}
				}
				m.Chunks = append(m.Chunks, h)
			}
			// What the store reports missing: never a chunk held, and
			// sometimes not one still wanted (stored, the scheduler not
			// yet told).
			var missing []Hash
			for _, h := range m.Chunks {
				c := ref.chunks[h]
				if c != nil && c.held || c != nil && rng.IntN(4) == 0 {
					continue
				}
				missing = append(missing, h)
			}
			tm := rng.Int64N(20)
			what = fmt.Sprintf("add %x (%d chunks, %d missing)", m.SHA256[:3], n, len(missing))
			s.Add(File{Manifest: m, Time: tm}, missing)
			var counted []Hash
			for i, h := range m.Chunks {
				if !slices.Contains(missing, h) {
					continue
				}
				counted = append(counted, h)
				size := int64(attach.ChunkSize)
				if i == n-1 {
					size = m.Size - int64(i)*attach.ChunkSize
				}
				c := ref.chunks[h]
				if c == nil {
					c = &refChunk{}
					ref.chunks[h] = c
					pool = append(pool, h)
				}
				if !c.want {
					c.size, c.kind, c.time, c.file, c.index, c.want = size, m.Kind, tm, m.SHA256, i, true
					continue
				}
				if before(Rank(m.Kind), tm, m.SHA256, i, &chunk{kind: c.kind, time: c.time, file: c.file, index: c.index}) {
					c.kind, c.time, c.file, c.index = m.Kind, tm, m.SHA256, i
				}
			}
			ref.files[m.SHA256] = counted
			for _, h := range m.Chunks { // chunks made but not wanted
				if ref.chunks[h] == nil {
					ref.chunks[h] = &refChunk{}
					pool = append(pool, h)
				}
			}
		case op < 35:
			p := peers[rng.IntN(3)]
			what = "next " + p
			got, want := s.Next(p, now), ref.next(p, now)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d step %d: %s:\n got %x\nwant %x", seed, step, what, got, want)
			}
		case op < 55:
			p, h := peers[rng.IntN(3)], anyChunk()
			what = fmt.Sprintf("arrived %s %x", p, h[:3])
			c := ref.chunks[h]
			want := c != nil && c.inFlight && c.flightPeer == p
			if want {
				c.inFlight = false
				c.arrived = c.want
			}
			if got := s.Arrived(p, h); got != want {
				t.Fatalf("seed %d step %d: %s: %v, want %v", seed, step, what, got, want)
			}
		case op < 72:
			p, h := peers[rng.IntN(3)], anyChunk()
			what = fmt.Sprintf("got %s %x", p, h[:3])
			s.Got(p, h)
			if c := ref.chunks[h]; c != nil {
				ref.hold(p, h)
			}
			ref.received++
		case op < 75:
			h := anyChunk()
			what = fmt.Sprintf("held %x", h[:3])
			s.Held(h)
			if ref.chunks[h] != nil {
				ref.hold("", h)
			}
		case op < 82:
			p, h := peers[rng.IntN(3)], anyChunk()
			what = fmt.Sprintf("lacks %s %x", p, h[:3])
			s.Lacks(p, h, now)
			if c := ref.chunks[h]; c != nil {
				if c.inFlight && c.flightPeer == p {
					c.inFlight = false
				}
				c.arrived = false
			}
			if ref.lacks[p] == nil {
				ref.lacks[p] = map[Hash]time.Time{}
			}
			ref.lacks[p][h] = now
		case op < 86:
			h := anyChunk()
			what = fmt.Sprintf("lost %x", h[:3])
			s.Lost(h)
			if c := ref.chunks[h]; c != nil {
				c.arrived = false
			}
		case op < 90 && len(ref.files) > 0:
			names := make([]Hash, 0, len(ref.files))
			for f := range ref.files {
				names = append(names, f)
			}
			slices.SortFunc(names, func(x, y Hash) int { return cmp.Compare(string(x[:]), string(y[:])) })
			f := names[rng.IntN(len(names))]
			what = fmt.Sprintf("forget %x", f[:3])
			s.Forget(f)
			counted := ref.files[f]
			delete(ref.files, f)
			for _, h := range counted {
				c := ref.chunks[h]
				if !c.want {
					continue
				}
				owned := false
				for _, hs := range ref.files {
					owned = owned || slices.Contains(hs, h)
				}
				if !owned {
					c.want = false
				}
			}
		case op < 92:
			p := peers[rng.IntN(3)]
			what = "drop " + p
			s.Drop(p)
			for _, c := range ref.chunks {
				if c.inFlight && c.flightPeer == p {
					c.inFlight = false
				}
			}
			delete(ref.lacks, p)
		default:
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			what = "wait " + d.String()
			now = now.Add(d)
		}
		// Stats does not expire requests; compare after the same expiry.
		got, want := s.Stats(), ref.stats()
		got.Refused = 0
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d step %d: after %s:\n got %+v\nwant %+v", seed, step, what, got, want)
		}
	}
}
