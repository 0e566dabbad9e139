package agent

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/uplink"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/crdt"
)

// upstream is what this agent knows of delivery to hubs: the latest receipt
// of each hub, as verified and as it travels.
type upstream struct {
	mu       sync.Mutex
	receipts map[string]uplink.Receipt // hub device id -> latest
	travel   map[string]wire.Receipt   // hub device id -> latest, as sent
	version  uint64                    // bumped whenever a receipt changes
	contact  time.Time                 // last time a hub was heard from directly
	lastSelf uplink.Receipt            // on a hub: the last receipt it issued
}

// loadReceipts restores the receipts kept in the store at start.
func (a *Agent) loadReceipts() error {
	a.up.receipts = map[string]uplink.Receipt{}
	a.up.travel = map[string]wire.Receipt{}
	raws, err := a.store.Receipts()
	if err != nil {
		return fmt.Errorf("load receipts: %w", err)
	}
	for hub, raw := range raws {
		var wr wire.Receipt
		if err := crdt.Unmarshal(raw, &wr); err != nil {
			a.log.Warn("stored receipt unreadable; dropped", "hub", hub, "err", err)
			continue
		}
		r, err := uplink.Decode(uplink.Signed{Body: wr.Body, Sig: wr.Sig})
		if err != nil {
			a.log.Warn("stored receipt unreadable; dropped", "hub", hub, "err", err)
			continue
		}
		if err := a.receiptAfterRevocation(hub, r.Issued); err != nil {
			a.log.Warn("stored receipt not believed", "hub", hub, "err", err)
			continue
		}
		a.up.receipts[hub] = r
		a.up.travel[hub] = wr
		if hub == a.dev.ID() {
			a.up.lastSelf = r
		}
	}
	a.up.version = 1
	return nil
}

// safeUpstream merges every hub's receipt: per origin, what is stored
// upstream.
func (a *Agent) safeUpstream() crdt.VersionVector {
	a.up.mu.Lock()
	defer a.up.mu.Unlock()
	rs := make([]uplink.Receipt, 0, len(a.up.receipts))
	for _, r := range a.up.receipts {
		rs = append(rs, r)
	}
	return uplink.Merged(rs)
}

// safeAttached merges every hub's receipt: per origin, up to which op every
// attachment is whole upstream.
func (a *Agent) safeAttached() crdt.VersionVector {
	a.up.mu.Lock()
	defer a.up.mu.Unlock()
	rs := make([]uplink.Receipt, 0, len(a.up.receipts))
	for _, r := range a.up.receipts {
		rs = append(rs, r)
	}
	return uplink.MergedAttached(rs)
}

// receiptsToSend returns the receipts newer than what a session has sent and
// the version they correspond to.
func (a *Agent) receiptsToSend(sent map[string]int64, sentVersion uint64) ([]wire.Receipt, uint64) {
	a.up.mu.Lock()
	defer a.up.mu.Unlock()
	if a.up.version == sentVersion {
		return nil, sentVersion
	}
	var out []wire.Receipt
	for _, hub := range uplink.Hubs(a.up.receipts) {
		r := a.up.receipts[hub]
		if sent[hub] < r.Issued {
			out = append(out, a.up.travel[hub])
			sent[hub] = r.Issued
		}
	}
	return out, a.up.version
}

