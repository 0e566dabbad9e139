package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
	"github.com/fieldsync/fieldsync/agent/schema"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/crdt"
)

// backend serves the HTTP API from the agent's store.
type backend struct{ a *Agent }

var _ api.Backend = backend{}

func (b backend) Create(ctx context.Context, fields map[string]string) (api.Record, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return api.Record{}, fmt.Errorf("make record id: %w", err)
	}
	return b.write(ctx, id.String(), crdt.KindCreate, fields)
}

func (b backend) Update(ctx context.Context, id string, fields map[string]string) (api.Record, error) {
	return b.write(ctx, id, crdt.KindUpdate, fields)
}

// write commits one op of this device durably, then lets every session push
// it. The API answers only after the commit: an acknowledged dossier survives
// a power cut. It first waits (boundedly) until this device's own log is
// known to be whole (ownLog), so a laptop restored from a backup does not
// fork it.
func (b backend) write(ctx context.Context, id string, kind crdt.Kind, fields map[string]string) (api.Record, error) {
	a := b.a
	if err := a.own.wait(ctx); err != nil {
		return api.Record{}, err
	}
	op, err := a.store.Write(a.dev.ID(), a.dev.Private, id, kind, fields, a.cfg.Now().UnixMilli())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Record{}, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	case err != nil:
		return api.Record{}, err
	}
	a.log.Debug("op written", "record", id, "seq", op.Op.Seq, "kind", kind.String(), "fields", len(fields))
	a.changed()
	rec, err := a.store.Record(id)
	if err != nil {
		return api.Record{}, err
	}
	return a.view(rec), nil
}

func (b backend) Get(_ context.Context, id string) (api.Record, error) {
	rec, err := b.a.store.Record(id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Record{}, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	}
	if err != nil {
		return api.Record{}, err
	}
	return b.a.view(rec), nil
}

