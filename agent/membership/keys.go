package membership

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// keyRotation replaces the gossip key in memberlist's keyring in two steps
// over a bounded overlap, so that a team never splits while the new key
// spreads: for the first half of the overlap we still send with the old
// key and accept both (a laptop that has not yet got the key can still
// read us and reach us), for the second half we send with the new key and
// accept both (laptops that switched later can still reach us), and then
// only the new key is accepted. A laptop that gets the key after the
// overlap meets the team again through libp2p (mDNS, configured peers, the
// hub), which hands it the revocation list and thus the key.
type keyRotation struct {
	mu     sync.Mutex
	ring   *memberlist.Keyring
	timers []*time.Timer
	gen    uint64 // bumped by every RotateKey; stale timers do nothing
	done   bool
}

// RotateKey starts replacing the gossip key with key (KeySize bytes): it
// is accepted at once, used for sending after overlap/2, and after overlap
// every other key is dropped. A zero overlap switches at once. A later
// RotateKey replaces any rotation still in progress.
func (m *Membership) RotateKey(key []byte, overlap time.Duration) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalidConfig, len(key), KeySize)
	}
	if overlap < 0 {
		return fmt.Errorf("%w: negative key overlap %v", ErrInvalidConfig, overlap)
	}
	key = bytes.Clone(key)
	r := &m.keys
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return ErrClosed
	}
	for _, t := range r.timers {
		t.Stop()
	}
	r.timers = nil
	r.gen++
	gen := r.gen
	if err := r.ring.AddKey(key); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	if overlap == 0 {
		m.dropOldKeysLocked(key)
		return nil
	}
	m.log.Info("gossip key: a new key is accepted; the old one stays in use for the overlap", "overlap", overlap.String())
	later := func(f func([]byte)) func() {
		return func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.gen == gen && !r.done {
				f(key)
			}
		}
	}
	r.timers = append(r.timers, time.AfterFunc(overlap/2, later(m.useKeyLocked)), time.AfterFunc(overlap, later(m.dropOldKeysLocked)))
	return nil
}

// useKeyLocked sends with key from now on. keys.mu is held.
func (m *Membership) useKeyLocked(key []byte) {
	if bytes.Equal(m.keys.ring.GetPrimaryKey(), key) {
		return
	}
	if err := m.keys.ring.UseKey(key); err != nil {
		m.log.Error("gossip key: switch to the new key", "err", err)
		return
	}
	m.log.Info("gossip key: sending with the new key; the old one is still accepted")
}

// dropOldKeysLocked makes key the only key. keys.mu is held.
func (m *Membership) dropOldKeysLocked(key []byte) {
	m.useKeyLocked(key)
	for _, k := range m.keys.ring.GetKeys() {
		if !bytes.Equal(k, key) {
			if err := m.keys.ring.RemoveKey(k); err != nil {
				m.log.Error("gossip key: drop an old key", "err", err)
			}
		}
	}
	m.log.Info("gossip key: only the new key is accepted now")
}

// KeyCount returns how many gossip keys are accepted now (2 during an
// overlap, else 1).
func (m *Membership) KeyCount() int {
	m.keys.mu.Lock()
	defer m.keys.mu.Unlock()
	return len(m.keys.ring.GetKeys())
}

func (m *Membership) stopRotation() {
	r := &m.keys
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	for _, t := range r.timers {
		t.Stop()
	}
	r.timers = nil
}
