package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/schema"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/crdt"
)

var _ api.Admin = backend{}

// canSettle: only an admin device or the hub settles conflicts and
// duplicates. Every replica enforces the same rule on ops it receives
// (mayOriginSettle), so a field laptop's decision could not spread anyway.
func (a *Agent) canSettle() bool {
	r := a.dev.Credential.Role
	return r == identity.RoleAdmin || r == identity.RoleHub
}

// mayOriginSettle is the store's check on received settling ops: the
// origin's credential must carry the admin or hub role.
func (a *Agent) mayOriginSettle(origin string) bool {
	r := a.roleOf(origin)
	return r == identity.RoleAdmin || r == identity.RoleHub
}

// roleOf returns a device's role from its credential ("" when unknown).
func (a *Agent) roleOf(id string) identity.Role {
	a.mu.Lock()
	info, ok := a.names[id]
	a.mu.Unlock()
	if ok {
		return info.Role
	}
	a.deviceName(id) // loads the credential into names
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.names[id].Role
}

// indexKeys are the keys under which possible duplicates meet: the personal
// ID number, and the name folded (NFC, case, spaces; and again without
// diacritics, since "Mý" and "Mí" are a common mistyping) with the date of
// birth. A retired (merged) dossier has only the key of its pair,
// "r|<smaller id>|<larger id>": two dossiers share it only when each is
// retired into the other (two admins merging them both ways and then
// settling that differently at the same time), and the duplicate queue
// then shows them, to be merged again.
func indexKeys(r *crdt.Record) []string {
	if into := r.RetiredInto(); into != "" {
		return []string{strings.ReplaceAll("r|"+min(r.ID, into)+"|"+max(r.ID, into), "\x00", "")}
	}
	v := r.Values()
	var keys []string
	if pid := v[schema.FieldPersonalID]; pid != "" {
		keys = append(keys, "p|"+pid)
	}
	name, dob := v[schema.FieldFullName], v[schema.FieldDateOfBirth]
	if name != "" && dob != "" {
		keys = append(keys, "n|"+schema.FoldName(name)+"|"+dob)
		// Without diacritics, and with y and i as one letter: Vietnamese
		// spelling swaps them ("Mý"/"Mí", "Mỹ"/"Mĩ"), a common mistyping.
		// Always kept, so a name typed without any diacritics meets its
		// accented twin here.
		keys = append(keys, "d|"+strings.ReplaceAll(schema.FoldNameNoDiacritics(name), "y", "i")+"|"+dob)
	}
	for i, k := range keys {
		keys[i] = strings.ReplaceAll(k, "\x00", "")
	}
	return keys
}

