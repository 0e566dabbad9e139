package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// End-to-end tests: real fieldsync processes on 127.0.0.1, provisioned with
// the real binary, talking through their HTTP API.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fieldsync-e2e-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath, binErr = harness.Build(dir)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func cluster(t *testing.T) *harness.Cluster {
	t.Helper()
	c, err := harness.NewCluster(binary(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, a := range c.Agents() {
				t.Logf("log of %s:\n%s", a.Name, a.Log())
			}
		}
		c.Close()
	})
	return c
}

func start(t *testing.T, c *harness.Cluster, name string, join ...*harness.Agent) *harness.Agent {
	t.Helper()
	a, err := c.Provision(name, "field")
	if err != nil {
		t.Fatal(err)
	}
	startAgain(t, a, join...)
	return a
}

func startAgain(t *testing.T, a *harness.Agent, join ...*harness.Agent) {
	t.Helper()
	var args []string
	for _, j := range join {
		args = append(args, "--join", j.Listen)
	}
	if err := a.Start(args...); err != nil {
		t.Fatal(err)
	}
}

var ctx = context.Background()

func put(t *testing.T, a *harness.Agent, fields map[string]string) string {
	t.Helper()
	rec, err := a.Client.Create(ctx, fields)
	if err != nil {
		t.Fatalf("put on %s: %v", a.Name, err)
	}
	return rec.ID
}

func dossier(i int, commune string) map[string]string {
	names := []string{"Giàng Thị Mỷ", "Vừ Mí Chứ", "Thò Thị Súng", "Lò Văn Páo", "Nguyễn Thị Hồng Nhung", "Sùng Seo Dính"}
	return map[string]string{
		"full_name":     names[i%len(names)],
		"date_of_birth": fmt.Sprintf("19%02d-0%d-1%d", 50+i%50, 1+i%9, i%10),
		"sex":           []string{"nam", "nữ"}[i%2],
		"personal_id":   fmt.Sprintf("0020%08d", 1000+i),
		"commune":       commune,
	}
}

