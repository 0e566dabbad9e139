package crdt

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// device is a simulated laptop: a replica plus the ability to write ops the
// way the agent does (Writes over its current view).
type device struct {
	name  string
	rep   *Replica
	clock Clock
	seq   uint64
}

func (d *device) write(recID string, values map[string]string, wall int64) *Op {
	d.seq++
	rec := d.rep.Records[recID]
	kind := KindUpdate
	if rec == nil {
		kind = KindCreate
	}
	op := &Op{Origin: d.name, Seq: d.seq, Time: d.clock.Now(wall), Record: recID, Kind: kind, Fields: Writes(rec, values)}
	d.rep.Deliver(op)
	return op
}

func (d *device) receive(op *Op) {
	d.clock.Observe(op.Time, op.Time.Wall, 1<<40)
	d.rep.Deliver(op)
}

// scenario plays random captures, edits and partial syncs among devices and
// returns every op written.
func scenario(t *rapid.T) ([]*device, []*Op) {
	n := rapid.IntRange(2, 4).Draw(t, "devices")
	devs := make([]*device, n)
	for i := range devs {
		devs[i] = &device{name: fmt.Sprintf("dev%d", i), rep: NewReplica()}
	}
	fields := []string{"full_name", "sex", "commune", "phone"}
	var all []*Op
	steps := rapid.IntRange(1, 40).Draw(t, "steps")
	wall := int64(1_700_000_000_000)
	for s := 0; s < steps; s++ {
		wall += int64(rapid.IntRange(0, 3).Draw(t, "tick"))
		d := devs[rapid.IntRange(0, n-1).Draw(t, "who")]
		switch rapid.IntRange(0, 2).Draw(t, "action") {
		case 0: // capture a new dossier
			id := fmt.Sprintf("r%d", len(all))
			all = append(all, d.write(id, map[string]string{"full_name": "Nguyễn Văn A", "sex": "nam"}, wall))
		case 1: // edit a dossier this device knows
			if len(d.rep.Records) == 0 {
				continue
			}
			ids := make([]string, 0, len(d.rep.Records))
			for id := range d.rep.Records {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			id := rapid.SampledFrom(ids).Draw(t, "record")
			f := rapid.SampledFrom(fields).Draw(t, "field")
			v := rapid.SampledFrom([]string{"Mý", "Mí", "Vừ Mí Chứ", "nữ", "Pả Vi", "0912345678"}).Draw(t, "value")
			all = append(all, d.write(id, map[string]string{f: v}, wall))
		case 2: // partial sync: d receives a random subset of all ops, any order
			for _, i := range rapid.Permutation(indexes(len(all))).Draw(t, "order") {
				if rapid.Bool().Draw(t, "take") {
					d.receive(all[i])
				}
			}
		}
	}
	return devs, all
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func snapshot(t interface{ Fatalf(string, ...any) }, r *Replica) []byte {
	ids := make([]string, 0, len(r.Records))
	for id := range r.Records {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var buf bytes.Buffer
	for _, id := range ids {
		b, err := Marshal(r.Records[id])
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		buf.Write(b)
	}
	vv, _ := Marshal(r.VV)
	buf.Write(vv)
	return buf.Bytes()
}

// Any set of ops delivered to three or more replicas in any order, with
// duplicates, gives identical states, equal to the naive reference.
func TestConvergenceAnyOrderWithDuplicates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		devs, all := scenario(t)
		replicas := rapid.IntRange(3, 5).Draw(t, "replicas")
		var first []byte
		for i := 0; i < replicas; i++ {
			r := NewReplica()
			order := rapid.SliceOfN(rapid.IntRange(0, max(len(all)-1, 0)), len(all), 3*len(all)+1).Draw(t, "delivery")
			if len(all) == 0 {
				order = nil
			}
			for _, j := range order {
				r.Deliver(all[j])
			}
			for _, op := range all { // make sure every op arrives at least once
				r.Deliver(op)
			}
			if r.Waiting() != 0 {
				t.Fatalf("replica %d: %d ops still waiting with every op delivered", i, r.Waiting())
			}
			snap := snapshot(t, r)
			if first == nil {
				first = snap
				checkReference(t, r, all)
			} else if !bytes.Equal(first, snap) {
				t.Fatalf("replica %d diverged", i)
			}
		}
		// The devices themselves converge to the same state once they have everything.
		for _, d := range devs {
			for _, op := range all {
				d.receive(op)
			}
			if !bytes.Equal(first, snapshot(t, d.rep)) {
				t.Fatalf("device %s diverged from fresh replicas", d.name)
			}
		}
	})
}

