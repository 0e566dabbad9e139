package crdt

import (
	"encoding/binary"
	"hash/fnv"
	"sort"
)

// Dot names one op, and so one value written by it: the origin device and
// that device's sequence number.
type Dot struct {
	Origin string `cbor:"1,keyasint"`
	Seq    uint64 `cbor:"2,keyasint"`
}

// Compare orders dots by origin then seq, for deterministic output.
func (d Dot) Compare(e Dot) int {
	switch {
	case d.Origin < e.Origin:
		return -1
	case d.Origin > e.Origin:
		return 1
	case d.Seq < e.Seq:
		return -1
	case d.Seq > e.Seq:
		return 1
	}
	return 0
}

// VersionVector maps each origin to the highest seq held from it. Because an
// origin's log has no gaps, the vector is an exact summary of what a replica
// holds: it has every op (o, s) with s ≤ v[o] and no other.
type VersionVector map[string]uint64

// Covers reports whether the replica summarised by v holds the op d.
func (v VersionVector) Covers(d Dot) bool { return d.Seq != 0 && d.Seq <= v[d.Origin] }

// Clone returns an independent copy.
func (v VersionVector) Clone() VersionVector {
	c := make(VersionVector, len(v))
	for o, s := range v {
		c[o] = s
	}
	return c
}

// Merge raises every entry of v to at least the entry in w.
func (v VersionVector) Merge(w VersionVector) {
	for o, s := range w {
		if s > v[o] {
			v[o] = s
		}
	}
}

// Equal reports whether both vectors summarise the same ops (zero entries and
// missing entries are the same thing).
func (v VersionVector) Equal(w VersionVector) bool {
	for o, s := range v {
		if w[o] != s {
			return false
		}
	}
	for o, s := range w {
		if v[o] != s {
			return false
		}
	}
	return true
}

// Total is the number of ops summarised.
func (v VersionVector) Total() uint64 {
	var n uint64
	for _, s := range v {
		n += s
	}
	return n
}

// Range is a run of consecutive ops of one origin, From..To inclusive.
type Range struct {
	Origin   string
	From, To uint64
}

// Len is the number of ops in the range.
func (r Range) Len() uint64 { return r.To - r.From + 1 }

// Missing lists, sorted by origin, the ops v holds and have lacks: what a
// replica summarised by v must send to one summarised by have.
func (v VersionVector) Missing(have VersionVector) []Range {
	var out []Range
	for _, o := range v.Origins() {
		if s, h := v[o], have[o]; s > h {
			out = append(out, Range{Origin: o, From: h + 1, To: s})
		}
	}
	return out
}

// Origins returns the origins with a non-zero entry, sorted.
func (v VersionVector) Origins() []string {
	out := make([]string, 0, len(v))
	for o, s := range v {
		if s > 0 {
			out = append(out, o)
		}
	}
	sort.Strings(out)
	return out
}

// Digest is a 64-bit summary of v (0 for an empty vector), small enough to
// gossip: two replicas with different digests certainly hold different ops.
func (v VersionVector) Digest() uint64 {
	origins := v.Origins()
	if len(origins) == 0 {
		return 0
	}
	h := fnv.New64a()
	var buf [8]byte
	for _, o := range origins {
		h.Write([]byte(o))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(buf[:], v[o])
		h.Write(buf[:])
	}
	d := h.Sum64()
	if d == 0 {
		d = 1
	}
	return d
}