func ids(t *testing.T, a *harness.Agent) []string {
	t.Helper()
	recs, err := a.Client.ListAll(ctx)
	if err != nil {
		t.Fatalf("list on %s: %v", a.Name, err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out
}

// converge waits until every agent lists exactly want.
func converge(t *testing.T, want []string, agents ...*harness.Agent) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	for _, a := range agents {
		err := harness.WaitFor(30*time.Second, func() (bool, error) {
			return slices.Equal(ids(t, a), want), nil
		})
		if err != nil {
			t.Fatalf("%s holds %d dossiers, want %d: %v", a.Name, len(ids(t, a)), len(want), err)
		}
	}
}

func TestE2EThreeLaptopsMergeAndOneCatchesUp(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	b := start(t, c, "laptop-b", a)
	l3 := start(t, c, "laptop-c", a)
	var all []string
	for i, ag := range []*harness.Agent{a, b, l3, a, b, l3} {
		all = append(all, put(t, ag, dossier(i, "Vạn Thạnh")))
	}
	converge(t, all, a, b, l3)

	// laptop-c goes away; the others keep capturing.
	if err := l3.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		all = append(all, put(t, a, dossier(10+i, "Pả Vi")), put(t, b, dossier(20+i, "Khâu Vai")))
	}
	converge(t, all, a, b)
	// It comes back, knowing only laptop-b's address, and catches up.
	startAgain(t, l3, b)
	converge(t, all, a, b, l3)

	// Every laptop shows the same merged content, NFC and all.
	rec, err := l3.Client.Get(ctx, all[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec.Fields["full_name"] != "Giàng Thị Mỷ" || rec.CreatedBy != "laptop-a" {
		t.Fatalf("record on laptop-c: %+v", rec)
	}
	st, err := a.Client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != len(all) || len(st.VersionVector) != 3 {
		t.Fatalf("status of laptop-a: %+v", st)
	}
	var names []string
	for _, p := range st.Peers {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"laptop-b", "laptop-c"}) {
		t.Fatalf("peers of laptop-a: %v", names)
	}
}

// A laptop that never met another gets its dossiers through one that met both.
func TestE2ERelayThroughAMiddleLaptop(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "island-a")
	b := start(t, c, "boat-b", a)
	var fromA []string
	for i := 0; i < 4; i++ {
		fromA = append(fromA, put(t, a, dossier(i, "Vạn Thạnh")))
	}
	converge(t, fromA, b)
	a.Kill() // island-a stays on its island
	l3 := start(t, c, "post-c", b)
	fromC := put(t, l3, dossier(9, "Vạn Thạnh"))
	converge(t, append(slices.Clone(fromA), fromC), b, l3)
	// post-c never met island-a, yet holds its dossiers, verified against
	// island-a's own signature (its credential travelled with the ops).
	rec, err := l3.Client.Get(ctx, fromA[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec.CreatedBy != "island-a" {
		t.Fatalf("created by %q", rec.CreatedBy)
	}
	// And island-a, back, gets post-c's dossier through boat-b.
	startAgain(t, a, b)
	converge(t, append(slices.Clone(fromA), fromC), a)
}

// Two officers who correct the same field apart see both values kept.
func TestE2EConcurrentCorrectionsBecomeAConflict(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	b := start(t, c, "laptop-b", a)
	id := put(t, a, dossier(1, "Pả Vi"))
	converge(t, []string{id}, a, b)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Update(ctx, id, map[string]string{"full_name": "Vừ Mí Chử"}); err != nil {
		t.Fatal(err)
	}
	// laptop-b, offline, corrects the same field another way, and another
	// field nobody else touched.
	startAgain(t, b) // no --join: alone
	if _, err := b.Client.Update(ctx, id, map[string]string{"full_name": "Vừ Mý Chứ", "phone": "0912 345 678"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	startAgain(t, b, a)
	for _, ag := range []*harness.Agent{a, b} {
		var rec api.Record
		err := harness.WaitFor(30*time.Second, func() (bool, error) {
			var err error
			rec, err = ag.Client.Get(ctx, id)
			return err == nil && len(rec.Conflicts["full_name"]) == 2 && rec.Fields["phone"] != "", err
		})
		if err != nil {
			t.Fatalf("%s: no conflict: %+v (%v)", ag.Name, rec, err)
		}
		var got []string
		for _, v := range rec.Conflicts["full_name"] {
			got = append(got, v.Device+"="+v.Value)
			if v.At.IsZero() || v.Op == "" {
				t.Fatalf("conflict value without time or op: %+v", v)
			}
		}
		slices.Sort(got)
		if want := []string{"laptop-a=Vừ Mí Chử", "laptop-b=Vừ Mý Chứ"}; !slices.Equal(got, want) {
			t.Fatalf("%s: conflict values %v, want %v", ag.Name, got, want)
		}
		if rec.Fields["phone"] != "0912345678" || len(rec.Conflicts) != 1 {
			t.Fatalf("%s: %+v", ag.Name, rec)
		}
	}
	st, err := a.Client.Status(ctx)
	if err != nil || st.Conflicts != 1 {
		t.Fatalf("status conflicts %d (%v)", st.Conflicts, err)
	}
}

// A laptop of another deployment learns nothing and is refused with a clear
// log line on both sides.
func TestE2EOutsiderIsRefused(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	id := put(t, a, dossier(1, "Vạn Thạnh"))
	x := startIntruder(t, c, "--join", a.Listen)
	put(t, x, dossier(2, "Vạn Thạnh"))
	// Give them time to try (the intruder retries its join).
	err := harness.WaitFor(15*time.Second, func() (bool, error) {
		// The credential handshake refuses the connection. Each side is an
		// outsider to the other: whichever decides first logs "refused
		// peer" with its reason, and the other logs "refused by peer" with
		// that reason.
		return strings.Contains(a.Log(), `msg="refused`) && strings.Contains(a.Log(), "credential of deployment") &&
			strings.Contains(x.Log(), `msg="refused`) && strings.Contains(x.Log(), "credential of deployment"), nil
	})
	if err != nil {
		t.Fatalf("no refusal logged on both sides: %v\n--- laptop-a:\n%s\n--- intruder:\n%s", err, a.Log(), x.Log())
	}
	if got := ids(t, x); slices.Contains(got, id) || len(got) != 1 {
		t.Fatalf("intruder holds %v", got)
	}
	if got := ids(t, a); len(got) != 1 {
		t.Fatalf("laptop-a holds %v", got)
	}
	st, err := a.Client.Status(ctx)
	if err != nil || len(st.Peers) != 0 {
		t.Fatalf("laptop-a peers %+v (%v)", st.Peers, err)
	}
}

// kill -9 in the middle of writes: the store opens and every acknowledged
// dossier is there.
func TestE2EPowerCutKeepsEveryAcknowledgedDossier(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	for round := 0; round < 3; round++ {
		var mu sync.Mutex
		var acked []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					rec, err := a.Client.Create(ctx, dossier(w*1000+i, "Tủa Chùa"))
					if err != nil {
						return // the process is gone: unacknowledged
					}
					mu.Lock()
					acked = append(acked, rec.ID)
					mu.Unlock()
				}
			}(w)
		}
		if err := harness.WaitFor(20*time.Second, func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 50*(round+1), nil
		}); err != nil {
			t.Fatal(err)
		}
		a.Kill()
		close(stop)
		wg.Wait()
		startAgain(t, a)
		have := ids(t, a)
		for _, id := range acked {
			if _, found := slices.BinarySearch(have, id); !found {
				t.Fatalf("round %d: acknowledged dossier %s lost after kill -9 (%d acked, %d present)", round, id, len(acked), len(have))
			}
		}
		// Writes go on after the crash, continuing the log.
		put(t, a, dossier(99, "Tủa Chùa"))
	}
}

// at_risk counts this laptop's dossiers that no other device holds yet.
func TestE2EAtRiskFallsWhenAPeerHoldsTheDossiers(t *testing.T) {
	c := cluster(t)
	a := start(t, c, "laptop-a")
	for i := 0; i < 3; i++ {
		put(t, a, dossier(i, "Mèo Vạc"))
	}
	st, err := a.Client.Status(ctx)
	if err != nil || st.AtRisk != 3 || st.Held != 0 {
		t.Fatalf("alone: at_risk %d held %d (%v)", st.AtRisk, st.Held, err)
	}
	start(t, c, "laptop-b", a)
	err = harness.WaitFor(30*time.Second, func() (bool, error) {
		st, err = a.Client.Status(ctx)
		return err == nil && st.AtRisk == 0 && st.Held == 3, err
	})
	if err != nil {
		t.Fatalf("with a peer: at_risk %d held %d (%v)", st.AtRisk, st.Held, err)
	}
}

// startIntruder starts a laptop of another deployment (its own authority)
// with the given flags, cleaned up with the test.
func startIntruder(t *testing.T, c *harness.Cluster, flags ...string) *harness.Agent {
	t.Helper()
	other, err := harness.NewCluster(c.Bin, filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	x, err := other.Provision("intruder", "field")
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Start(flags...); err != nil {
		t.Fatal(err)
	}
	return x
}
