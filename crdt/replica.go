package crdt

// Replica is an in-memory replica: the reference implementation of delivery
// that the store mirrors on disk, and the unit that property tests and
// simulated networks run many of. It accepts ops in any order and any number
// of times: duplicates are ignored and ops that arrive ahead of a gap in their
// origin's log wait until the gap is filled.
type Replica struct {
	VV      VersionVector
	Records map[string]*Record
	waiting map[string]map[uint64]*Op
}

// NewReplica returns an empty replica.
func NewReplica() *Replica {
	return &Replica{VV: VersionVector{}, Records: map[string]*Record{}, waiting: map[string]map[uint64]*Op{}}
}

// Deliver hands the replica one op and returns the ops applied as a result,
// in order (none if op is a duplicate or waits for a gap).
func (r *Replica) Deliver(op *Op) []*Op {
	if op.Seq <= r.VV[op.Origin] {
		return nil
	}
	if op.Seq > r.VV[op.Origin]+1 {
		w := r.waiting[op.Origin]
		if w == nil {
			w = map[uint64]*Op{}
			r.waiting[op.Origin] = w
		}
		w[op.Seq] = op
		return nil
	}
	var applied []*Op
	for op != nil {
		r.apply(op)
		applied = append(applied, op)
		next := op.Seq + 1
		op = r.waiting[op.Origin][next]
		if op != nil {
			delete(r.waiting[op.Origin], next)
		}
	}
	return applied
}

func (r *Replica) apply(op *Op) {
	rec := r.Records[op.Record]
	if rec == nil {
		rec = NewRecord(op.Record)
		r.Records[op.Record] = rec
	}
	rec.Apply(op, r.VV.Covers)
	r.VV[op.Origin] = op.Seq
}

// Waiting is the number of ops held back by gaps.
func (r *Replica) Waiting() int {
	n := 0
	for _, w := range r.waiting {
		n += len(w)
	}
	return n
}
