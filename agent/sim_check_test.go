package agent

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/uplink"
	"github.com/fieldsync/fieldsync/crdt"
)

// check verifies the invariants once a schedule has healed and the network
// is quiet. Each failure is a finding (w.failf).
func (w *simWorld) check() {
	ref := w.nodes[0]
	refVV := ref.a.store.VersionVector()

	// 1. Every replica holds the same ops: equal version vectors and equal
	//    heads (one hash per origin names the whole chain), and each chain
	//    verifies from the first op under its origin's key.
	for _, n := range w.nodes {
		vv := n.a.store.VersionVector()
		if !vv.Equal(refVV) {
			w.failf("%s holds %v, %s holds %v", n.name, vv, ref.name, refVV)
			continue
		}
		for _, o := range refVV.Origins() {
			if n.a.store.Head(o) != ref.a.store.Head(o) {
				w.failf("%s and %s hold different logs of %.8s", n.name, ref.name, o)
			}
		}
		w.checkChains(n)
	}
	if len(w.fails) > 0 {
		return
	}

	// 2. Every replica holds the records a reference replica (crdt.Replica,
	//    the in-memory merge) builds from the same ops delivered in another
	//    order, and the same conflict index, duplicate queue and conflict
	//    queue.
	ops := w.allOps(ref)
	want := w.replay(ops)
	wantConflicts := conflictedOf(want)
	var refDups, refQueue string
	var pairs map[string]bool // pairs the duplicate queue shows as merged both ways
	for _, n := range w.nodes {
		got := map[string]*crdt.Record{}
		if err := n.a.store.Records("", func(r *crdt.Record) bool { got[r.ID] = r; return true }); err != nil {
			w.failf("%s records: %v", n.name, err)
			continue
		}
		if len(got) != len(want) {
			w.failf("%s holds %d records, the reference %d", n.name, len(got), len(want))
		}
		for id, r := range want {
			g := got[id]
			if g == nil {
				w.failf("%s lacks record %s", n.name, id)
				continue
			}
			if !bytes.Equal(simEncode(g), simEncode(r)) {
				w.failf("%s record %s differs from the reference:\n  got  %s\n  want %s", n.name, id, simShow(g), simShow(r))
			}
		}
		if cnt, _ := n.a.store.RecordCount(); cnt != len(want) {
			w.failf("%s counts %d records, holds %d", n.name, cnt, len(want))
		}
		var conflicted []string
		if err := n.a.store.ConflictedRecords(func(id string) bool { conflicted = append(conflicted, id); return true }); err != nil {
			w.failf("%s conflicted records: %v", n.name, err)
		}
		if !slices.Equal(conflicted, wantConflicts) {
			w.failf("%s conflict index %v, records in conflict %v", n.name, conflicted, wantConflicts)
		}
		for id, r := range want {
			h, err := n.a.store.History(id)
			if err != nil || uint64(len(h)) != r.Ops {
				w.failf("%s history of %s has %d ops, the record %d (%v)", n.name, id, len(h), r.Ops, err)
			}
			w.checkCausality(n, id, h)
		}
		dups, err := backend{n.a}.Duplicates(context.Background())
		if err != nil {
			w.failf("%s duplicates: %v", n.name, err)
		}
		queue, err := backend{n.a}.Conflicts(context.Background())
		if err != nil {
			w.failf("%s conflicts: %v", n.name, err)
		}
		d, q := fmt.Sprint(dups), fmt.Sprint(queue)
		if n == ref {
			refDups, refQueue = d, q
			pairs = map[string]bool{}
			for _, g := range dups {
				if g.Reason == "merged_both_ways" && len(g.Records) == 2 {
					pairs[g.Records[0]+" "+g.Records[1]] = true
				}
			}
		} else {
			if d != refDups {
				w.failf("%s duplicate queue differs from %s's:\n  %s\n  %s", n.name, ref.name, d, refDups)
			}
			if q != refQueue {
				w.failf("%s conflict queue differs from %s's:\n  %s\n  %s", n.name, ref.name, q, refQueue)
			}
		}
	}

	// 3. Nothing is silently dropped and nothing superseded comes back:
	//    a value is live exactly when no op that was applied saw it. So a
	//    settled conflict stays settled unless a value the admin did not see
	//    arrived, and an admin's decision survives beside it.
	w.checkLiveness(ops, want)

	w.checkRetirements(want, pairs)

	// 4. Every op an API call acknowledged is everywhere, with its bytes.
	for _, a := range w.acked {
		for _, n := range w.nodes {
			got, err := n.a.store.ReadOps(a.origin, a.seq, 1, 0)
			if err != nil || len(got) != 1 || crdt.Hash(got[0].Body) != a.hash {
				w.failf("%s lacks %s's acknowledged op %d (%v)", n.name, a.node, a.seq, err)
			}
		}
	}

	// 5. Every receipt any device holds is one its hub issued, and claims
	//    only what that hub's store holds. Each device ends holding each
	//    hub's latest receipt, so every dossier counts as delivered.
	hubs := map[string]*simNode{}
	for _, n := range w.nodes {
		if n.role == identity.RoleHub {
			hubs[n.dev.ID()] = n
		}
	}
	for _, n := range w.nodes {
		for hub, r := range n.receiptsOf() {
			h := hubs[hub]
			if h == nil {
				w.failf("%s holds a receipt of %.8s, not a hub", n.name, hub)
				continue
			}
			body, ok := w.issued[h.name][r.Issued]
			if !ok || !bytes.Equal(body, n.a.up.travel[hub].Body) {
				w.failf("%s holds a receipt of %s issued %d that the hub did not issue", n.name, h.name, r.Issued)
			}
			hv := h.a.store.VersionVector()
			for o, s := range r.Stored {
				if hv[o] < s {
					w.failf("%s's receipt of %s claims %.8s up to %d; the hub holds %d", n.name, h.name, o, s, hv[o])
				}
			}
			if last := h.a.up.lastSelf; r.Issued != last.Issued {
				w.failf("%s holds %s's receipt of %d, the hub's latest is %d", n.name, h.name, r.Issued, last.Issued)
			}
		}
		if len(n.receiptsOf()) != len(hubs) {
			w.failf("%s holds receipts of %d hubs of %d", n.name, len(n.receiptsOf()), len(hubs))
		}
		safe := uplink.Merged(mapValues(n.receiptsOf()))
		for origin, d := range n.a.store.Deliveries(safe) {
			if d.Delivered != d.Captured {
				w.failf("%s counts %d of %.8s's %d dossiers delivered after the heal", n.name, d.Delivered, origin, d.Captured)
			}
		}
		// at_risk: every peer holds everything, and sessions noted it.
		if n.role != identity.RoleHub {
			if _, risk, err := n.a.store.AtRisk(n.dev.ID()); err != nil || risk != 0 {
				w.failf("%s counts %d of its dossiers at risk after the heal (%v)", n.name, risk, err)
			}
		}
	}

	// 6. No replica refused a valid op or logged a warning, and every
	//    session is in sync.
	for _, n := range w.nodes {
		if r := n.refus + n.a.refusedOps.Load(); r > 0 {
			w.failf("%s refused %d valid ops", n.name, r)
		}
		n.logs.mu.Lock()
		for _, l := range n.logs.lines {
			w.failf("%s logged: %s", n.name, l)
		}
		n.logs.mu.Unlock()
	}
	for _, l := range w.allLinks() {
		for _, e := range l.ends {
			if !e.dead && !e.s.sm.InSync(e.n.a.store.VersionVector()) {
				w.failf("session %s->%s not in sync after the heal", e.n.name, e.peer.name)
			}
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// checkChains reads every origin's log on a replica and verifies it whole:
// gapless from seq 1, each op naming the previous one's hash, ending at the
// head, the last signature valid under the origin's stored key.
func (w *simWorld) checkChains(n *simNode) {
	for _, o := range n.a.store.VersionVector().Origins() {
		signed, err := n.a.store.ReadOps(o, 1, 0, 0)
		if err != nil {
			w.failf("%s reads the log of %.8s: %v", n.name, o, err)
			continue
		}
		run := make([]crdt.Opened, 0, len(signed))
		for _, sg := range signed {
			op, err := crdt.Open(sg)
			if err != nil {
				w.failf("%s holds a malformed op of %.8s: %v", n.name, o, err)
				break
			}
			run = append(run, op)
		}
		pub, _, ok, err := n.a.store.Credential(o)
		if !ok || err != nil {
			w.failf("%s holds ops of %.8s but not its credential", n.name, o)
			continue
		}
		k, err := crdt.VerifyRun(crdt.Head{}, run, pub)
		head := n.a.store.Head(o)
		if err != nil || k != len(run) || head.Seq != uint64(len(run)) || (len(run) > 0 && run[len(run)-1].Hash != head.Hash) {
			w.failf("%s's log of %.8s does not verify to its head %d: %d of %d ops (%v)", n.name, o, head.Seq, k, len(run), err)
		}
	}
}

// allOps reads every op a replica holds, per origin in order.
func (w *simWorld) allOps(n *simNode) map[string][]*crdt.Op {
	out := map[string][]*crdt.Op{}
	for _, o := range n.a.store.VersionVector().Origins() {
		signed, _ := n.a.store.ReadOps(o, 1, 0, 0)
		for _, sg := range signed {
			if op, err := crdt.Open(sg); err == nil {
				out[o] = append(out[o], op.Op)
			}
		}
	}
	return out
}

// replay delivers every op to an in-memory reference replica, the origins
// interleaved at random and with duplicates: what the store built must not
// depend on the order ops arrived in.
func (w *simWorld) replay(ops map[string][]*crdt.Op) map[string]*crdt.Record {
	r := rand.New(rand.NewPCG(w.seed, 0x7265706c))
	rep := crdt.NewReplica()
	next := map[string]int{}
	origins := make([]string, 0, len(ops))
	for o := range ops {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	for {
		var live []string
		for _, o := range origins {
			if next[o] < len(ops[o]) {
				live = append(live, o)
			}
		}
		if len(live) == 0 {
			break
		}
		o := live[r.IntN(len(live))]
		k := next[o] + r.IntN(min(3, len(ops[o])-next[o]))
		rep.Deliver(ops[o][k]) // may arrive ahead of a gap: it waits
		if r.IntN(4) == 0 {
			rep.Deliver(ops[o][next[o]]) // a duplicate
		}
		if k == next[o] {
			next[o]++
			for next[o] < len(ops[o]) && rep.VV[o] >= ops[o][next[o]].Seq {
				next[o]++
			}
		}
	}
	if rep.Waiting() != 0 {
		w.failf("the reference replica still waits on %d ops", rep.Waiting())
	}
	return rep.Records
}

// checkLiveness checks, for every field write of every op, that its value
// is live in the final state exactly when no op saw (superseded) it.
func (w *simWorld) checkLiveness(ops map[string][]*crdt.Op, recs map[string]*crdt.Record) {
	type fk struct {
		record, field string
		dot           crdt.Dot
	}
	seen := map[fk]bool{}
	for _, log := range ops {
		for _, op := range log {
			for name, fw := range op.Fields {
				for _, d := range fw.Seen {
					seen[fk{op.Record, name, d}] = true
				}
			}
		}
	}
	for _, log := range ops {
		for _, op := range log {
			for _, name := range op.SortedFieldNames() {
				r := recs[op.Record]
				live := r != nil && slices.ContainsFunc(r.Fields[name].Live, func(s crdt.Sibling) bool { return s.Dot == op.Dot() })
				sup := seen[fk{op.Record, name, op.Dot()}]
				switch {
				case live && sup:
					w.failf("record %s field %s: value of %.8s:%d is live though an op saw it", op.Record, name, op.Origin, op.Seq)
				case !live && !sup:
					w.failf("record %s field %s: value of %.8s:%d (%s) is gone though no op saw it", op.Record, name, op.Origin, op.Seq, op.Kind)
				}
			}
		}
	}
}

func conflictedOf(recs map[string]*crdt.Record) []string {
	var out []string
	for id, r := range recs {
		if len(r.Conflicts()) > 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func simEncode(r *crdt.Record) []byte {
	b, err := crdt.Marshal(r)
	if err != nil {
		return []byte(err.Error())
	}
	return b
}

func simShow(r *crdt.Record) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ops %d created %v updated %v:", r.Ops, r.Created, r.Updated)
	names := make([]string, 0, len(r.Fields))
	for n := range r.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%v", n, r.Fields[n])
	}
	return b.String()
}

// checkCausality checks that a dossier's history lists every op after the
// ops whose values it saw, and after its origin's earlier ops.
func (w *simWorld) checkCausality(n *simNode, id string, hist []crdt.Opened) {
	pos := map[crdt.Dot]int{}
	for i, o := range hist {
		pos[o.Op.Dot()] = i
	}
	last := map[string]uint64{}
	for i, o := range hist {
		op := o.Op
		if op.Seq <= last[op.Origin] {
			w.failf("%s's history of %s lists %.8s:%d after %.8s:%d", n.name, id, op.Origin, op.Seq, op.Origin, last[op.Origin])
		}
		last[op.Origin] = op.Seq
		for _, name := range op.SortedFieldNames() {
			for _, d := range op.Fields[name].Seen {
				if j, ok := pos[d]; ok && j > i {
					w.failf("%s's history of %s lists %.8s:%d (time %v) before %.8s:%d, whose value it saw (time %v)",
						n.name, id, op.Origin, op.Seq, op.Time, d.Origin, d.Seq, hist[j].Op.Time)
				}
			}
		}
	}
}

// checkRetirements checks that every retired dossier leads, through the
// dossiers it was merged into, to one that is not retired, unless the way
// is in conflict (the conflict queue shows it) or two dossiers are retired
// into each other (the duplicate queue shows them).
func (w *simWorld) checkRetirements(recs map[string]*crdt.Record, pairs map[string]bool) {
	for id, r := range recs {
		seen := map[string]bool{id: true}
		first := r.RetiredInto()
		shown := r.Fields[crdt.FieldRetiredInto].Conflict()
		for into := r.RetiredInto(); into != ""; {
			next := recs[into]
			if next == nil {
				break
			}
			shown = shown || next.Fields[crdt.FieldRetiredInto].Conflict()
			if seen[into] {
				shown = shown || pairs[min(id, first)+" "+max(id, first)] && into == id
				if !shown {
					w.failf("dossier %s is retired into %s in a cycle, and no queue shows it: no dossier survives the merge", id, first)
				}
				break
			}
			seen[into] = true
			into = next.RetiredInto()
		}
	}
}
