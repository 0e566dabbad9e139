package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/crdt"
)

// Revocation: the authority's signed list of revoked devices spreads from
// agent to agent (docs/protocol.md, "Revocation"). An agent keeps the newest
// valid list in its store, passes it to every peer whose hello shows an
// older one, and enforces it:
//
//   - a revoked device is refused at the hello (Admit), and one connected
//     when the list arrives is told why, its session ended and its peer id
//     denied by the transport's gater;
//   - ops of a revoked origin that this agent did not hold when it installed
//     the list are quarantined (kept, verified, not merged): after install
//     the origin's head never moves, so "not yet held" is "beyond the head at
//     install". The rule does not trust the ops' own times, which the
//     revoked device writes;
//   - receipts a revoked hub issued after its revocation are not believed;
//   - a revoked device is never shown under "peers" nor dialled.

// revocationState is the list in force. Guarded by its mutex; the refusal
// counter is atomic.
type revocationState struct {
	install sync.Mutex // serialises installRevocation
	mu      sync.Mutex
	raw     []byte
	list    *identity.RevocationList
	at      time.Time // when installed here
	refused atomic.Uint64
}

// errPeerRevoked ends a session with a device the list revokes.
var errPeerRevoked = errors.New("peer revoked")

// loadRevocation restores the list kept in the store. A stored list that no
// longer verifies (a damaged store) is dropped with a warning: the next peer
// hands it over again.
func (a *Agent) loadRevocation() error {
	raw, at, err := a.store.Revocation()
	if err != nil || raw == nil {
		return err
	}
	l, err := a.verifier.VerifyRevocation(raw)
	if err != nil {
		a.log.Warn("stored revocation list does not verify; dropped", "err", err)
		return nil
	}
	a.rev.mu.Lock()
	a.rev.raw, a.rev.list, a.rev.at = raw, &l, time.UnixMilli(at)
	a.rev.mu.Unlock()
	a.log.Info("revocation list in force", "number", l.Number, "revoked", revokedNames(&l))
	return nil
}

// revocation returns the list in force (nil: none) and its bytes. The list
// is shared: callers must not change it.
func (a *Agent) revocation() (*identity.RevocationList, []byte) {
	a.rev.mu.Lock()
	defer a.rev.mu.Unlock()
	return a.rev.list, a.rev.raw
}

// revoked reports whether the list in force revokes device id.
func (a *Agent) revoked(id string) (identity.RevokedDevice, bool) {
	l, _ := a.revocation()
	return l.Lookup(id)
}

// isRevoked is revoked without the entry: the store's quarantine rule.
func (a *Agent) isRevoked(id string) bool {
	_, ok := a.revoked(id)
	return ok
}

// revocationNumber is the number of the list in force, 0 for none.
func (a *Agent) revocationNumber() uint64 {
	if l, _ := a.revocation(); l != nil {
		return l.Number
	}
	return 0
}

// revokedReason is what a revoked device is told and what both sides log.
func revokedReason(r identity.RevokedDevice, number uint64) string {
	who := r.DeviceID
	if r.Name != "" {
		who = fmt.Sprintf("%q (%s)", r.Name, r.DeviceID)
	}
	reason := fmt.Sprintf("device %s was revoked by the deployment's authority (revocation list %d, %s)", who,
		number, time.Unix(r.RevokedAt, 0).UTC().Format(time.RFC3339))
	if r.Reason != "" {
		reason += ": " + r.Reason
	}
	return reason
}

