package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/schema"
	"github.com/fieldsync/fieldsync/agent/syncer"
	"github.com/fieldsync/fieldsync/crdt"
)

// A schedule is drawn whole from the seed before it runs: every step holds
// its own parameters, and the randomness a step uses while it runs (frame
// delays, which record an edit picks) comes from a generator seeded by the
// seed and the step's index. So a schedule with some steps dropped (the
// shrinker's) runs every remaining step with the same draws.

type simKind int

const (
	stCapture   simKind = iota // a device captures a dossier
	stEdit                     // a device corrects a field of a dossier it holds
	stTwin                     // two devices correct the same field of one dossier differently
	stView                     // an admin looks at the conflict queue
	stResolve                  // an admin resolves a conflict (as last seen, or fresh)
	stMerge                    // an admin merges two possible duplicates
	stDistinct                 // an admin marks two possible duplicates as two people
	stUp                       // two devices meet (or reconnect: the old session drains)
	stDown                     // a link goes away, with what is in flight
	stDrop                     // a stream breaks and is reconnected at once
	stPartition                // the deployment splits in two
	stNet                      // the network delivers some frames
	stCrash                    // kill -9 and start again
	stRestart                  // clean stop and start
	stSkew                     // a device's clock jumps
	stIdle                     // time passes
	stStale                    // replaced sessions are finally reset
	stReceipt                  // a hub's receipt loop is kicked
	stBulk                     // a laptop captures a morning's work at once
	stGC                       // the safety pass collects value-log garbage
)

var simKindNames = [...]string{"capture", "edit", "twin", "view", "resolve", "merge", "distinct", "up", "down",
	"drop", "partition", "net", "crash", "restart", "skew", "idle", "stale", "receipt", "bulk", "gc"}

func (k simKind) String() string { return simKindNames[k] }

// simStep is one step: a kind, the devices it involves, and numbers it
// reduces to choices when it runs.
type simStep struct {
	Kind simKind
	A, B int
	X, Y uint64
}

func (s simStep) String() string {
	return fmt.Sprintf("%s(%d,%d,%d,%d)", s.Kind, s.A, s.B, s.X%1000, s.Y%1000)
}

// simDraw draws a deployment and its schedule from a seed.
func simDraw(seed uint64) (simParams, []simStep) {
	r := rand.New(rand.NewPCG(seed, 0x73636865))
	p := simParams{laptops: 4 + r.IntN(5), hubs: 1 + r.IntN(2)}
	p.admins = 1 + r.IntN(2)
	p.sync = syncer.Config{Window: 1 + r.IntN(4), MaxOps: 1 + r.IntN(24), MaxBytes: 2<<10 + r.IntN(64<<10)}
	if r.IntN(4) == 0 {
		p.sync = syncer.DefaultConfig() // batches big enough to span transactions
	}
	nodes := p.laptops + p.hubs
	for i := 0; i < nodes; i++ {
		// Clock skew of minutes to days, either way; some clocks are right.
		var s int64
		switch r.IntN(4) {
		case 0:
		case 1:
			s = r.Int64N(30 * 60e3)
		case 2:
			s = r.Int64N(6 * 3600e3)
		case 3:
			s = r.Int64N(4 * 24 * 3600e3)
		}
		if r.IntN(2) == 0 {
			s = -s
		}
		p.skews = append(p.skews, s)
	}
	p.steps = 60 + r.IntN(100)
	steps := make([]simStep, 0, p.steps)
	node := func() int { return r.IntN(nodes) }
	laptop := func() int { return r.IntN(p.laptops) }
	admin := func() int {
		if r.IntN(4) == 0 {
			return p.laptops + r.IntN(p.hubs) // a hub settles too
		}
		return r.IntN(p.admins)
	}
	// Start connected in small groups, as a team leaving the office.
	for i := 0; i+1 < p.laptops; i += 2 {
		steps = append(steps, simStep{Kind: stUp, A: i, B: i + 1})
	}
	for len(steps) < p.steps {
		s := simStep{X: r.Uint64(), Y: r.Uint64()}
		switch w := r.IntN(100); {
		case w < 1:
			s.Kind, s.A = stBulk, laptop()
		case w < 12:
			s.Kind, s.A = stCapture, laptop()
			if r.IntN(8) == 0 {
				s.A = node() // a hub or admin captures too, rarely
			}
		case w < 22:
			s.Kind, s.A = stEdit, laptop()
		case w < 30:
			s.Kind, s.A, s.B = stTwin, laptop(), laptop()
		case w < 34:
			s.Kind, s.A = stView, admin()
		case w < 43:
			s.Kind, s.A = stResolve, admin()
			if r.IntN(10) == 0 {
				s.A = laptop() // a field laptop tries, and is refused
			}
		case w < 48:
			s.Kind, s.A = stMerge, admin()
		case w < 51:
			s.Kind, s.A = stDistinct, admin()
		case w < 60:
			s.Kind, s.A, s.B = stUp, node(), node()
		case w < 65:
			s.Kind, s.A, s.B = stDown, node(), node()
		case w < 67:
			s.Kind, s.A, s.B = stDrop, node(), node()
		case w < 69:
			s.Kind = stPartition
		case w < 89:
			s.Kind = stNet
		case w < 92:
			s.Kind, s.A = stCrash, node()
		case w < 94:
			s.Kind, s.A = stRestart, node()
		case w < 96:
			s.Kind, s.A = stSkew, node()
		case w < 97:
			s.Kind = stIdle
		case w < 98:
			s.Kind, s.A = stGC, node()
		case w < 99:
			s.Kind = stStale
		default:
			s.Kind, s.A = stReceipt, p.laptops+r.IntN(p.hubs)
		}
		steps = append(steps, s)
	}
	return p, steps
}

