package syncer

import (
	"fmt"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
	"pgregory.net/rapid"
)

// The simulation drives sessions over an in-memory network: each node holds
// ops 1..vv[o] of every origin o (contents do not matter to the protocol),
// links are FIFO queues per direction, and links can be cut and re-opened at
// any point. It checks that the protocol never creates a gap, never loses an
// acknowledged op, and converges once the network heals.

type msg struct {
	hello  crdt.VersionVector
	batchN uint64
	ranges []crdt.Range
	ackN   uint64
	heads  crdt.VersionVector
}

type node struct {
	name string
	vv   crdt.VersionVector
}

type link struct {
	a, b   int
	sa, sb *Session // sa runs at node a, sb at node b
	ab, ba []msg    // queues a->b, b->a
}

type sim struct {
	t     *rapid.T
	nodes []*node
	links map[[2]int]*link
	cfg   Config
	gaps  int
}

func (s *sim) open(a, b int) {
	if _, ok := s.links[[2]int{a, b}]; ok {
		return
	}
	l := &link{a: a, b: b, sa: New(s.cfg), sb: New(s.cfg)}
	l.ab = append(l.ab, msg{hello: l.sa.Hello(s.nodes[a].vv)})
	l.ba = append(l.ba, msg{hello: l.sb.Hello(s.nodes[b].vv)})
	s.links[[2]int{a, b}] = l
}

func (s *sim) cut(a, b int) { delete(s.links, [2]int{a, b}) }

// pump lets the session at one end send as many batches as its plan allows.
func (s *sim) pump(l *link, fromA bool) {
	sess, n, q := l.sa, s.nodes[l.a], &l.ab
	if !fromA {
		sess, n, q = l.sb, s.nodes[l.b], &l.ba
	}
	for {
		plan := sess.Plan(n.vv)
		if len(plan) == 0 {
			return
		}
		ops := 0
		for _, r := range plan {
			ops += int(r.Len())
		}
		if ops > s.cfg.MaxOps {
			s.t.Fatalf("plan of %d ops exceeds MaxOps %d", ops, s.cfg.MaxOps)
		}
		num := sess.Sent(plan, ops, nil)
		*q = append(*q, msg{batchN: num, ranges: plan})
	}
}

// deliver hands the first message of one direction to its receiver.
func (s *sim) deliver(l *link, toB bool) {
	q, sess, n, back := &l.ab, l.sb, s.nodes[l.b], &l.ba
	if !toB {
		q, sess, n, back = &l.ba, l.sa, s.nodes[l.a], &l.ab
	}
	if len(*q) == 0 {
		return
	}
	m := (*q)[0]
	*q = (*q)[1:]
	switch {
	case m.hello != nil:
		sess.OnHello(m.hello)
	case m.ranges != nil:
		heads := crdt.VersionVector{}
		var dots []crdt.Dot
		for _, r := range m.ranges {
			if r.From > n.vv[r.Origin]+1 {
				s.gaps++
			} else if r.To > n.vv[r.Origin] {
				n.vv[r.Origin] = r.To
			}
			heads[r.Origin] = n.vv[r.Origin]
			dots = append(dots, crdt.Dot{Origin: r.Origin, Seq: r.To})
		}
		sess.Received(dots, 0)
		*back = append(*back, msg{ackN: m.batchN, heads: heads})
	case m.heads != nil:
		sess.OnAck(m.ackN, m.heads)
	}
}

func (s *sim) step() {
	n := len(s.nodes)
	switch rapid.IntRange(0, 9).Draw(s.t, "step") {
	case 0: // a device captures dossiers
		nd := s.nodes[rapid.IntRange(0, n-1).Draw(s.t, "writer")]
		nd.vv[nd.name] += uint64(rapid.IntRange(1, 40).Draw(s.t, "ops"))
	case 1: // two devices meet
		a := rapid.IntRange(0, n-2).Draw(s.t, "a")
		s.open(a, rapid.IntRange(a+1, n-1).Draw(s.t, "b"))
	case 2: // a link drops mid-transfer
		a := rapid.IntRange(0, n-2).Draw(s.t, "a")
		s.cut(a, rapid.IntRange(a+1, n-1).Draw(s.t, "b"))
	default:
		for _, l := range s.sortedLinks() {
			switch rapid.IntRange(0, 3).Draw(s.t, "link action") {
			case 0:
				s.pump(l, true)
			case 1:
				s.pump(l, false)
			case 2:
				s.deliver(l, true)
			case 3:
				s.deliver(l, false)
			}
		}
	}
}