// acceptReceipts checks receipts received from a peer and keeps the newer
// ones: the hub's credential must be of this deployment with the hub role,
// and the receipt signed by that hub.
func (a *Agent) acceptReceipts(from string, list []wire.Receipt) {
	changed := false
	for _, wr := range list {
		cred, err := identity.UnmarshalCredential(wr.Credential)
		if err == nil {
			err = a.verifier.Verify(cred, time.Unix(cred.IssuedAt, 0))
		}
		if err == nil && cred.Role != identity.RoleHub {
			err = fmt.Errorf("receipt signed by %q, a device with role %s, not a hub", cred.Name, cred.Role)
		}
		var r uplink.Receipt
		if err == nil {
			r, err = uplink.Verify(uplink.Signed{Body: wr.Body, Sig: wr.Sig}, cred.PublicKey)
		}
		if err == nil && r.Hub != cred.DeviceID {
			err = fmt.Errorf("receipt names hub %s but is signed by %s", r.Hub, cred.DeviceID)
		}
		if err == nil {
			err = a.receiptAfterRevocation(r.Hub, r.Issued)
		}
		if err != nil {
			a.log.Warn("refused a receipt", "from", from, "err", err)
			continue
		}
		a.up.mu.Lock()
		newer := r.Issued > a.up.receipts[r.Hub].Issued
		a.up.mu.Unlock()
		if !newer {
			continue
		}
		raw, err := crdt.Marshal(wr)
		if err == nil {
			if err = a.store.PutCredential(cred.DeviceID, cred.PublicKey, wr.Credential); err == nil {
				err = a.store.PutReceipt(r.Hub, raw)
			}
		}
		if err != nil {
			a.log.Warn("keep receipt", "hub", cred.Name, "err", err)
			continue
		}
		a.mu.Lock()
		a.names[cred.DeviceID] = deviceInfo{Name: cred.Name, Role: cred.Role, Officer: cred.Officer}
		a.mu.Unlock()
		a.up.mu.Lock()
		if r.Issued > a.up.receipts[r.Hub].Issued {
			a.up.receipts[r.Hub] = r
			a.up.travel[r.Hub] = wr
			a.up.version++
			changed = true
		}
		a.up.mu.Unlock()
		self := r.Stored[a.dev.ID()]
		a.log.Debug("receipt from hub", "hub", cred.Name, "via", from, "origins", len(r.Stored), "own_ops_stored_upstream", self)
	}
	if changed {
		a.wakeSessions()
	}
}

// issueReceipt signs and spreads a receipt of this hub for what it has
// stored (and exported, where configured). Only a hub calls it, and only
// after the ops it covers are durable.
func (a *Agent) issueReceipt(stored, attached crdt.VersionVector) error {
	a.up.mu.Lock()
	last := a.up.lastSelf
	a.up.mu.Unlock()
	lagging := map[string]uint64{}
	for o, n := range stored {
		if attached[o] < n {
			lagging[o] = attached[o]
		}
	}
	// A zero lag is not "none": maps.Equal, not VersionVector.Equal.
	if crdt.VersionVector(last.Stored).Equal(stored) && last.Attachments && maps.Equal(last.Lagging, lagging) {
		return nil
	}
	r := uplink.Receipt{Hub: a.dev.ID(), Issued: max(a.cfg.Now().UnixMilli(), last.Issued+1), Stored: stored.Clone(),
		Attachments: true, Lagging: lagging}
	signed, err := uplink.Sign(r, a.dev.Private)
	if err != nil {
		return err
	}
	cred, err := a.dev.Credential.Marshal()
	if err != nil {
		return err
	}
	wr := wire.Receipt{Body: signed.Body, Sig: signed.Sig, Credential: cred}
	raw, err := crdt.Marshal(wr)
	if err != nil {
		return err
	}
	if err := a.store.PutReceipt(r.Hub, raw); err != nil {
		return err
	}
	a.up.mu.Lock()
	a.up.lastSelf = r
	a.up.receipts[r.Hub] = r
	a.up.travel[r.Hub] = wr
	a.up.version++
	a.up.mu.Unlock()
	a.log.Debug("receipt issued", "origins", len(stored), "ops", stored.Total())
	a.wakeSessions()
	return nil
}