// Field values are drawn from small pools, so two dossiers often share an
// ID number or a name and date of birth (possible duplicates), and two
// corrections often differ (conflicts).
var (
	simNames   = []string{"Giàng Thị Mỷ", "Giàng Thị Mý", "Giang Thi Mi", "Lò Văn Páo", "Vàng Seo Dìn", "Hoàng Thị Lan"}
	simDOBs    = []string{"1994-03-08", "1987-11-20", "2001-06-30"}
	simIDs     = []string{"002194001234", "002187004321", "002101009999", "002194005555"}
	simCommune = []string{"Lũng Cú", "Đồng Văn", "Sà Phìn", "Mèo Vạc"}
)

func pick[T any](xs []T, x uint64) T { return xs[x%uint64(len(xs))] }

// run executes one step. i is its index in the full schedule.
func (w *simWorld) run(i int, s simStep) {
	w.rng = rand.New(rand.NewPCG(w.seed, uint64(i)+1))
	w.stats.Steps++
	w.logf("step %d %s", i, s)
	ctx := context.Background()
	n := w.nodes[s.A%len(w.nodes)]
	switch s.Kind {
	case stCapture:
		w.capture(n, s.X, s.Y)
	case stBulk:
		for k := 20 + int(s.X%60); k > 0; k-- {
			w.capture(n, w.rng.Uint64(), w.rng.Uint64())
		}
	case stGC:
		if _, err := n.a.store.CollectGarbage(0.5); err != nil {
			w.failf("%s collects garbage: %v", n.name, err)
		}
	case stEdit:
		id, ok := w.pickRecord(n, s.X)
		if !ok {
			return
		}
		field, value := simEditValue(s.Y)
		w.write(n, "edit", func() error {
			_, err := backend{n.a}.Update(ctx, id, map[string]string{field: value})
			return err
		})
	case stTwin:
		m := w.nodes[s.B%len(w.nodes)]
		id, ok := w.pickShared(n, m, s.X)
		if !ok || m == n {
			return
		}
		field, value := simEditValue(s.Y)
		for k, d := range []*simNode{n, m} {
			v := fmt.Sprintf("%s %c", value, 'A'+k)
			w.write(d, "twin", func() error {
				_, err := backend{d.a}.Update(ctx, id, map[string]string{field: v})
				return err
			})
		}
	case stView:
		n.view = w.queue(n)
	case stResolve:
		w.resolve(n, s)
	case stMerge:
		w.merge(n, s)
	case stDistinct:
		dups, err := backend{n.a}.Duplicates(ctx)
		if err != nil {
			w.failf("%s duplicates: %v", n.name, err)
			return
		}
		if len(dups) == 0 {
			return
		}
		d := pick(dups, s.X)
		x, y := d.Records[0], d.Records[1+int(s.Y%uint64(len(d.Records)-1))]
		w.settle(n, "distinct", func() error { return backend{n.a}.Distinct(ctx, x, y) })
	case stUp:
		w.up(s.A%len(w.nodes), s.B%len(w.nodes))
	case stDown:
		w.down(s.A%len(w.nodes), s.B%len(w.nodes))
	case stDrop:
		k := pairKey(s.A%len(w.nodes), s.B%len(w.nodes))
		if w.links[k] != nil {
			w.down(k[0], k[1])
			w.up(k[0], k[1])
		}
	case stPartition:
		for _, k := range w.linkKeys() {
			if (s.X>>k[0])&1 != (s.X>>k[1])&1 {
				w.down(k[0], k[1])
			}
		}
	case stNet:
		for k := 1 + int(s.X%40); k > 0 && w.deliverOne(); k-- {
		}
	case stCrash, stRestart:
		w.bounce(n, s.Kind == stCrash)
	case stSkew:
		d := int64(s.X % uint64(3*24*3600e3))
		if s.Y%2 == 0 {
			d = -d
		}
		n.skew += d
		w.logf("skew %s now %d", n.name, n.skew)
	case stIdle:
		until := w.now + int64(s.X%120e3)
		for {
			l, side := w.nextFrame()
			if l == nil || l.ends[side].q[0].at > until {
				break
			}
			w.deliverOne()
		}
		w.advance(until)
		w.service()
	case stStale:
		w.dropStale()
	case stReceipt:
		if n.role == identity.RoleHub {
			n.a.kickReceipts()
		}
	}
	w.service()
	w.advance(w.now + int64(s.Y%500))
}