func (b backend) Conflicts(_ context.Context) ([]api.Conflict, error) {
	a := b.a
	var ids []string
	if err := a.store.ConflictedRecords(func(id string) bool { ids = append(ids, id); return true }); err != nil {
		return nil, err
	}
	out := []api.Conflict{}
	for _, id := range ids {
		rec, err := a.store.Record(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v := a.view(rec)
		for _, field := range rec.Conflicts() {
			out = append(out, api.Conflict{Record: id, Field: field, FullName: v.Fields[schema.FieldFullName], Values: v.Conflicts[field]})
		}
	}
	return out, nil
}

func (b backend) Resolve(_ context.Context, id string, req api.ResolveRequest) (api.Record, error) {
	a := b.a
	if !a.canSettle() {
		return api.Record{}, fmt.Errorf("%w (this device is %s)", api.ErrForbidden, a.dev.Credential.Role)
	}
	if strings.HasPrefix(req.Field, "_") && req.Field != crdt.FieldRetiredInto {
		return api.Record{}, fmt.Errorf("%w: field %s cannot be resolved", api.ErrConflict, req.Field)
	}
	if req.Field == crdt.FieldRetiredInto {
		if err := b.noRetirementCycle(id, req.Value); err != nil {
			return api.Record{}, err
		}
	}
	var seen map[string][]crdt.Dot
	if len(req.Seen) > 0 {
		dots := make([]crdt.Dot, 0, len(req.Seen))
		for _, s := range req.Seen {
			d, err := parseDot(s)
			if err != nil {
				return api.Record{}, fmt.Errorf("%w: seen %q: %w", api.ErrConflict, s, err)
			}
			dots = append(dots, d)
		}
		seen = map[string][]crdt.Dot{req.Field: dots}
	}
	return b.settle(id, crdt.KindResolve, map[string]string{req.Field: req.Value}, seen)
}

// noRetirementCycle refuses to retire dossier id into into when into is
// (through the dossiers it was merged into) retired into id: no dossier of
// the pair would survive, and nothing would show it (two admins merging a
// pair in opposite directions, then each settling one of the two conflicts
// this leaves by keeping the other's choice). A dossier whose own
// _retired_into is still in conflict is not yet decided, and ends the way.
func (b backend) noRetirementCycle(id, into string) error {
	seen := map[string]bool{}
	for cur := into; cur != "" && !seen[cur]; {
		if cur == id {
			return fmt.Errorf("%w: %s is merged into %s; retiring %s into it leaves no dossier that survives: keep one (an empty value) and retire the other into it",
				api.ErrConflict, into, id, id)
		}
		seen[cur] = true
		rec, err := b.a.store.Record(cur)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if rec.Fields[crdt.FieldRetiredInto].Conflict() {
			return nil
		}
		cur = rec.RetiredInto()
	}
	return nil
}

func (b backend) settle(id string, kind crdt.Kind, values map[string]string, seen map[string][]crdt.Dot) (api.Record, error) {
	a := b.a
	if seen == nil {
		seen = map[string][]crdt.Dot{}
	}
	// Bounded by Config.OwnLogWait (see ownLog).
	if err := a.own.wait(context.Background()); err != nil {
		return api.Record{}, err
	}
	op, err := a.store.Settle(a.dev.ID(), a.dev.Private, id, kind, values, seen, a.cfg.Now().UnixMilli())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Record{}, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	case err != nil:
		return api.Record{}, err
	}
	a.log.Info("settled", "record", id, "kind", kind.String(), "op_seq", op.Op.Seq, "fields", len(values))
	a.changed()
	a.dupMu.Lock()
	a.dupValid = false // the admin expects the count to follow the decision
	a.dupMu.Unlock()
	rec, err := a.store.Record(id)
	if err != nil {
		return api.Record{}, err
	}
	return a.view(rec), nil
}

func parseDot(s string) (crdt.Dot, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return crdt.Dot{}, errors.New("want origin:seq")
	}
	seq, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return crdt.Dot{}, errors.New("want origin:seq")
	}
	return crdt.Dot{Origin: s[:i], Seq: seq}, nil
}

func (b backend) Duplicates(_ context.Context) ([]api.Duplicate, error) {
	a := b.a
	bySet := map[string]int{} // record set -> index in out
	out := []api.Duplicate{}
	distinct := map[string]*crdt.Record{}
	get := func(id string) *crdt.Record {
		if r, ok := distinct[id]; ok {
			return r
		}
		r, err := a.store.Record(id)
		if err != nil {
			r = nil
		}
		distinct[id] = r
		return r
	}
	err := a.store.IndexGroups(func(key string, ids []string) bool {
		// Drop pairs an admin marked as different people (a pair retired
		// both ways needs a merge whatever it is marked).
		live := slices.Clone(ids)
		both := strings.HasPrefix(key, "r|")
		if !both && allDistinct(live, get) {
			return true
		}
		reason := "name_dob"
		switch {
		case both:
			reason = "merged_both_ways"
		case strings.HasPrefix(key, "p|"):
			reason = "personal_id"
		}
		set := strings.Join(live, ",")
		if i, ok := bySet[set]; ok {
			// One group found under several keys: the personal ID number
			// is the stronger reason.
			if reason == "personal_id" {
				out[i].Reason, out[i].Key = reason, key[2:]
			}
			return true
		}
		bySet[set] = len(out)
		out = append(out, api.Duplicate{Records: live, Reason: reason, Key: key[2:]})
		return true
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Reason > out[j].Reason })
	return out, err
}

// allDistinct reports whether every pair of the group is marked as two
// different people.
func allDistinct(ids []string, get func(string) *crdt.Record) bool {
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			x, y := min(ids[i], ids[j]), max(ids[i], ids[j])
			r := get(x)
			if r == nil {
				continue
			}
			if s, ok := r.Fields[crdt.DistinctPrefix+y].Winner(); !ok || s.Value == "" {
				return false
			}
		}
	}
	return true
}