func (s *sim) sortedLinks() []*link {
	var out []*link
	for a := 0; a < len(s.nodes); a++ {
		for b := a + 1; b < len(s.nodes); b++ {
			if l, ok := s.links[[2]int{a, b}]; ok {
				out = append(out, l)
			}
		}
	}
	return out
}

// settle runs every link until nothing moves.
func (s *sim) settle() {
	for i := 0; i < 100000; i++ {
		moved := false
		for _, l := range s.sortedLinks() {
			s.pump(l, true)
			s.pump(l, false)
			if len(l.ab)+len(l.ba) > 0 {
				moved = true
				s.deliver(l, true)
				s.deliver(l, false)
			}
		}
		if !moved {
			return
		}
	}
	s.t.Fatalf("network did not settle")
}

func TestSessionsConvergeOverCutsAndRelays(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{Window: rapid.IntRange(1, 4).Draw(t, "window"), MaxOps: rapid.IntRange(1, 64).Draw(t, "maxops"), MaxBytes: 1 << 20}
		s := &sim{t: t, links: map[[2]int]*link{}, cfg: cfg}
		for i := 0; i < rapid.IntRange(2, 5).Draw(t, "nodes"); i++ {
			s.nodes = append(s.nodes, &node{name: fmt.Sprintf("n%d", i), vv: crdt.VersionVector{}})
		}
		for i := rapid.IntRange(0, 80).Draw(t, "steps"); i > 0; i-- {
			s.step()
		}
		// Heal: a line of links only, so ops must be relayed through middle nodes.
		for k := range s.links {
			s.cut(k[0], k[1])
		}
		for i := 0; i+1 < len(s.nodes); i++ {
			s.open(i, i+1)
		}
		s.settle()
		if s.gaps != 0 {
			t.Fatalf("%d batches arrived with a gap", s.gaps)
		}
		want := crdt.VersionVector{}
		for _, n := range s.nodes {
			want[n.name] = n.vv[n.name]
		}
		for _, n := range s.nodes {
			if !n.vv.Equal(want) {
				t.Fatalf("node %s holds %v, want %v", n.name, n.vv, want)
			}
		}
		for _, l := range s.sortedLinks() {
			if !l.sa.InSync(s.nodes[l.a].vv) || !l.sb.InSync(s.nodes[l.b].vv) {
				t.Fatalf("link %d-%d not in sync after settling", l.a, l.b)
			}
		}
	})
}

// Two replicas that agree reconcile in one round trip with no batch.
func TestAgreementCostsOneRoundTrip(t *testing.T) {
	vv := crdt.VersionVector{"a": 100000, "b": 5}
	x, y := New(DefaultConfig()), New(DefaultConfig())
	x.OnHello(y.Hello(vv))
	y.OnHello(x.Hello(vv))
	if p := x.Plan(vv); p != nil {
		t.Fatalf("x plans %v", p)
	}
	if p := y.Plan(vv); p != nil {
		t.Fatalf("y plans %v", p)
	}
	if !x.InSync(vv) || x.Stats().Flights != 1 {
		t.Fatalf("in sync %v flights %d", x.InSync(vv), x.Stats().Flights)
	}
}

// A refused batch stalls its origin for the session instead of looping.
func TestRefusedOriginStalls(t *testing.T) {
	s := New(Config{Window: 4, MaxOps: 10, MaxBytes: 1 << 20})
	local := crdt.VersionVector{"a": 30}
	s.OnHello(crdt.VersionVector{})
	p := s.Plan(local)
	n := s.Sent(p, 10, []string{"a"})
	if refused := s.OnAck(n, crdt.VersionVector{"a": 0}); len(refused) != 1 {
		t.Fatalf("refused %v", refused)
	}
	if p := s.Plan(local); p != nil {
		t.Fatalf("stalled origin planned again: %v", p)
	}
}

// A side that offers only some origins never plans the others.
func TestOfferRestrictsWhatIsSent(t *testing.T) {
	s := New(Config{Window: 4, MaxOps: 10, MaxBytes: 1 << 20})
	s.Offer(func(o string) bool { return o == "hub" })
	s.OnHello(crdt.VersionVector{})
	local := crdt.VersionVector{"laptop": 500, "hub": 3}
	p := s.Plan(local)
	if len(p) != 1 || p[0].Origin != "hub" || p[0].To != 3 {
		t.Fatalf("plan %v", p)
	}
	s.OnAck(s.Sent(p, 3, nil), crdt.VersionVector{"hub": 3})
	if p := s.Plan(local); p != nil || !s.InSync(local) {
		t.Fatalf("plan %v in sync %v", p, s.InSync(local))
	}
}