func (b backend) List(_ context.Context, after string, limit int) ([]api.Record, string, error) {
	out := make([]api.Record, 0, min(limit, 1024))
	more := false
	err := b.a.store.Records(after, func(r *crdt.Record) bool {
		if incomplete(r) {
			return true
		}
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, b.a.view(r))
		return true
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more && len(out) > 0 {
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

func (b backend) Status(_ context.Context) (api.Status, error) {
	a := b.a
	records, err := a.store.RecordCount()
	if err != nil {
		return api.Status{}, err
	}
	held, atRisk, err := a.store.AtRisk(a.dev.ID())
	if err != nil {
		return api.Status{}, err
	}
	conflicts := 0
	if err := a.store.ConflictedRecords(func(string) bool { conflicts++; return true }); err != nil {
		return api.Status{}, err
	}
	st := api.Status{
		Device:        a.dev.Name(),
		DeviceID:      a.dev.ID(),
		Role:          string(a.dev.Credential.Role),
		Deployment:    a.verifier.Deployment(),
		Listen:        a.host.ListenAddrs(),
		Peers:         a.peers(),
		Records:       records,
		VersionVector: map[string]uint64(a.store.VersionVector()),
		AtRisk:        atRisk,
		Held:          held,
		Conflicts:     conflicts,
		Version:       a.cfg.Version,
	}
	st.WireBytesIn, st.WireBytesOut = a.host.WireBytes()
	st.RefusedOps, st.DuplicateOps = a.refusedOps.Load(), a.dupOps.Load()
	st.CanSettle = a.canSettle()
	st.Duplicates = a.duplicateCount()
	st.Upstream = a.upstreamStatus()
	st.Revocation = a.revocationStatus()
	st.Quarantined = a.store.QuarantineCount()
	st.Alerts = a.alerts()
	st.Attachments = a.attachmentStatus()
	if st.Listen == nil {
		st.Listen = []string{}
	}
	return st, nil
}

// peers lists connected devices and LAN members, by device.
func (a *Agent) peers() []api.Peer {
	byID := map[string]*api.Peer{}
	for _, p := range a.host.Admitted() {
		if a.isRevoked(p.DeviceID) {
			continue
		}
		a.mu.Lock()
		s, syncing := a.sessions[p.PeerID]
		if s == nil {
			// Only the second session of a cloned identity runs.
			s = a.extra[p.PeerID]
			syncing = syncing || s != nil
		}
		info := a.names[p.DeviceID]
		a.mu.Unlock()
		peer := &api.Peer{Name: p.Name, DeviceID: p.DeviceID, Role: string(info.Role), Addr: p.Addr,
			Connected: true, Syncing: syncing && s != nil}
		if s != nil {
			peer.Session = s.view()
		}
		byID[p.DeviceID] = peer
	}
	for _, m := range a.members.Members() {
		if _, ok := byID[m.DeviceID]; ok || a.isRevoked(m.DeviceID) {
			continue
		}
		a.mu.Lock()
		info := a.names[m.DeviceID]
		a.mu.Unlock()
		name := info.Name
		if name == "" {
			name = m.DeviceID
		}
		byID[m.DeviceID] = &api.Peer{Name: name, DeviceID: m.DeviceID, Role: string(info.Role), Addr: m.Addr}
	}
	out := make([]api.Peer, 0, len(byID))
	for _, p := range byID {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// view turns a merged record into its API shape. An empty shown value means
// the field was cleared.
func (a *Agent) view(r *crdt.Record) api.Record {
	out := api.Record{ID: r.ID, Fields: map[string]string{}, Conflicts: map[string][]api.Value{}, UpdatedAt: hlcTime(r.Updated),
		RetiredInto: r.RetiredInto()}
	for name, reg := range r.Fields {
		if w, ok := reg.Winner(); ok && w.Value != "" {
			switch {
			case strings.HasPrefix(name, crdt.MergedPrefix):
				out.MergedFrom = append(out.MergedFrom, strings.TrimPrefix(name, crdt.MergedPrefix))
			case strings.HasPrefix(name, attach.FieldPrefix):
				// Manifests are listed by GET /v1/records/{id}/attachments;
				// a conflict between two still shows under conflicts.
			case !strings.HasPrefix(name, "_"):
				out.Fields[name] = w.Value
			}
		}
		if reg.Conflict() {
			vals := make([]api.Value, 0, len(reg.Live))
			for i := len(reg.Live) - 1; i >= 0; i-- { // latest first
				s := reg.Live[i]
				vals = append(vals, api.Value{Value: s.Value, Device: a.deviceName(s.Dot.Origin), DeviceID: s.Dot.Origin,
					At: hlcTime(s.Time), Op: dotString(s.Dot), Officer: a.officerOf(s.Dot.Origin)})
			}
			out.Conflicts[name] = vals
		}
	}
	sort.Strings(out.MergedFrom)
	if r.Created != (crdt.Dot{}) {
		out.CreatedBy = a.deviceName(r.Created.Origin)
		t := hlcTime(r.CreatedAt)
		out.CreatedAt = &t
	}
	return out
}

func hlcTime(t crdt.Timestamp) time.Time { return time.UnixMilli(t.Wall).UTC() }

// Undelivered lists records whose creation no hub has receipted, or with an
// attachment no hub's receipt says it holds whole, in id order.
func (b backend) Undelivered(_ context.Context, after string, limit int) ([]api.Record, string, error) {
	seen := map[string]bool{}
	var ids []string
	note := func(id string) {
		if id > after && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if err := b.a.store.Undelivered(b.a.safeUpstream(), func(id string) bool {
		note(id)
		return true
	}); err != nil {
		return nil, "", err
	}
	if err := b.a.store.ManifestOpsAfter(b.a.safeAttached(), func(mo store.ManifestOp) bool {
		note(mo.Record)
		return true
	}); err != nil {
		return nil, "", err
	}
	sort.Strings(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]api.Record, 0, len(ids))
	for _, id := range ids {
		rec, err := b.a.store.Record(id)
		if err != nil {
			return nil, "", err
		}
		out = append(out, b.a.view(rec))
	}
	return out, next, nil
}

var _ api.UndeliveredLister = backend{}

// Search lists records whose name, personal ID number or commune contains q,
// compared without case or diacritics, in id order.
func (b backend) Search(_ context.Context, q string, after string, limit int) ([]api.Record, string, error) {
	needle := schema.FoldNameNoDiacritics(q)
	out := []api.Record{}
	more := false
	err := b.a.store.Records(after, func(r *crdt.Record) bool {
		if incomplete(r) {
			return true
		}
		v := r.Values()
		hay := schema.FoldNameNoDiacritics(v[schema.FieldFullName] + " " + v[schema.FieldPersonalID] + " " + v[schema.FieldCommune])
		if !strings.Contains(hay, needle) {
			return true
		}
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, b.a.view(r))
		return true
	})
	next := ""
	if more && len(out) > 0 {
		next = out[len(out)-1].ID
	}
	return out, next, err
}

var _ api.Searcher = backend{}

// incomplete reports whether a record's creation has not arrived here: only
// later changes to it (a hub's decision on another team's dossier, an edit
// that overtook its creation). It is kept and shown by id, but it is not a
// dossier of this laptop's lists until its creation arrives.
func incomplete(r *crdt.Record) bool { return r.Created == (crdt.Dot{}) }