// capture writes a new dossier on a device, as POST /v1/records does.
func (w *simWorld) capture(n *simNode, x, y uint64) {
	n.n++
	id := simRecordID(w.seed, n.i, n.n)
	f := map[string]string{
		schema.FieldFullName:    pick(simNames, x),
		schema.FieldDateOfBirth: pick(simDOBs, x>>8),
		"commune":               pick(simCommune, x>>16),
	}
	if y%3 != 0 {
		f[schema.FieldPersonalID] = pick(simIDs, y>>4)
	}
	w.write(n, "capture", func() error {
		_, err := backend{n.a}.write(context.Background(), id, crdt.KindCreate, f)
		return err
	})
}

// simRecordID is a dossier id made from the seed, shaped like the UUIDv7
// the API makes.
func simRecordID(seed uint64, node, n int) string {
	r := rand.New(rand.NewPCG(seed, uint64(node)<<32|uint64(n)))
	return fmt.Sprintf("%08x-%04x-7%03x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff,
		0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
}

func simEditValue(y uint64) (field, value string) {
	switch y % 5 {
	case 0:
		return schema.FieldFullName, pick(simNames, y>>8)
	case 1:
		return schema.FieldPersonalID, pick(simIDs, y>>8)
	case 2:
		return schema.FieldDateOfBirth, pick(simDOBs, y>>8)
	case 3:
		return "phone", fmt.Sprintf("09%08d", (y>>8)%100000000)
	}
	return "commune", pick(simCommune, y>>8)
}

// pickRecord picks one of the records a device holds.
func (w *simWorld) pickRecord(n *simNode, x uint64) (string, bool) {
	ids := w.recordIDs(n)
	if len(ids) == 0 {
		return "", false
	}
	return pick(ids, x), true
}

// pickShared picks a record two devices both hold.
func (w *simWorld) pickShared(n, m *simNode, x uint64) (string, bool) {
	theirs := w.recordIDs(m)
	var both []string
	for _, id := range w.recordIDs(n) {
		if _, found := slices.BinarySearch(theirs, id); found {
			both = append(both, id)
		}
	}
	if len(both) == 0 {
		return "", false
	}
	return pick(both, x), true
}

func (w *simWorld) recordIDs(n *simNode) []string {
	var ids []string
	if err := n.a.store.Records("", func(r *crdt.Record) bool {
		if !incomplete(r) {
			ids = append(ids, r.ID)
		}
		return true
	}); err != nil {
		w.failf("%s records: %v", n.name, err)
	}
	return ids
}

// write runs an API write on a device and keeps every op it acknowledged.
func (w *simWorld) write(n *simNode, what string, call func() error) {
	self := n.dev.ID()
	before := n.a.store.Head(self).Seq
	err := call()
	after := n.a.store.Head(self).Seq
	if err != nil {
		w.failf("%s %s: %v", n.name, what, err)
	}
	if after > before {
		ops, rerr := n.a.store.ReadOps(self, before+1, 0, 0)
		if rerr != nil || len(ops) != int(after-before) {
			w.failf("%s read back its own ops %d..%d: %v", n.name, before+1, after, rerr)
			return
		}
		for k, op := range ops {
			w.acked = append(w.acked, simAck{node: n.name, origin: self, seq: before + 1 + uint64(k), hash: crdt.Hash(op.Body)})
		}
	}
	w.logf("%s %s ops %d..%d", n.name, what, before+1, after)
}

// settle runs an admin decision: refused with 403 on a device that may not
// settle, and with 409 where the API refuses that decision (a system field,
// a dossier already merged); anything else is a finding.
func (w *simWorld) settle(n *simNode, what string, call func() error) {
	var apiErr error
	w.write(n, what, func() error {
		err := call()
		if errors.Is(err, api.ErrForbidden) || errors.Is(err, api.ErrConflict) {
			apiErr = err
			return nil
		}
		return err
	})
	may := n.role == identity.RoleAdmin || n.role == identity.RoleHub
	switch {
	case !may && !errors.Is(apiErr, api.ErrForbidden):
		w.failf("%s (role %s) was let %s", n.name, n.role, what)
	case may && errors.Is(apiErr, api.ErrForbidden):
		w.failf("%s (role %s) was refused %s", n.name, n.role, what)
	case apiErr == nil:
		w.stats.Settles++
	}
}

// queue reads the conflict queue as an admin sees it.
func (w *simWorld) queue(n *simNode) []simSeen {
	cs, err := backend{n.a}.Conflicts(context.Background())
	if err != nil {
		w.failf("%s conflicts: %v", n.name, err)
		return nil
	}
	out := make([]simSeen, 0, len(cs))
	for _, c := range cs {
		s := simSeen{record: c.Record, field: c.Field}
		for _, v := range c.Values {
			s.values = append(s.values, v.Value)
			s.ops = append(s.ops, v.Op)
		}
		out = append(out, s)
	}
	return out
}

// resolve settles one conflict with the values the admin was shown: the
// queue as it looked at the last view (values may have arrived since) or
// as it is now. The chosen value is one of those shown or a new one typed.
func (w *simWorld) resolve(n *simNode, s simStep) {
	seen := n.view
	if len(seen) == 0 || s.Y%3 == 0 {
		seen = w.queue(n)
	}
	if len(seen) == 0 {
		return
	}
	c := pick(seen, s.X)
	value := pick(c.values, s.X>>16)
	if s.Y%5 == 1 {
		value = c.values[0] + " (đã sửa)"
	}
	if c.field == crdt.FieldRetiredInto {
		value = pick(c.values, s.X>>16)
	}
	req := api.ResolveRequest{Field: c.field, Value: value, Seen: c.ops}
	w.settle(n, "resolve", func() error {
		_, err := backend{n.a}.Resolve(context.Background(), c.record, req)
		return err
	})
}

// merge merges two dossiers of a possible-duplicate group, choosing some
// values from the other one.
func (w *simWorld) merge(n *simNode, s simStep) {
	dups, err := backend{n.a}.Duplicates(context.Background())
	if err != nil {
		w.failf("%s duplicates: %v", n.name, err)
		return
	}
	if len(dups) == 0 {
		return
	}
	d := pick(dups, s.X)
	ids := slices.Clone(d.Records)
	sort.Strings(ids)
	i := int(s.Y % uint64(len(ids)))
	j := (i + 1 + int((s.Y>>8)%uint64(len(ids)-1))) % len(ids)
	req := api.MergeRequest{Survivor: ids[i], Other: ids[j], Fields: map[string]string{}}
	if other, err := n.a.store.Record(ids[j]); err == nil && s.X%2 == 0 {
		if v, ok := other.Fields[schema.FieldFullName].Winner(); ok {
			req.Fields[schema.FieldFullName] = v.Value
		}
	}
	w.settle(n, "merge", func() error {
		_, err := backend{n.a}.Merge(context.Background(), req)
		return err
	})
}

// bounce crashes (kill -9) or restarts a device. Its sessions end with
// whatever was in flight, on both sides; it then meets the same peers again.
func (w *simWorld) bounce(n *simNode, crash bool) {
	peers := w.isolate(n)
	var err error
	if crash {
		w.stats.Crashes++
		err = n.crash()
	} else {
		w.stats.Restarts++
		err = n.restart()
	}
	if err != nil {
		w.failf("%s does not start again: %v", n.name, err)
		return
	}
	w.logf("%s %s gen %d", n.name, map[bool]string{true: "crashed", false: "restarted"}[crash], n.gen)
	w.checkDurable(n)
	for _, p := range peers {
		w.up(n.i, p)
	}
}

// checkDurable checks, after a crash or restart, that the device holds
// every op it acknowledged: its own, answered to an API call, and every
// op of any origin it acked to a peer.
func (w *simWorld) checkDurable(n *simNode) {
	vv := n.a.store.VersionVector()
	for o, s := range w.sent[n.name] {
		if vv[o] < s {
			w.failf("%s acked %.8s up to %d to a peer but holds %d after a crash", n.name, o, s, vv[o])
		}
	}
	for _, a := range w.acked {
		if a.node != n.name {
			continue
		}
		ops, err := n.a.store.ReadOps(a.origin, a.seq, 1, 0)
		if err != nil || len(ops) != 1 || crdt.Hash(ops[0].Body) != a.hash {
			w.failf("%s lost its acknowledged op %d after a crash (%v)", n.name, a.seq, err)
		}
	}
}

// heal ends every fault: replaced sessions are reset, and the laptops are
// joined by a random spanning tree, so some meet only through relays; each
// hub meets one laptop, and hubs meet each other.
func (w *simWorld) heal(laptops int) {
	w.rng = rand.New(rand.NewPCG(w.seed, 0x6865616c))
	w.dropStale()
	order := w.rng.Perm(laptops)
	for k := 1; k < len(order); k++ {
		i, j := order[k], order[w.rng.IntN(k)]
		if w.links[pairKey(i, j)] == nil {
			w.up(i, j)
		}
	}
	var hubs []int
	for i := laptops; i < len(w.nodes); i++ {
		hubs = append(hubs, i)
		if j := w.rng.IntN(laptops); w.links[pairKey(i, j)] == nil {
			w.up(i, j)
		}
	}
	for k := 1; k < len(hubs); k++ {
		if w.links[pairKey(hubs[0], hubs[k])] == nil {
			w.up(hubs[0], hubs[k])
		}
	}
	for _, n := range w.nodes {
		if n.role == identity.RoleHub {
			n.a.kickReceipts()
		}
	}
	w.service()
}

func (w *simWorld) nodeNames() string {
	var b strings.Builder
	for _, n := range w.nodes {
		fmt.Fprintf(&b, "%s(%s,skew %+.1fh) ", n.name, n.role, float64(n.skew)/3600e3)
	}
	return b.String()
}
