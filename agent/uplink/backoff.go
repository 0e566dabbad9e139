package uplink

import "time"

// Backoff is the schedule of attempts to reach a hub: exponential from Min,
// capped at Max, with jitter so that a team's laptops arriving at a post
// together do not knock in lockstep. Max is what bounds how long a laptop
// that has just reached a link waits before it finds the hub.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// DefaultBackoff starts at one second and never waits more than 30 seconds,
// so a laptop arriving at the border post finds the hub well within a minute.
func DefaultBackoff() Backoff { return Backoff{Min: time.Second, Max: 30 * time.Second} }

// Next returns the wait before the next attempt. jitter is a random number in
// [0, 1): the wait is drawn from [d/2, d) for the exponential step d.
func (b *Backoff) Next(jitter float64) time.Duration {
	d := b.Min
	for i := 0; i < b.attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.attempt++
	return d/2 + time.Duration(jitter*float64(d/2))
}

// Reset starts the schedule again: after a success, or when a network
// interface comes up (a link may have just appeared).
func (b *Backoff) Reset() { b.attempt = 0 }
