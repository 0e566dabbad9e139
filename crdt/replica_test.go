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

// settle writes an admin's decision: it supersedes the values this device
// sees for each field.
func (d *device) settle(recID string, kind Kind, values map[string]string, wall int64) *Op {
	d.seq++
	op := &Op{Origin: d.name, Seq: d.seq, Time: d.clock.Now(wall), Record: recID, Kind: kind, Fields: SettlingWrites(d.rep.Records[recID], values, nil)}
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
		switch rapid.IntRange(0, 3).Draw(t, "action") {
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
		case 3: // the admin (dev0) settles a conflict it sees
			admin := devs[0]
			for _, id := range sortedIDs(admin.rep) {
				rec := admin.rep.Records[id]
				if c := rec.Conflicts(); len(c) > 0 {
					all = append(all, admin.settle(id, KindResolve, map[string]string{c[0]: "đã thống nhất"}, wall))
					break
				}
			}
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

func sortedIDs(r *Replica) []string {
	ids := make([]string, 0, len(r.Records))
	for id := range r.Records {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
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
	// An ordinary edit does not settle a conflict: it joins the siblings.
	if w := Writes(c.rep.Records["r1"], map[string]string{"full_name": "x"}); len(w["full_name"].Seen) != 0 {
		t.Fatalf("an edit of a field in conflict supersedes %v", w["full_name"].Seen)
	}
	settle := c.settle("r1", KindResolve, map[string]string{"full_name": "Thò Thị Súng"}, 3000)
	if !settle.Settles() {
		t.Fatal("a resolve op does not count as settling")
	}
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

// A decision concurrent with a new value supersedes only what the admin saw:
// the new value survives as a new conflict.
func TestDecisionConcurrentWithANewValue(t *testing.T) {
	a := &device{name: "a", rep: NewReplica()}
	b := &device{name: "b", rep: NewReplica()}
	admin := &device{name: "admin", rep: NewReplica()}
	create := a.write("r", map[string]string{"full_name": "Vừ Mí Chứ"}, 1)
	b.receive(create)
	fa := a.write("r", map[string]string{"full_name": "Vừ Mí Chử"}, 2)
	fb := b.write("r", map[string]string{"full_name": "Vừ Mý Chứ"}, 2)
	for _, op := range []*Op{create, fa, fb} {
		admin.receive(op)
	}
	b.receive(fa)
	decision := admin.settle("r", KindResolve, map[string]string{"full_name": "Vừ Mí Chứ"}, 3)
	late := b.write("r", map[string]string{"full_name": "Vừ Mí Chứa"}, 3) // b had not seen the decision
	for _, d := range []*device{a, b, admin} {
		for _, op := range []*Op{create, fa, fb, decision, late} {
			d.receive(op)
		}
		reg := d.rep.Records["r"].Fields["full_name"]
		var vals []string
		for _, s := range reg.Live {
			vals = append(vals, s.Value)
		}
		slices.Sort(vals)
		if !slices.Equal(vals, []string{"Vừ Mí Chứ", "Vừ Mí Chứa"}) {
			t.Fatalf("%s: live %v, want the decision and the late value", d.name, vals)
		}
	}
}

// Two admins merging one record into two different survivors: the retired
// record's pointer is itself a conflict an admin sees.
func TestTwoAdminsMergingDifferently(t *testing.T) {
	a := &device{name: "admin1", rep: NewReplica()}
	b := &device{name: "admin2", rep: NewReplica()}
	x := a.write("x", map[string]string{"full_name": "Sùng Seo Dính"}, 1)
	b.receive(x)
	ra := a.settle("x", KindRetire, map[string]string{FieldRetiredInto: "y"}, 2)
	rb := b.settle("x", KindRetire, map[string]string{FieldRetiredInto: "z"}, 2)
	a.receive(rb)
	b.receive(ra)
	for _, d := range []*device{a, b} {
		rec := d.rep.Records["x"]
		if !slices.Equal(rec.Conflicts(), []string{FieldRetiredInto}) {
			t.Fatalf("%s: conflicts %v", d.name, rec.Conflicts())
		}
		if got := rec.RetiredInto(); got != "y" && got != "z" {
			t.Fatalf("%s: retired into %q", d.name, got)
		}
	}
}

// A merge concurrent with an edit of the retired record keeps the edit.
func TestMergeConcurrentWithAnEdit(t *testing.T) {
	officer := &device{name: "officer", rep: NewReplica()}
	admin := &device{name: "admin", rep: NewReplica()}
	x := officer.write("x", map[string]string{"full_name": "Lò Văn Páo", "phone": "0912000000"}, 1)
	admin.receive(x)
	retire := admin.settle("x", KindRetire, map[string]string{FieldRetiredInto: "y"}, 2)
	edit := officer.write("x", map[string]string{"phone": "0987000000"}, 2)
	admin.receive(edit)
	officer.receive(retire)
	for _, d := range []*device{officer, admin} {
		rec := d.rep.Records["x"]
		if rec.RetiredInto() != "y" || rec.Values()["phone"] != "0987000000" {
			t.Fatalf("%s: retired %q phone %q", d.name, rec.RetiredInto(), rec.Values()["phone"])
		}
	}
	if edit.Settles() || !retire.Settles() {
		t.Fatal("Settles misclassifies")
	}
}

// Siblings that agree are kept but are not a conflict.
func TestAgreeingSiblingsAreNotAConflict(t *testing.T) {
	a := &device{name: "a", rep: NewReplica()}
	b := &device{name: "b", rep: NewReplica()}
	create := a.write("r", map[string]string{"full_name": "Thò Thị Sung"}, 1)
	b.receive(create)
	fa := a.write("r", map[string]string{"full_name": "Thò Thị Súng"}, 2)
	fb := b.write("r", map[string]string{"full_name": "Thò Thị Súng"}, 2)
	a.receive(fb)
	b.receive(fa)
	for _, d := range []*device{a, b} {
		reg := d.rep.Records["r"].Fields["full_name"]
		if len(reg.Live) != 2 || reg.Conflict() || len(d.rep.Records["r"].Conflicts()) != 0 {
			t.Fatalf("%s: %+v conflict=%v", d.name, reg.Live, reg.Conflict())
		}
	}
}