// installRevocation verifies a list and, if it is newer than the one in
// force and contains every revocation of it, keeps it durably and enforces
// it. It reports whether the list was installed; the list in force again is
// not an error. Refusals are counted and wrap api.ErrListRefused.
func (a *Agent) installRevocation(raw []byte, from string) (bool, error) {
	a.rev.install.Lock()
	defer a.rev.install.Unlock()
	l, err := a.verifier.VerifyRevocation(raw)
	if err != nil {
		return false, a.refuseRevocation(from, err)
	}
	a.rev.mu.Lock()
	held, heldRaw := a.rev.list, a.rev.raw
	a.rev.mu.Unlock()
	if held != nil {
		switch {
		case l.Number == held.Number && bytes.Equal(raw, heldRaw):
			return false, nil
		case l.Number == held.Number:
			return false, a.refuseRevocation(from, fmt.Errorf("list %d differs from the list %d in force: the authority signed two lists with one number (restored from a backup?)", l.Number, held.Number))
		case l.Number < held.Number:
			return false, a.refuseRevocation(from, fmt.Errorf("list %d is older than the list %d in force", l.Number, held.Number))
		}
		if err := l.Covers(held); err != nil {
			return false, a.refuseRevocation(from, err)
		}
	}
	now := a.cfg.Now()
	if err := a.store.PutRevocation(raw, now.UnixMilli()); err != nil {
		return false, err
	}
	a.rev.mu.Lock()
	a.rev.raw, a.rev.list, a.rev.at = raw, &l, now
	a.rev.mu.Unlock()
	a.log.Warn("revocation list installed", "number", l.Number, "revoked", revokedNames(&l), "from", from)
	a.enforceRevocation(&l)
	return true, nil
}

func (a *Agent) refuseRevocation(from string, err error) error {
	a.rev.refused.Add(1)
	a.log.Warn("refused a revocation list", "from", from, "err", err)
	return fmt.Errorf("%w: %w", api.ErrListRefused, err)
}

// enforceRevocation applies a newly installed list: it ends the sessions
// and connections of revoked peers, forgets receipts their hubs issued after
// their revocation, and wakes every session to pass the list on.
func (a *Agent) enforceRevocation(l *identity.RevocationList) {
	for _, p := range a.host.Admitted() {
		r, ok := l.Lookup(p.DeviceID)
		if !ok {
			continue
		}
		reason := revokedReason(r, l.Number)
		a.log.Warn("disconnecting revoked peer", "peer", p.Name, "device_id", p.DeviceID, "reason", reason)
		a.mu.Lock()
		// The second session too, when the identity runs on two
		// laptops (clone.go): revoked, both copies are out.
		running := []*session{a.sessions[p.PeerID], a.extra[p.PeerID]}
		a.mu.Unlock()
		peerID := p.PeerID
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			timeout := time.After(2 * time.Second)
			for _, s := range running {
				if s == nil {
					continue
				}
				// The session tells the peer why, then ends.
				s.wake()
				select {
				case <-s.done:
				case <-timeout:
				case <-a.stop:
				}
			}
			if err := a.host.Deny(peerID, reason); err != nil {
				a.log.Debug("deny revoked peer", "err", err)
			}
		}()
	}
	a.up.mu.Lock()
	for hub, rc := range a.up.receipts {
		if rv, ok := l.Lookup(hub); ok && rc.Issued > rv.RevokedAt*1000 {
			delete(a.up.receipts, hub)
			delete(a.up.travel, hub)
			a.up.version++
			a.log.Warn("dropped a revoked hub's receipt issued after its revocation", "hub", a.deviceName(hub))
		}
	}
	a.up.mu.Unlock()
	a.rotateGossipKey(l)
	a.wakeSessions()
}