func (b backend) Merge(_ context.Context, req api.MergeRequest) (api.Record, error) {
	a := b.a
	if !a.canSettle() {
		return api.Record{}, fmt.Errorf("%w (this device is %s)", api.ErrForbidden, a.dev.Credential.Role)
	}
	into := map[string]string{}
	for _, id := range []string{req.Survivor, req.Other} {
		rec, err := a.store.Record(id)
		if errors.Is(err, store.ErrNotFound) {
			return api.Record{}, fmt.Errorf("%w: %s", api.ErrNotFound, id)
		} else if err != nil {
			return api.Record{}, err
		}
		into[id] = rec.RetiredInto()
	}
	// A pair retired into each other is merged again, which keeps the
	// survivor; otherwise a dossier already merged is refused.
	both := into[req.Survivor] == req.Other && into[req.Other] == req.Survivor
	for _, id := range []string{req.Survivor, req.Other} {
		if into[id] != "" && !both {
			return api.Record{}, fmt.Errorf("%w: %s is already merged into %s; merge with that one", api.ErrConflict, id, into[id])
		}
	}
	values := map[string]string{crdt.MergedPrefix + req.Other: "1"}
	for k, v := range req.Fields {
		values[k] = v
	}
	// The survivor says it survives: an empty _retired_into. A decision
	// taken elsewhere meanwhile that retires this dossier (two admins
	// merging one pair in opposite directions) then leaves _retired_into
	// in conflict on both dossiers, shown in the conflict queue, instead of
	// each silently retired into the other with no survivor.
	values[crdt.FieldRetiredInto] = ""
	// The survivor first: if the laptop stops between the two ops, the
	// pair still shows as duplicates and the admin merges again.
	rec, err := b.settle(req.Survivor, crdt.KindMerge, values, nil)
	if err != nil {
		return api.Record{}, err
	}
	if _, err := b.settle(req.Other, crdt.KindRetire, map[string]string{crdt.FieldRetiredInto: req.Survivor}, nil); err != nil {
		return api.Record{}, err
	}
	return rec, nil
}

func (b backend) Distinct(_ context.Context, x, y string) error {
	a := b.a
	if !a.canSettle() {
		return fmt.Errorf("%w (this device is %s)", api.ErrForbidden, a.dev.Credential.Role)
	}
	if _, err := a.store.Record(max(x, y)); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", api.ErrNotFound, max(x, y))
	}
	_, err := b.settle(min(x, y), crdt.KindDistinct, map[string]string{crdt.DistinctPrefix + max(x, y): "1"}, nil)
	return err
}

func (b backend) History(_ context.Context, id string) ([]api.HistoryEntry, error) {
	a := b.a
	if _, err := a.store.Record(id); errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", api.ErrNotFound, id)
	}
	ops, err := a.store.History(id)
	if err != nil {
		return nil, err
	}
	out := make([]api.HistoryEntry, 0, len(ops))
	for _, o := range ops {
		e := api.HistoryEntry{Op: dotString(o.Op.Dot()), Kind: o.Op.Kind.String(),
			Device: a.deviceName(o.Op.Origin), DeviceID: o.Op.Origin, Officer: a.officerOf(o.Op.Origin),
			At: hlcTime(o.Op.Time), Fields: map[string]string{}}
		for name, w := range o.Op.Fields {
			e.Fields[name] = w.Value
		}
		out = append(out, e)
	}
	return out, nil
}

// officerOf returns the officer named in a device's credential.
func (a *Agent) officerOf(id string) string {
	a.deviceName(id)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.names[id].Officer
}

// duplicateCount is the number of duplicate groups for status, recomputed
// only after the store changed and at most every few seconds: status is
// polled, and the index scan is not free at 100,000 dossiers. The
// duplicates queue itself is always computed fresh.
func (a *Agent) duplicateCount() int {
	gen := a.changes.Load()
	a.dupMu.Lock()
	defer a.dupMu.Unlock()
	if a.dupValid && (a.dupGen == gen || time.Since(a.dupAt) < 5*time.Second) {
		return a.dupCount
	}
	a.dupAt = time.Now()
	dups, err := backend{a}.Duplicates(context.Background())
	if err != nil {
		return a.dupCount
	}
	a.dupCount, a.dupGen, a.dupValid = len(dups), gen, true
	return a.dupCount
}