// checkReference compares a replica holding every op with the naive
// definition of a multi-value register: the live values of a field are the
// values written to it that no op names as seen.
func checkReference(t *rapid.T, r *Replica, all []*Op) {
	type fieldDot struct {
		record, field string
		dot           Dot
	}
	superseded := map[fieldDot]bool{}
	for _, op := range all {
		for name, w := range op.Fields {
			for _, d := range w.Seen {
				superseded[fieldDot{op.Record, name, d}] = true
			}
		}
	}
	want := map[string]map[string][]Dot{}
	for _, op := range all {
		for name := range op.Fields {
			if superseded[fieldDot{op.Record, name, op.Dot()}] {
				continue
			}
			if want[op.Record] == nil {
				want[op.Record] = map[string][]Dot{}
			}
			want[op.Record][name] = append(want[op.Record][name], op.Dot())
		}
	}
	for id, rec := range r.Records {
		for name, reg := range rec.Fields {
			got := reg.LiveDots()
			w := want[id][name]
			slices.SortFunc(got, Dot.Compare)
			slices.SortFunc(w, Dot.Compare)
			if !slices.Equal(got, w) {
				t.Fatalf("record %s field %s: live %v, reference %v", id, name, got, w)
			}
			if len(reg.Pending) != 0 {
				t.Fatalf("record %s field %s: pending %v with every op delivered", id, name, reg.Pending)
			}
		}
	}
}

// Two officers who correct the same field apart keep both values; a write
// that saw both replaces them, everywhere.
func TestConcurrentWritesAreSiblingsUntilAWriteSeesThem(t *testing.T) {
	a := &device{name: "a", rep: NewReplica()}
	b := &device{name: "b", rep: NewReplica()}
	c := &device{name: "c", rep: NewReplica()}
	create := a.write("r1", map[string]string{"full_name": "Thò Thị Súng", "sex": "nữ"}, 1000)
	b.receive(create)
	fixA := a.write("r1", map[string]string{"full_name": "Thò Thị Sung"}, 2000)
	fixB := b.write("r1", map[string]string{"full_name": "Thào Thị Súng"}, 2000)
	for _, op := range []*Op{fixB, fixA, create} { // c hears them out of order
		c.receive(op)
	}
	a.receive(fixB)
	b.receive(fixA)
	for _, d := range []*device{a, b, c} {
		reg := d.rep.Records["r1"].Fields["full_name"]
		if len(reg.Live) != 2 {
			t.Fatalf("%s: want 2 siblings, got %+v", d.name, reg.Live)
		}
		if got := d.rep.Records["r1"].Conflicts(); !slices.Equal(got, []string{"full_name"}) {
			t.Fatalf("%s: conflicts %v", d.name, got)
		}
	}
	settle := c.write("r1", map[string]string{"full_name": "Thò Thị Súng"}, 3000)
	if len(settle.Fields["full_name"].Seen) != 2 {
		t.Fatalf("settling write saw %v", settle.Fields["full_name"].Seen)
	}
	a.receive(settle)
	b.receive(settle)
	for _, d := range []*device{a, b, c} {
		rec := d.rep.Records["r1"]
		if v := rec.Values()["full_name"]; v != "Thò Thị Súng" || rec.Fields["full_name"].Conflict() {
			t.Fatalf("%s: after settle %q conflict=%v", d.name, v, rec.Fields["full_name"].Conflict())
		}
		if rec.Values()["sex"] != "nữ" {
			t.Fatalf("%s: untouched field changed", d.name)
		}
	}
}

// A write that supersedes a value not yet delivered keeps it from coming
// back when it arrives later.
func TestSupersededBeforeArrivalStaysDead(t *testing.T) {
	a := &device{name: "a", rep: NewReplica()}
	b := &device{name: "b", rep: NewReplica()}
	op1 := a.write("r", map[string]string{"commune": "Vạn Thạnh"}, 10)
	b.receive(op1)
	op2 := b.write("r", map[string]string{"commune": "Pả Vi"}, 20)
	r := NewReplica()
	r.Deliver(op2)
	if got := r.Records["r"].Fields["commune"].Pending; len(got) != 1 {
		t.Fatalf("pending %v", got)
	}
	r.Deliver(op1)
	reg := r.Records["r"].Fields["commune"]
	if len(reg.Live) != 1 || reg.Live[0].Value != "Pả Vi" || len(reg.Pending) != 0 {
		t.Fatalf("register %+v", reg)
	}
	if r.Records["r"].Created != op1.Dot() {
		t.Fatalf("created %v", r.Records["r"].Created)
	}
}

func TestReplicaWaitsForGaps(t *testing.T) {
	a := &device{name: "a", rep: NewReplica()}
	ops := []*Op{a.write("r", map[string]string{"sex": "nam"}, 1), a.write("r", map[string]string{"sex": "nữ"}, 2), a.write("r", map[string]string{"sex": "khác"}, 3)}
	r := NewReplica()
	if got := r.Deliver(ops[2]); got != nil || r.Waiting() != 1 {
		t.Fatalf("applied %v waiting %d", got, r.Waiting())
	}
	r.Deliver(ops[1])
	if got := r.Deliver(ops[0]); len(got) != 3 {
		t.Fatalf("applied %d ops, want 3", len(got))
	}
	if r.VV["a"] != 3 || r.Records["r"].Values()["sex"] != "khác" {
		t.Fatalf("vv %v values %v", r.VV, r.Records["r"].Values())
	}
}