// receiptAfterRevocation says why a receipt of hub issued at issuedMillis is
// not believed, or nil.
func (a *Agent) receiptAfterRevocation(hub string, issuedMillis int64) error {
	l, _ := a.revocation()
	if r, ok := l.Lookup(hub); ok && issuedMillis > r.RevokedAt*1000 {
		return fmt.Errorf("receipt issued by hub %s after its revocation (%s)", hub, time.Unix(r.RevokedAt, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// revokePeerSession is the writer loop's check before it sends anything: a
// revoked peer is told why and the session ends with errPeerRevoked.
func (s *session) revokePeerSession(readErr <-chan error) error {
	l, _ := s.a.revocation()
	r, ok := l.Lookup(s.peer.DeviceID)
	if !ok {
		return nil
	}
	reason := revokedReason(r, l.Number)
	_ = s.send(&wire.Message{Error: &wire.Error{Reason: reason}})
	_ = s.stream.CloseWrite()
	// Give the peer a moment to read the reason before the stream resets.
	select {
	case <-readErr:
	case <-time.After(time.Second):
	case <-s.a.stop:
	}
	return errPeerRevoked
}

// pushRevocation sends the list in force to a peer whose hello showed an
// older one, once per list.
func (s *session) pushRevocation() error {
	s.mu.Lock()
	ready := s.sm.Ready()
	s.mu.Unlock()
	if !ready {
		return nil
	}
	l, raw := s.a.revocation()
	if l == nil || l.Number <= s.peerRevocation.Load() || l.Number <= s.revocationSent {
		return nil
	}
	s.revocationSent = l.Number
	return s.send(&wire.Message{Revocation: &wire.Revocation{Raw: raw}})
}

// takeRevocation handles a list a peer sent.
func (s *session) takeRevocation(raw []byte) {
	if _, err := s.a.installRevocation(raw, s.peer.Name); err == nil {
		if l, _ := s.a.revocation(); l != nil {
			s.notePeerRevocation(l.Number)
		}
	}
}

// notePeerRevocation raises what the peer is known to hold.
func (s *session) notePeerRevocation(n uint64) {
	for {
		old := s.peerRevocation.Load()
		if n <= old || s.peerRevocation.CompareAndSwap(old, n) {
			return
		}
	}
}

// revocationStatus is the list in force for status.
func (a *Agent) revocationStatus() *api.RevocationStatus {
	a.rev.mu.Lock()
	l := a.rev.list
	a.rev.mu.Unlock()
	st := &api.RevocationStatus{Devices: []api.RevokedDevice{}, Refused: a.rev.refused.Load(), GossipEpoch: a.gossipEpoch()}
	if l == nil {
		return st
	}
	st.Number = l.Number
	t := time.Unix(l.Issued, 0).UTC()
	st.Issued = &t
	for _, r := range l.Revoked {
		st.Devices = append(st.Devices, api.RevokedDevice{DeviceID: r.DeviceID, Name: r.Name, Reason: r.Reason,
			RevokedAt: time.Unix(r.RevokedAt, 0).UTC()})
	}
	return st
}

func revokedNames(l *identity.RevocationList) string {
	names := make([]string, 0, len(l.Revoked))
	for _, r := range l.Revoked {
		if r.Name != "" {
			names = append(names, r.Name)
		} else {
			names = append(names, r.DeviceID)
		}
	}
	return strings.Join(names, ", ")
}

// InstallRevocation takes a list from the API (`fieldsync revoke`).
func (b backend) InstallRevocation(_ context.Context, raw []byte) (api.RevocationResult, error) {
	installed, err := b.a.installRevocation(raw, "api")
	if err != nil {
		return api.RevocationResult{}, err
	}
	return api.RevocationResult{Installed: installed, Revocation: *b.a.revocationStatus()}, nil
}

// Quarantine lists the quarantined ops, without their field values.
func (b backend) Quarantine(_ context.Context) ([]api.QuarantinedOp, error) {
	var out []api.QuarantinedOp
	var derr error
	err := b.a.store.Quarantined(func(sg crdt.Signed) bool {
		op, err := crdt.DecodeOp(sg.Body)
		if err != nil {
			derr = err
			return false
		}
		out = append(out, api.QuarantinedOp{Origin: op.Origin, Device: b.a.deviceName(op.Origin), Seq: op.Seq,
			Record: op.Record, Kind: op.Kind.String(), At: hlcTime(op.Time)})
		return true
	})
	if err == nil {
		err = derr
	}
	if errors.Is(err, store.ErrClosed) {
		return nil, err
	}
	slices.SortStableFunc(out, func(x, y api.QuarantinedOp) int { return strings.Compare(x.Origin, y.Origin) })
	return out, err
}

var _ api.Revoker = backend{}