// receiptLoop runs on a hub: after ops are committed (and exported), it
// issues a receipt covering them. It batches: at most one receipt every
// 200 ms, so a fast upload is not slowed by signing.
func (a *Agent) receiptLoop() {
	for {
		select {
		case <-a.stop:
			return
		case <-a.receiptWake:
		}
		if !a.receiptPass() {
			select {
			case <-a.stop:
				return
			case <-time.After(2 * time.Second):
			}
			a.kickReceipts()
			continue
		}
		select {
		case <-a.stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// receiptPass is one pass of the receipt loop: export what is pending (with
// --postgres), complete attachments, and issue a receipt for what is
// durable. It returns false when the pass must be tried again later (the
// export or an attachment failed). The deterministic simulation
// (sim_test.go) runs its hubs' passes with it.
func (a *Agent) receiptPass() bool {
	stored := a.store.VersionVector()
	if a.exporter != nil {
		var err error
		if stored, err = a.exportPending(); err != nil {
			a.log.Error("export to PostgreSQL failed; receipts wait until it succeeds", "err", err)
			return false
		}
	}
	attached, err := a.completeAttachments(stored)
	if err != nil {
		a.log.Error("attachments not completed; receipts wait until they are", "err", err)
		return false
	}
	if err := a.issueReceipt(stored, attached); err != nil {
		a.log.Error("issue receipt", "err", err)
	}
	return true
}

func (a *Agent) kickReceipts() {
	select {
	case a.receiptWake <- struct{}{}:
	default:
	}
}

// noteHubContact records that a hub was heard from directly.
func (a *Agent) noteHubContact(deviceID string) {
	a.mu.Lock()
	isHub := a.names[deviceID].Role == identity.RoleHub
	a.mu.Unlock()
	if !isHub {
		return
	}
	a.up.mu.Lock()
	a.up.contact = time.Now()
	a.up.mu.Unlock()
}

// hubLoop keeps trying to reach one hub address: exponential backoff with
// jitter, capped so a laptop arriving at a post finds the hub within a
// minute, and at once when the set of network interfaces changes (a link
// may have just come up). Once connected, the ordinary sync session uploads
// every op the hub lacks.
func (a *Agent) hubLoop(addr string) {
	b := uplink.DefaultBackoff()
	peerID := ""
	ifaces := interfaceSignature()
	for {
		if peerID != "" && a.host.IsAdmitted(peerID) {
			if !a.sleep(2 * time.Second) {
				return
			}
			continue
		}
		ctx, cancel := a.untilStop(20 * time.Second)
		id, err := a.host.ConnectAddr(ctx, addr)
		cancel()
		if err == nil {
			if id != peerID {
				a.log.Info("reached the hub", "addr", addr)
			}
			peerID = id
			b.Reset()
			continue
		}
		wait := b.Next(rand.Float64())
		a.log.Debug("hub not reachable", "addr", addr, "retry_in", wait.Round(time.Millisecond), "err", err)
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if !a.sleep(min(time.Until(deadline), 2*time.Second)) {
				return
			}
			if sig := interfaceSignature(); sig != ifaces {
				ifaces = sig
				a.log.Info("network interfaces changed; trying the hub now", "addr", addr)
				b.Reset()
				break
			}
		}
	}
}

// sleep waits d or until the agent stops; false when stopping.
func (a *Agent) sleep(d time.Duration) bool {
	select {
	case <-a.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// interfaceSignature summarises the interfaces that are up with addresses,
// to notice a link coming up without a platform-specific watcher.
func interfaceSignature() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var parts []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, ad := range addrs {
			parts = append(parts, ifc.Name+"="+ad.String())
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// upstreamStatus reports delivery for status.
func (a *Agent) upstreamStatus() api.Upstream {
	safe := a.safeUpstream()
	up := api.Upstream{Hubs: slices.Clone(a.cfg.Hubs), Receipts: map[string]uint64(safe), Origins: map[string]api.OriginDelivery{}}
	if up.Hubs == nil {
		up.Hubs = []string{}
	}
	for origin, d := range a.store.Deliveries(safe) {
		up.Delivered += d.Delivered
		up.Undelivered += d.Captured - d.Delivered
		up.Origins[origin] = api.OriginDelivery{Device: a.deviceName(origin), Captured: d.Captured, Delivered: d.Delivered}
	}
	up.AttachmentsPendingBytes, up.AttachmentsUndelivered = a.attachmentsUpstream()
	a.up.mu.Lock()
	if !a.up.contact.IsZero() {
		t := a.up.contact.UTC()
		up.LastContact = &t
	}
	a.up.mu.Unlock()
	up.Reachable = a.isHub
	for _, p := range a.host.Admitted() {
		a.mu.Lock()
		info := a.names[p.DeviceID]
		s := a.sessions[p.PeerID]
		a.mu.Unlock()
		if info.Role != identity.RoleHub {
			continue
		}
		up.Reachable = true
		if s != nil {
			s.mu.Lock()
			peerHas := s.sm.PeerHas()
			st := s.sm.Stats()
			s.mu.Unlock()
			local := a.store.VersionVector()
			var pending uint64
			for _, r := range local.Missing(peerHas) {
				pending += r.Len()
			}
			up.Upload = &api.Upload{Hub: p.Name, SentOps: st.OpsSent, PendingOps: pending}
		}
	}
	return up
}
