package crdt

import (
	"slices"
	"sort"
)

// Sibling is one live value of a field: the value, the op that wrote it and
// that op's time.
type Sibling struct {
	Dot   Dot       `cbor:"1,keyasint"`
	Time  Timestamp `cbor:"2,keyasint"`
	Value string    `cbor:"3,keyasint"`
}

// Register is a multi-value register: the values of one field that no
// delivered write has superseded. More than one live value is a conflict.
type Register struct {
	// Live is sorted by (Time, Dot): the last one is the deterministic winner
	// shown when there is a conflict. The others are kept until a write that
	// saw them replaces them.
	Live []Sibling `cbor:"1,keyasint"`
	// Pending holds dots superseded by a delivered write before they were
	// delivered themselves (ops of different origins arrive in any order).
	// When such a dot arrives it is dropped instead of coming back to life.
	// Sorted.
	Pending []Dot `cbor:"2,keyasint,omitempty"`
}

// Winner is the value shown for the field: the latest live value by
// (Time, Dot). ok is false for a register with no live value.
func (r Register) Winner() (s Sibling, ok bool) {
	if len(r.Live) == 0 {
		return Sibling{}, false
	}
	return r.Live[len(r.Live)-1], true
}

// Conflict reports whether the field's live values differ. Siblings that
// agree (two officers who corrected a name the same way apart, two admins
// taking the same decision) are kept but are not a conflict.
func (r Register) Conflict() bool {
	for _, s := range r.Live[min(1, len(r.Live)):] {
		if s.Value != r.Live[0].Value {
			return true
		}
	}
	return false
}

// LiveDots returns the dots of the live values: what a write that saw the
// field as it is now supersedes.
func (r Register) LiveDots() []Dot {
	out := make([]Dot, len(r.Live))
	for i, s := range r.Live {
		out[i] = s.Dot
	}
	return out
}

func siblingLess(a, b Sibling) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return a.Dot.Compare(b.Dot)
}

// write applies one field write of op dot d. delivered reports whether a dot
// has already been applied to this replica.
func (r *Register) write(d Dot, t Timestamp, w FieldWrite, delivered func(Dot) bool) {
	for _, s := range w.Seen {
		if i := slices.IndexFunc(r.Live, func(x Sibling) bool { return x.Dot == s }); i >= 0 {
			r.Live = slices.Delete(r.Live, i, i+1)
			continue
		}
		if !delivered(s) {
			if i, found := slices.BinarySearchFunc(r.Pending, s, Dot.Compare); !found {
				r.Pending = slices.Insert(r.Pending, i, s)
			}
		}
	}
	if i, found := slices.BinarySearchFunc(r.Pending, d, Dot.Compare); found {
		r.Pending = slices.Delete(r.Pending, i, i+1)
		return
	}
	if slices.ContainsFunc(r.Live, func(x Sibling) bool { return x.Dot == d }) {
		return // a duplicate delivery
	}
	sib := Sibling{Dot: d, Time: t, Value: w.Value}
	i, _ := slices.BinarySearchFunc(r.Live, sib, siblingLess)
	r.Live = slices.Insert(r.Live, i, sib)
}

// Record is the merged state of one dossier.
type Record struct {
	ID     string              `cbor:"1,keyasint"`
	Fields map[string]Register `cbor:"2,keyasint"`
	// Created is the dot of the op that created the record; zero until that
	// op has been delivered (an update from another origin may come first).
	Created Dot `cbor:"3,keyasint,omitempty"`
	// CreatedAt is the creating op's time.
	CreatedAt Timestamp `cbor:"4,keyasint,omitempty"`
	// Updated is the latest time of any op applied to the record.
	Updated Timestamp `cbor:"5,keyasint,omitempty"`
	// Ops counts the ops applied to the record. Replicas holding the same ops
	// agree on it and one holding more has a larger count, so it orders
	// states of one record exported by different hubs.
	Ops uint64 `cbor:"6,keyasint,omitempty"`
}

// NewRecord returns an empty record with the given id.
func NewRecord(id string) *Record {
	return &Record{ID: id, Fields: map[string]Register{}}
}

// Apply merges op into the record. delivered must report whether a dot has
// been applied to this replica before op (the replica's version vector before
// op): it tells a superseded value that is gone from one that has yet to
// arrive. The caller applies each origin's ops in seq order and each op once;
// Apply is then commutative across origins.
func (r *Record) Apply(op *Op, delivered func(Dot) bool) {
	if r.Fields == nil {
		r.Fields = map[string]Register{}
	}
	d := op.Dot()
	for name, w := range op.Fields {
		reg := r.Fields[name]
		reg.write(d, op.Time, w, delivered)
		r.Fields[name] = reg
	}
	if op.Kind == KindCreate && (r.Created == Dot{}) {
		r.Created = d
		r.CreatedAt = op.Time
	}
	if op.Time.Compare(r.Updated) > 0 {
		r.Updated = op.Time
	}
	r.Ops++
}

// Values returns the winner of every field that has a live value.
func (r *Record) Values() map[string]string {
	out := make(map[string]string, len(r.Fields))
	for name, reg := range r.Fields {
		if s, ok := reg.Winner(); ok {
			out[name] = s.Value
		}
	}
	return out
}

// Conflicts returns the names of the fields with more than one live value,
// sorted.
func (r *Record) Conflicts() []string {
	var out []string
	for name, reg := range r.Fields {
		if reg.Conflict() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Writes turns a set of new field values into the writes of an ordinary
// edit made by a device that holds this record as it is now: a field with one
// live value is replaced; a field with several is not settled by an edit
// (that is an admin's decision; see Op.Settles), so the new value joins the
// siblings. A nil record
// (a new dossier) gives writes that supersede nothing.
func Writes(r *Record, values map[string]string) map[string]FieldWrite {
	out := make(map[string]FieldWrite, len(values))
	for name, v := range values {
		w := FieldWrite{Value: v}
		if r != nil {
			if reg, ok := r.Fields[name]; ok && len(reg.Live) == 1 {
				w.Seen = reg.LiveDots()
			}
		}
		out[name] = w
	}
	return out
}

// SettlingWrites are the writes of an admin's decision: each field write
// supersedes exactly the given dots (the values the admin saw). A value that
// arrives later, concurrent with the decision, is not among them and so
// survives as a new conflict instead of being lost. With seen nil for a
// field, the field's live values as held now are superseded.
func SettlingWrites(r *Record, values map[string]string, seen map[string][]Dot) map[string]FieldWrite {
	out := make(map[string]FieldWrite, len(values))
	for name, v := range values {
		w := FieldWrite{Value: v}
		if s, ok := seen[name]; ok {
			w.Seen = slices.Clone(s)
		} else if r != nil {
			w.Seen = r.Fields[name].LiveDots()
		}
		if len(w.Seen) == 0 {
			w.Seen = nil
		}
		out[name] = w
	}
	return out
}

// RetiredInto is the id of the record this one was merged into, or "".
func (r *Record) RetiredInto() string {
	if s, ok := r.Fields[FieldRetiredInto].Winner(); ok {
		return s.Value
	}
	return ""
}
