package main

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/wire"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"github.com/fieldsync/fieldsync/crdt"
)

// End-to-end tests of conflict and duplicate settling across real agent
// processes, through the CLI as an admin would use it.

func startRole(t *testing.T, c *harness.Cluster, name, role string, join ...*harness.Agent) *harness.Agent {
	t.Helper()
	a, err := c.Provision(name, role)
	if err != nil {
		t.Fatal(err)
	}
	startAgain(t, a, join...)
	return a
}

// cli runs the fieldsync binary and decodes its JSON output into out (if
// not nil); it returns the combined output and whether it exited 0.
func runCLI(t *testing.T, c *harness.Cluster, out any, args ...string) (string, bool) {
	t.Helper()
	b, err := c.Run(args...)
	if err == nil && out != nil {
		if jerr := json.Unmarshal(b, out); jerr != nil {
			t.Fatalf("fieldsync %s: output is not JSON: %v\n%s", strings.Join(args, " "), jerr, b)
		}
	}
	return string(b), err == nil
}

func TestE2EAdminSettlesAConflictEverywhere(t *testing.T) {
	c := cluster(t)
	admin := startRole(t, c, "admin-huyen", "admin")
	a := start(t, c, "laptop-a", admin)
	b := start(t, c, "laptop-b", admin)
	id := put(t, a, dossier(1, "Pả Vi"))
	converge(t, []string{id}, admin, a, b)
	// The two officers correct the name apart.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Update(ctx, id, map[string]string{"full_name": "Vừ Mí Chử"}); err != nil {
		t.Fatal(err)
	}
	startAgain(t, b)
	if _, err := b.Client.Update(ctx, id, map[string]string{"full_name": "Vừ Mý Chứ"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, b, admin)

	var conflicts []api.Conflict
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		runCLI(t, c, &conflicts, "conflicts", "--api", admin.API, "--json")
		return len(conflicts) == 1 && len(conflicts[0].Values) == 2, nil
	}); err != nil {
		t.Fatalf("conflicts on the admin: %+v", conflicts)
	}
	if conflicts[0].Record != id || conflicts[0].Field != "full_name" {
		t.Fatalf("conflict %+v", conflicts[0])
	}
	var devices []string
	for _, v := range conflicts[0].Values {
		devices = append(devices, v.Device)
		if v.At.IsZero() || v.Op == "" {
			t.Fatalf("value without time or op: %+v", v)
		}
	}
	slices.Sort(devices)
	if !slices.Equal(devices, []string{"laptop-a", "laptop-b"}) {
		t.Fatalf("devices %v", devices)
	}

	// An officer's laptop sees the conflict but cannot settle it.
	if out, ok := runCLI(t, c, nil, "resolve", "--api", a.API, id, "full_name", "Vừ Mí Chứ"); ok || !strings.Contains(out, "only an admin device") {
		t.Fatalf("a field laptop settled a conflict: %s", out)
	}
	// The admin settles it; the decision reaches every laptop.
	if out, ok := runCLI(t, c, nil, "resolve", "--api", admin.API, id, "full_name", "Vừ Mí Chứ"); !ok {
		t.Fatalf("resolve: %s", out)
	}
	for _, ag := range []*harness.Agent{admin, a, b} {
		if err := harness.WaitFor(30*time.Second, func() (bool, error) {
			rec, err := ag.Client.Get(ctx, id)
			return err == nil && rec.Fields["full_name"] == "Vừ Mí Chứ" && len(rec.Conflicts) == 0, err
		}); err != nil {
			rec, _ := ag.Client.Get(ctx, id)
			t.Fatalf("%s after the decision: %+v", ag.Name, rec)
		}
	}
	// The history shows every change in causal order, with devices.
	var hist []api.HistoryEntry
	if out, ok := runCLI(t, c, &hist, "history", "--api", b.API, "--json", id); !ok {
		t.Fatalf("history: %s", out)
	}
	var kinds []string
	for _, h := range hist {
		kinds = append(kinds, h.Kind+"@"+h.Device)
	}
	if len(hist) != 4 || kinds[0] != "create@laptop-a" || kinds[3] != "resolve@admin-huyen" {
		t.Fatalf("history %v", kinds)
	}
}

