package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/crdt"
)

// The deterministic simulation's entry points. `make sim` runs TestSim over
// SEEDS seeds; a failing seed prints the one command that replays it.
var (
	simSeed  = flag.Uint64("seed", 0, "simulation: run only this seed (0: run -seeds seeds from -first)")
	simSeeds = flag.Int("seeds", 24, "simulation: how many seeds TestSim runs")
	simFirst = flag.Uint64("first", 1, "simulation: the first seed of a run of -seeds")
	simKeep  = flag.String("keep", "", "simulation: run only these steps of the seed's schedule (a shrunk replay: 0,3,7-9)")
	simTrace = flag.Bool("simtrace", false, "simulation: print every event of a -seed run")
	simWork  = flag.Int("simworkers", 0, "simulation: seeds run at once (0: GOMAXPROCS)")
	simNoShr = flag.Bool("noshrink", false, "simulation: do not shrink a failing schedule")
)

// simResult is what one run of a schedule found.
type simResult struct {
	fails []string
	stats simStats
	trace uint64
	err   error // the harness itself failed (a store did not open)
}

func (r simResult) failed() bool { return r.err != nil || len(r.fails) > 0 }

// simBase is where the stores go: tmpfs when the machine has one (every
// commit is fsynced, and a schedule makes thousands), else the test's
// temporary directory. FIELDSYNC_SIM_DIR overrides.
func simBase(t testing.TB) string {
	if d := os.Getenv("FIELDSYNC_SIM_DIR"); d != "" {
		return d
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fieldsync-sim-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// simRun runs one seed's schedule (only the steps in keep, when keep is not
// nil), heals it, waits for quiet and checks the invariants.
func simRun(seed uint64, keep []int, base string, tracef func(string, ...any)) simResult {
	dir, err := os.MkdirTemp(base, fmt.Sprintf("seed-%d-", seed))
	if err != nil {
		return simResult{err: err}
	}
	defer os.RemoveAll(dir)
	p, steps := simDraw(seed)
	w, err := newSimWorld(seed, dir, p)
	if err != nil {
		return simResult{err: err}
	}
	w.tracef = tracef
	defer func() {
		for _, n := range w.nodes {
			if n.a != nil {
				_ = n.a.store.Close()
			}
		}
	}()
	w.logf("deployment %s window %d max ops %d max bytes %d", w.nodeNames(), p.sync.Window, p.sync.MaxOps, p.sync.MaxBytes)
	if keep == nil {
		for i := range steps {
			keep = append(keep, i)
		}
	}
	for _, i := range keep {
		if i < len(steps) {
			w.run(i, steps[i])
		}
	}
	w.heal(p.laptops)
	if !w.quiesce(200000) {
		w.failf("the network did not go quiet after the heal")
	}
	if len(w.fails) == 0 {
		w.check()
	}

	return simResult{fails: w.fails, stats: w.stats, trace: w.trace}
}

// parseKeep reads "0,3,7-9".
func parseKeep(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("keep %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("keep %q: %w", s, err)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// formatKeep writes steps as parseKeep reads them, with ranges.
func formatKeep(keep []int) string {
	var parts []string
	for i := 0; i < len(keep); {
		j := i
		for j+1 < len(keep) && keep[j+1] == keep[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", keep[i], keep[j]))
		} else {
			parts = append(parts, strconv.Itoa(keep[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func replayCommand(seed uint64, keep []int) string {
	cmd := fmt.Sprintf("go test ./agent -run '^TestSim$' -count=1 -seed %d", seed)
	if keep != nil {
		cmd += " -keep " + formatKeep(keep)
	}
	return cmd
}

// shrink drops steps of a failing schedule while it still fails: halves,
// then quarters, down to single steps (a plain delta-debugging pass),
// within a time budget.
func shrink(seed uint64, base string, budget time.Duration) []int {
	_, steps := simDraw(seed)
	keep := make([]int, len(steps))
	for i := range keep {
		keep[i] = i
	}
	deadline := time.Now().Add(budget)
	for chunk := len(keep) / 2; chunk >= 1; chunk /= 2 {
		for start := 0; start < len(keep) && time.Now().Before(deadline); {
			try := append(append([]int{}, keep[:start]...), keep[min(start+chunk, len(keep)):]...)
			if simRun(seed, try, base, nil).failed() {
				keep = try
				continue
			}
			start += chunk
		}
	}
	return keep
}

// TestSim runs the deterministic simulation of a deployment over many
// seeds (docs/testing.md, "Deterministic simulation").
func TestSim(t *testing.T) {
	base := simBase(t)
	if *simSeed != 0 {
		keep, err := parseKeep(*simKeep)
		if err != nil {
			t.Fatal(err)
		}
		var tracef func(string, ...any)
		if *simTrace {
			tracef = func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
		}
		start := time.Now()
		r := simRun(*simSeed, keep, base, tracef)
		if r.err != nil {
			t.Fatalf("seed %d: %v", *simSeed, r.err)
		}
		for _, f := range r.fails {
			t.Error(f)
		}
		fmt.Printf("seed %d: %d steps, %d frames, %d batches, %d ops sent, %d crashes, %d restarts, %d receipts, %d decisions, %.2fs\n",
			*simSeed, r.stats.Steps, r.stats.Frames, r.stats.Batches, r.stats.Ops, r.stats.Crashes, r.stats.Restarts,
			r.stats.Receipts, r.stats.Settles, time.Since(start).Seconds())
		if r.failed() {
			t.Logf("replay: %s", replayCommand(*simSeed, keep))
		}
		return
	}
	workers := *simWork
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Uint64
	next.Store(*simFirst)
	last := *simFirst + uint64(*simSeeds)
	var (
		mu      sync.Mutex
		failed  = map[uint64]simResult{}
		total   simStats
		ran     int
		wg      sync.WaitGroup
		stopAll atomic.Bool
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopAll.Load() {
				seed := next.Add(1) - 1
				if seed >= last {
					return
				}
				r := simRun(seed, nil, base, nil)
				mu.Lock()
				ran++
				if ran%1000 == 0 {
					el := time.Since(start).Seconds()
					fmt.Printf("seeds %d so far (%.1f seeds/s)\n", ran, float64(ran)/el)
				}
				total.Steps += r.stats.Steps
				total.Ops += r.stats.Ops
				total.Crashes += r.stats.Crashes
				if r.failed() {
					failed[seed] = r
					stopAll.Store(true)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if len(failed) == 0 {
		fmt.Printf("seeds %d ok (%.1f seeds/s, %.0fs, %d workers; %d steps, %d ops sent, %d crashes)\n",
			ran, float64(ran)/elapsed, elapsed, workers, total.Steps, total.Ops, total.Crashes)
		return
	}
	for seed, r := range failed {
		if r.err != nil {
			t.Errorf("seed %d: %v", seed, r.err)
		}
		for _, f := range r.fails[:min(len(r.fails), 12)] {
			t.Errorf("seed %d: %s", seed, f)
		}
		t.Errorf("seed %d fails; replay: %s", seed, replayCommand(seed, nil))
		if !*simNoShr {
			keep := shrink(seed, base, 2*time.Minute)
			_, steps := simDraw(seed)
			var kept []string
			for _, i := range keep {
				kept = append(kept, fmt.Sprintf("%d:%s", i, steps[i]))
			}
			t.Errorf("seed %d shrunk to %d of %d steps: %s\nreplay: %s", seed, len(keep), len(steps), strings.Join(kept, " "), replayCommand(seed, keep))
		}
	}
}

// TestSimReplaysExactly runs one seed twice: the same events, the same
// outcome. A schedule that did not replay exactly would make a failing seed
// useless.
func TestSimReplaysExactly(t *testing.T) {
	base := simBase(t)
	a, b := simRun(7, nil, base, nil), simRun(7, nil, base, nil)
	if a.failed() || b.failed() {
		t.Fatalf("seed 7 fails: %v %v", a.fails, b.fails)
	}
	if a.trace != b.trace || a.stats != b.stats {
		t.Fatalf("seed 7 ran differently twice: trace %x %+v, then %x %+v", a.trace, a.stats, b.trace, b.stats)
	}
}

// simRegressions are seeds that found bugs, kept so they keep running (the
// schedule a seed draws changes when simDraw does; each bug also has a
// scripted test below that does not depend on it).
var simRegressions = []struct {
	seed uint64
	bug  string
}{
	{17, "a receipt's hub credential was kept without its officer, so the conflict queue showed the hub's values with no officer on laptops that met the hub only through its receipts"},
	{9, "two admins apart merged one pair of dossiers in opposite directions: each was retired into the other, no dossier survived, and no queue showed it"},
	{932, "after opposite merges, two admins settled the two _retired_into conflicts one after the other, each keeping the other dossier: both retired into each other with nothing in any queue"},
	{2, "a dossier's history listed a correction before the value it corrected when that value came from a laptop whose clock ran more than a day ahead"},
}

func TestSimRegressions(t *testing.T) {
	base := simBase(t)
	for _, c := range simRegressions {
		if r := simRun(c.seed, nil, base, nil); r.failed() {
			t.Errorf("seed %d (%s): %v %v\nreplay: %s", c.seed, c.bug, r.err, r.fails, replayCommand(c.seed, nil))
		}
	}
}

// simScript builds a small deployment for a scripted scenario: the same
// world as the random schedules, driven step by step.
func simScript(t *testing.T, laptops, admins, hubs int) *simWorld {
	t.Helper()
	p := simParams{laptops: laptops, admins: admins, hubs: hubs, skews: []int64{0}, sync: DefaultConfig().Sync}
	w, err := newSimWorld(1, simBase(t), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range w.nodes {
			_ = n.a.store.Close()
		}
	})
	w.rng = rand.New(rand.NewPCG(1, 1))
	return w
}

// A laptop that learns of a hub only from a receipt relayed by another
// laptop shows the hub's officer beside the hub's values (seed 17).
func TestSimReceiptKeepsTheHubsOfficer(t *testing.T) {
	w := simScript(t, 2, 1, 1) // admin-1, laptop-2, hub-1
	admin, laptop, hub := w.nodes[0], w.nodes[1], w.nodes[2]
	w.up(admin.i, hub.i)
	w.quiesce(1000)
	hub.a.kickReceipts()
	w.service()
	w.quiesce(1000)
	w.up(admin.i, laptop.i)
	w.quiesce(1000)
	if got := laptop.a.officerOf(hub.dev.ID()); got != hub.dev.Credential.Officer {
		t.Fatalf("laptop shows the hub's officer as %q, want %q", got, hub.dev.Credential.Officer)
	}
	if len(w.fails) > 0 {
		t.Fatal(w.fails)
	}
}

// A correction made on a laptop with a right clock of a value captured on a
// laptop whose clock runs three days ahead carries an earlier time (the
// hybrid clock ignores readings more than a day ahead), yet the dossier's
// history lists the capture first (seed 2).
func TestSimHistoryFollowsWhatEachChangeSaw(t *testing.T) {
	w := simScript(t, 2, 0, 0)
	ahead, right := w.nodes[0], w.nodes[1]
	ahead.skew = 3 * 24 * 3600e3
	w.up(ahead.i, right.i)
	w.run(0, simStep{Kind: stCapture, A: ahead.i, X: 1, Y: 1})
	w.quiesce(1000)
	id := simRecordID(w.seed, ahead.i, 1)
	w.write(right, "edit", func() error {
		_, err := backend{right.a}.Update(context.Background(), id, map[string]string{"commune": "Sà Phìn"})
		return err
	})
	w.quiesce(1000)
	for _, n := range w.nodes {
		h, err := n.a.store.History(id)
		if err != nil || len(h) != 2 {
			t.Fatalf("%s history: %d ops, %v", n.name, len(h), err)
		}
		if h[0].Op.Kind != crdt.KindCreate || h[1].Op.Time.Compare(h[0].Op.Time) >= 0 {
			t.Fatalf("%s history: %s at %v, then %s at %v; want the capture first, and the correction's time earlier", n.name,
				h[0].Op.Kind, h[0].Op.Time, h[1].Op.Kind, h[1].Op.Time)
		}
		w.checkCausality(n, id, h)
	}
	if len(w.fails) > 0 {
		t.Fatal(w.fails)
	}
}

// Two admins apart merge one pair of dossiers in opposite directions. Each
// dossier is then retired into the other; both show _retired_into in the
// conflict queue, and once an admin settles them one dossier survives
// (seed 9).
func TestSimOppositeMergesShowInTheConflictQueue(t *testing.T) {
	ctx := context.Background()
	w := simScript(t, 3, 2, 0) // admin-1, admin-2, laptop-3
	a1, a2, laptop := w.nodes[0], w.nodes[1], w.nodes[2]
	w.up(laptop.i, a1.i)
	w.up(laptop.i, a2.i)
	w.run(0, simStep{Kind: stCapture, A: laptop.i, X: 0, Y: 1})
	w.run(1, simStep{Kind: stCapture, A: laptop.i, X: 0, Y: 1})
	w.quiesce(1000)
	x, y := simRecordID(w.seed, laptop.i, 1), simRecordID(w.seed, laptop.i, 2)
	w.down(laptop.i, a2.i)
	w.settle(a1, "merge", func() error {
		_, err := backend{a1.a}.Merge(ctx, api.MergeRequest{Survivor: x, Other: y})
		return err
	})
	w.settle(a2, "merge", func() error {
		_, err := backend{a2.a}.Merge(ctx, api.MergeRequest{Survivor: y, Other: x})
		return err
	})
	w.up(a1.i, a2.i)
	w.quiesce(1000)
	for _, n := range w.nodes {
		var fields []string
		for _, c := range w.queue(n) {
			fields = append(fields, c.record+" "+c.field)
		}
		want := []string{x + " " + crdt.FieldRetiredInto, y + " " + crdt.FieldRetiredInto}
		sort.Strings(fields)
		sort.Strings(want)
		if !slices.Equal(fields, want) {
			t.Fatalf("%s conflict queue %v, want %v", n.name, fields, want)
		}
	}
	// The admin keeps x: x survives, y is retired into it.
	for _, c := range []struct{ id, into string }{{x, ""}, {y, x}} {
		w.settle(a1, "resolve", func() error {
			_, err := backend{a1.a}.Resolve(ctx, c.id, api.ResolveRequest{Field: crdt.FieldRetiredInto, Value: c.into})
			return err
		})
	}
	w.quiesce(1000)
	for _, n := range w.nodes {
		rx, _ := n.a.store.Record(x)
		ry, _ := n.a.store.Record(y)
		if rx.RetiredInto() != "" || ry.RetiredInto() != x || len(w.queue(n)) != 0 {
			t.Fatalf("%s: x retired into %q, y into %q, queue %v", n.name, rx.RetiredInto(), ry.RetiredInto(), w.queue(n))
		}
	}
	if len(w.fails) > 0 {
		t.Fatal(w.fails)
	}
}

// After opposite merges, an admin settles one dossier's _retired_into by
// retiring it into the other; retiring the other into it as well would
// leave no survivor and is refused, keeping it is not (seed 932).
func TestSimResolveRefusesARetirementCycle(t *testing.T) {
	ctx := context.Background()
	w := simScript(t, 2, 2, 0) // admin-1, admin-2
	a1, a2 := w.nodes[0], w.nodes[1]
	w.run(0, simStep{Kind: stCapture, A: a1.i, X: 0, Y: 1})
	w.run(1, simStep{Kind: stCapture, A: a1.i, X: 0, Y: 1})
	w.up(a1.i, a2.i)
	w.quiesce(1000)
	w.down(a1.i, a2.i)
	x, y := simRecordID(w.seed, a1.i, 1), simRecordID(w.seed, a1.i, 2)
	if _, err := (backend{a1.a}).Merge(ctx, api.MergeRequest{Survivor: x, Other: y}); err != nil {
		t.Fatal(err)
	}
	if _, err := (backend{a2.a}).Merge(ctx, api.MergeRequest{Survivor: y, Other: x}); err != nil {
		t.Fatal(err)
	}
	w.up(a1.i, a2.i)
	w.quiesce(1000)
	if _, err := (backend{a2.a}).Resolve(ctx, x, api.ResolveRequest{Field: crdt.FieldRetiredInto, Value: y}); err != nil {
		t.Fatal(err)
	}
	w.quiesce(1000)
	_, err := backend{a1.a}.Resolve(ctx, y, api.ResolveRequest{Field: crdt.FieldRetiredInto, Value: x})
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("retiring %s into %s, which is retired into it: %v, want a refusal", y, x, err)
	}
	if _, err := (backend{a1.a}).Resolve(ctx, y, api.ResolveRequest{Field: crdt.FieldRetiredInto, Value: ""}); err != nil {
		t.Fatal(err)
	}
	w.quiesce(1000)
	for _, n := range w.nodes {
		rx, _ := n.a.store.Record(x)
		ry, _ := n.a.store.Record(y)
		if rx.RetiredInto() != y || ry.RetiredInto() != "" || len(w.queue(n)) != 0 {
			t.Fatalf("%s: x retired into %q, y into %q, queue %v", n.name, rx.RetiredInto(), ry.RetiredInto(), w.queue(n))
		}
	}
	if len(w.fails) > 0 {
		t.Fatal(w.fails)
	}
}

// After opposite merges, two admins apart settle the two _retired_into
// conflicts at the same time, each retiring one dossier into the other.
// The duplicate queue shows the pair as merged both ways, and merging it
// again keeps one.
func TestSimPairRetiredBothWaysShowsInTheDuplicateQueue(t *testing.T) {
	ctx := context.Background()
	w := simScript(t, 2, 2, 0) // admin-1, admin-2
	a1, a2 := w.nodes[0], w.nodes[1]
	w.run(0, simStep{Kind: stCapture, A: a1.i, X: 0, Y: 1})
	w.run(1, simStep{Kind: stCapture, A: a1.i, X: 0, Y: 1})
	w.up(a1.i, a2.i)
	w.quiesce(1000)
	x, y := simRecordID(w.seed, a1.i, 1), simRecordID(w.seed, a1.i, 2)
	x, y = min(x, y), max(x, y)
	w.down(a1.i, a2.i)
	if _, err := (backend{a1.a}).Merge(ctx, api.MergeRequest{Survivor: x, Other: y}); err != nil {
		t.Fatal(err)
	}
	if _, err := (backend{a2.a}).Merge(ctx, api.MergeRequest{Survivor: y, Other: x}); err != nil {
		t.Fatal(err)
	}
	w.up(a1.i, a2.i)
	w.quiesce(1000)
	w.down(a1.i, a2.i)
	if _, err := (backend{a1.a}).Resolve(ctx, x, api.ResolveRequest{Field: crdt.FieldRetiredInto, Value: y}); err != nil {
		t.Fatal(err)
	}
	if _, err := (backend{a2.a}).Resolve(ctx, y, api.ResolveRequest{Field: crdt.FieldRetiredInto, Value: x}); err != nil {
		t.Fatal(err)
	}
	w.up(a1.i, a2.i)
	w.quiesce(1000)
	for _, n := range w.nodes {
		dups, err := backend{n.a}.Duplicates(ctx)
		if err != nil || len(dups) != 1 || dups[0].Reason != "merged_both_ways" || !slices.Equal(dups[0].Records, []string{x, y}) {
			t.Fatalf("%s duplicates %+v (%v), want %s and %s merged both ways", n.name, dups, err, x, y)
		}
	}
	if _, err := (backend{a2.a}).Merge(ctx, api.MergeRequest{Survivor: y, Other: x}); err != nil {
		t.Fatal(err)
	}
	w.quiesce(1000)
	for _, n := range w.nodes {
		rx, _ := n.a.store.Record(x)
		ry, _ := n.a.store.Record(y)
		dups, _ := backend{n.a}.Duplicates(ctx)
		if rx.RetiredInto() != y || ry.RetiredInto() != "" || len(w.queue(n)) != 0 || len(dups) != 0 {
			t.Fatalf("%s: x retired into %q, y into %q, conflicts %v, duplicates %v", n.name, rx.RetiredInto(), ry.RetiredInto(), w.queue(n), dups)
		}
	}
	if len(w.fails) > 0 {
		t.Fatal(w.fails)
	}
}
