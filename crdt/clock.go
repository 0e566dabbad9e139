package crdt

import "fmt"

// Timestamp is a hybrid logical clock reading: wall-clock milliseconds since
// the Unix epoch, and a logical counter that orders events within one
// millisecond or when a device's clock runs behind a peer's.
type Timestamp struct {
	Wall    int64  `cbor:"1,keyasint"`
	Logical uint32 `cbor:"2,keyasint,omitempty"`
}

// Compare orders timestamps: -1, 0 or +1.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Wall < u.Wall:
		return -1
	case t.Wall > u.Wall:
		return 1
	case t.Logical < u.Logical:
		return -1
	case t.Logical > u.Logical:
		return 1
	}
	return 0
}

// IsZero reports whether t was never set.
func (t Timestamp) IsZero() bool { return t.Wall == 0 && t.Logical == 0 }

func (t Timestamp) String() string { return fmt.Sprintf("%d.%d", t.Wall, t.Logical) }

// Clock is a hybrid logical clock. It never reads the wall clock itself: the
// caller passes the current wall time in milliseconds, so tests replay exactly.
// The zero value is ready to use. Not safe for concurrent use.
type Clock struct {
	Last Timestamp
}

// Now returns a timestamp greater than every timestamp this clock has issued
// or observed, as close to wallMillis as that allows.
func (c *Clock) Now(wallMillis int64) Timestamp {
	if wallMillis > c.Last.Wall {
		c.Last = Timestamp{Wall: wallMillis}
	} else {
		c.Last.Logical++
	}
	return c.Last
}

// Observe folds in a timestamp seen on a received op, so that the next local
// event is ordered after it even when this laptop's clock is behind.
//
// A remote reading far in the future (a peer with a wrong clock) would drag
// every later local timestamp with it; maxDriftMillis bounds how far ahead of
// wallMillis a remote reading may pull this clock. Readings beyond it are
// ignored for the clock (the op itself is still applied).
func (c *Clock) Observe(remote Timestamp, wallMillis, maxDriftMillis int64) {
	if remote.Wall-wallMillis > maxDriftMillis {
		return
	}
	if remote.Compare(c.Last) > 0 {
		c.Last = remote
	}
}