func TestE2EDuplicatesMergedAndSeparated(t *testing.T) {
	c := cluster(t)
	admin := startRole(t, c, "admin-huyen", "admin")
	a := start(t, c, "laptop-a", admin)
	b := start(t, c, "laptop-b", admin)
	// The same person captured by two teams (same personal ID).
	first := map[string]string{"full_name": "Giàng Thị Mỷ", "date_of_birth": "1988-05-25", "sex": "nữ", "personal_id": "002188282703", "commune": "Pả Vi"}
	second := map[string]string{"full_name": "Giàng Thị Mỷ", "date_of_birth": "1988-05-25", "sex": "nữ", "personal_id": "002188282703", "phone": "0912345678"}
	x := put(t, a, first)
	y := put(t, b, second)
	// Two different people whose names differ only by a common mistyping.
	p := put(t, a, map[string]string{"full_name": "Vừ Mý Chứ", "date_of_birth": "1975", "sex": "nam"})
	q := put(t, b, map[string]string{"full_name": "Vừ Mí Chứ", "date_of_birth": "1975", "sex": "nam"})
	converge(t, []string{x, y, p, q}, admin, a, b)

	var dups []api.Duplicate
	if err := harness.WaitFor(20*time.Second, func() (bool, error) {
		runCLI(t, c, &dups, "duplicates", "--api", admin.API, "--json")
		return len(dups) == 2, nil
	}); err != nil {
		t.Fatalf("duplicates: %+v", dups)
	}
	reasons := map[string][]string{}
	for _, d := range dups {
		reasons[d.Reason] = d.Records
	}
	if want := sorted(x, y); !slices.Equal(reasons["personal_id"], want) {
		t.Fatalf("personal_id group %v, want %v", reasons["personal_id"], want)
	}
	if want := sorted(p, q); !slices.Equal(reasons["name_dob"], want) {
		t.Fatalf("name_dob group %v, want %v", reasons["name_dob"], want)
	}

	// Merge: y survives with the commune from x.
	if out, ok := runCLI(t, c, nil, "merge", "--api", admin.API, y, x, "--field", "commune=Pả Vi"); !ok {
		t.Fatalf("merge: %s", out)
	}
	// Not the same person.
	if out, ok := runCLI(t, c, nil, "distinct", "--api", admin.API, p, q); !ok {
		t.Fatalf("distinct: %s", out)
	}
	// An officer edits the retired dossier, not knowing: the edit is kept.
	if err := harness.WaitFor(30*time.Second, func() (bool, error) {
		rec, err := a.Client.Get(ctx, x)
		return err == nil && rec.RetiredInto == y, err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Update(ctx, x, map[string]string{"hometown": "xã Khâu Vai"}); err != nil {
		t.Fatal(err)
	}
	for _, ag := range []*harness.Agent{admin, a, b} {
		if err := harness.WaitFor(30*time.Second, func() (bool, error) {
			sv, err1 := ag.Client.Get(ctx, y)
			rt, err2 := ag.Client.Get(ctx, x)
			d, err3 := ag.Client.Duplicates(ctx)
			return err1 == nil && err2 == nil && err3 == nil &&
				sv.Fields["commune"] == "Pả Vi" && sv.Fields["phone"] == "0912345678" && slices.Equal(sv.MergedFrom, []string{x}) &&
				rt.RetiredInto == y && rt.Fields["hometown"] == "xã Khâu Vai" && len(d) == 0, nil
		}); err != nil {
			sv, _ := ag.Client.Get(ctx, y)
			rt, _ := ag.Client.Get(ctx, x)
			d, _ := ag.Client.Duplicates(ctx)
			t.Fatalf("%s: survivor %+v retired %+v duplicates %+v", ag.Name, sv, rt, d)
		}
	}
	// A retired dossier cannot be merged again; merge with its survivor.
	if out, ok := runCLI(t, c, nil, "merge", "--api", admin.API, p, x); ok || !strings.Contains(out, "already merged into") {
		t.Fatalf("merging a retired dossier: %s", out)
	}
	// A malformed "seen" is the client's mistake: 400.
	var apiErr *api.APIError
	if _, err := admin.Client.Resolve(ctx, y, api.ResolveRequest{Field: "phone", Value: "0912345678", Seen: []string{"not-an-op"}}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Fatalf("malformed seen: %v", err)
	}
	// A field laptop cannot merge.
	if out, ok := runCLI(t, c, nil, "merge", "--api", a.API, p, q); ok || !strings.Contains(out, "only an admin device") {
		t.Fatalf("a field laptop merged: %s", out)
	}
}

// A settling op written by a field device (a modified binary) is refused
// by every replica.
func TestE2ESettlingOpFromAFieldDeviceIsRefused(t *testing.T) {
	c := cluster(t)
	admin := startRole(t, c, "admin-huyen", "admin")
	mallory, err := c.Provision("mallory", "field")
	if err != nil {
		t.Fatal(err)
	}
	mdev, err := harness.LoadDevice(mallory.Data)
	if err != nil {
		t.Fatal(err)
	}
	mCred, err := mdev.Credential.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	now := crdt.Timestamp{Wall: time.Now().UnixMilli()}
	create := &crdt.Op{Origin: mdev.ID(), Seq: 1, Time: now, Record: "01900000-0000-7000-8000-0000000000aa", Kind: crdt.KindCreate,
		Fields: crdt.Writes(nil, map[string]string{"full_name": "Lò Văn Páo", "sex": "nam", "date_of_birth": "1960"})}
	s1, err := crdt.Sign(create, mdev.Private)
	if err != nil {
		t.Fatal(err)
	}
	h := crdt.Hash(s1.Body)
	retire := &crdt.Op{Origin: mdev.ID(), Seq: 2, Prev: h[:], Time: crdt.Timestamp{Wall: now.Wall + 1}, Record: create.Record, Kind: crdt.KindRetire,
		Fields: map[string]crdt.FieldWrite{crdt.FieldRetiredInto: {Value: "elsewhere"}}}
	s2, err := crdt.Sign(retire, mdev.Private)
	if err != nil {
		t.Fatal(err)
	}
	heads := sendBatch(t, mdev, mCred, admin.Listen, &wire.Batch{N: 1, Ops: []crdt.Signed{s1, s2},
		Creds: []wire.Credential{{Origin: mdev.ID(), Raw: mCred}}, Ranges: []wire.Range{{Origin: mdev.ID(), From: 1, To: 2}}})
	if heads[mdev.ID()] != 1 {
		t.Fatalf("admin's head of mallory: %d, want 1 (the create only)", heads[mdev.ID()])
	}
	rec, err := admin.Client.Get(ctx, create.Record)
	if err != nil || rec.RetiredInto != "" {
		t.Fatalf("record: %+v (%v)", rec, err)
	}
	if st := status(t, admin); st.RefusedOps != 1 {
		t.Fatalf("refused %d", st.RefusedOps)
	}
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}
