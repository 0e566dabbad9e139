package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/agent/vault"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// The kill -9 campaign (docs/testing.md, "kill -9 campaign"): a hub
// exporting into PostgreSQL and two laptops run under load, officers
// capturing dossiers, corrections and attachments on both laptops, the
// laptops syncing ops and chunks with each other, laptop-a uploading to the
// hub and the hub's receipts coming back to both. One of the three is
// killed with SIGKILL at a random moment, sometimes again and again while
// it opens its store, then restarted on the same data directory, and
// everything is checked before the next kill.
//
// Environment: FIELDSYNC_CRASHES kills (30 here, `make crash` 1000),
// FIELDSYNC_CRASH_SEED the seed (1). Kill i's plan comes from the seed and
// i alone, so a failing kill's schedule replays from the pair, and
// FIELDSYNC_CRASH_ONLY=i runs kill i's plan over and over on a fresh
// deployment (the moments are real time, so a replay hits nearby moments,
// not the same instant).

const (
	crashHub   = "hub"
	crashA     = "laptop-a" // reaches the hub; laptop-b only through it
	crashB     = "laptop-b"
	convergeIn = 90 * time.Second
)

// killPlan is one kill, drawn from the seed and the kill's index.
type killPlan struct {
	index  int
	victim string
	// delay is how long the victim runs under load before it is killed.
	delay time.Duration
	// opening are further kills while the victim opens its store again,
	// each that long after the process starts.
	opening []time.Duration
	// midCall: a laptop is killed while one of its API calls is in
	// flight, within a few milliseconds of it starting (a create, an
	// update or an attachment's upload, between request and answer).
	midCall bool
	// rng draws the samples the checks take after this kill.
	rng *rand.Rand
}

func drawKill(seed uint64, i int) killPlan {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	p := killPlan{index: i, rng: r}
	switch v := r.IntN(10); {
	case v < 4:
		p.victim = crashA
	case v < 7:
		p.victim = crashB
	default:
		p.victim = crashHub
	}
	if r.IntN(10) < 4 {
		// Soon after the restart: catching up with the peers, the upload
		// and the export of the backlog the kill left.
		p.delay = time.Duration(r.IntN(300)) * time.Millisecond
	} else {
		p.delay = time.Duration(300+r.IntN(1700)) * time.Millisecond
	}
	p.midCall = p.victim != crashHub && r.IntN(10) < 4
	if r.IntN(100) < 15 {
		for range 1 + r.IntN(3) {
			p.opening = append(p.opening, time.Duration(r.IntN(400))*time.Millisecond)
		}
	}
	return p
}

func (p killPlan) String() string {
	var o []string
	for _, d := range p.opening {
		o = append(o, d.String())
	}
	s := fmt.Sprintf("kill %s after %s under load", p.victim, p.delay)
	if p.midCall {
		s += ", at the next API call"
	}
	if len(o) > 0 {
		s += ", then while opening after " + strings.Join(o, ", ")
	}
	return s
}

// crashCounts are the campaign's figures.
type crashCounts struct {
	kills, opening  int
	byVictim        map[string]int
	during          map[string]int // what was in progress at the kill
	dossierChecks   int            // acknowledged dossiers checked present, summed over kills
	fileChecks      int            // acknowledged files checked whole, summed over kills
	receiptClaims   int            // receipts' per-origin claims checked against PostgreSQL
	storedReceipts  int            // receipts read from killed stores and checked
	opsVerified     int            // ops whose hash chain was verified in killed stores
	repairedOnStart int            // empty log files removed at start (the fixed bug's path)
	// time spent: under load before kills, verifying killed stores,
	// restarting, checking, waiting for the peers to catch up
	loadTime, verifyTime, startTime, checkTime, catchUpTime time.Duration
}

type campaign struct {
	t      *testing.T
	seed   uint64
	c      *harness.Cluster
	agents map[string]*harness.Agent
	args   map[string][]string
	keys   map[string]*vault.Key
	ids    map[string]string // agent name -> device id
	conn   *pgx.Conn
	l      *ledger
	p      *poller
	stop   chan struct{}
	wg     sync.WaitGroup
	n      crashCounts
	// fileMark is, per laptop, how many of the ledger's files were checked
	// after its last kill: later kills check the new ones and a sample.
	fileMark map[string]int
	tmp      string
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func TestE2EKill9Campaign(t *testing.T) {
	kills := envInt(t, "FIELDSYNC_CRASHES", 24)
	seed := uint64(envInt(t, "FIELDSYNC_CRASH_SEED", 1))
	only := envInt(t, "FIELDSYNC_CRASH_ONLY", -1)
	pg := pgtest.Require(t)
	cp := newCampaign(t, pg, seed)
	t.Logf("kill -9 campaign: seed %d, %d kills (FIELDSYNC_CRASH_SEED, FIELDSYNC_CRASHES)", seed, kills)
	began := time.Now()
	progress := 0
	for i := 0; cp.n.kills < kills; i++ {
		k := i
		if only >= 0 {
			k = only
		}
		plan := drawKill(seed, k)
		if cp.n.kills >= progress {
			t.Logf("kill %d of %d (plan %d: %s), %s so far", cp.n.kills+1, kills, k, plan, time.Since(began).Round(time.Second))
			progress += 50
		}
		if err := cp.kill(plan); err != nil {
			t.Fatalf("plan %d of seed %d, kill %d (%s): %v\nreplay the schedule: make crash CRASH_SEED=%d CRASHES=%d\nthis plan alone, again and again: make crash CRASH_SEED=%d CRASH_ONLY=%d CRASHES=20",
				k, seed, cp.n.kills, plan, err, seed, cp.n.kills, seed, k)
		}
	}
	took := time.Since(began)
	if err := cp.finish(); err != nil {
		t.Fatalf("after %d kills (seed %d): %v\nreplay: make crash CRASH_SEED=%d CRASHES=%d", cp.n.kills, seed, err, seed, kills)
	}
	cp.report(took)
}

func newCampaign(t *testing.T, pg string, seed uint64) *campaign {
	c := cluster(t)
	cp := &campaign{t: t, seed: seed, c: c, agents: map[string]*harness.Agent{}, args: map[string][]string{},
		keys: map[string]*vault.Key{}, ids: map[string]string{}, l: newLedger(crashA, crashB),
		p: &poller{last: map[string]api.Status{}}, stop: make(chan struct{}), fileMark: map[string]int{}, tmp: t.TempDir(),
		n: crashCounts{byVictim: map[string]int{}, during: map[string]int{}}}
	for _, nr := range [][2]string{{crashHub, "hub"}, {crashA, "field"}, {crashB, "field"}} {
		a, err := c.Provision(nr[0], nr[1])
		if err != nil {
			t.Fatal(err)
		}
		cp.agents[a.Name] = a
		if cp.keys[a.Name], err = harness.Unlock(a.Data); err != nil {
			t.Fatal(err)
		}
	}
	hub, a, b := cp.agents[crashHub], cp.agents[crashA], cp.agents[crashB]
	cp.args[crashHub] = []string{"--postgres", pg}
	cp.args[crashA] = []string{"--hub", hub.Listen, "--join", b.Listen}
	cp.args[crashB] = []string{"--join", a.Listen}
	for _, ag := range []*harness.Agent{hub, a, b} {
		if err := ag.Start(cp.args[ag.Name]...); err != nil {
			t.Fatal(err)
		}
		cp.ids[ag.Name] = status(t, ag).DeviceID
	}
	var err error
	if cp.conn, err = pgx.Connect(ctx, pg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.conn.Close(ctx) })
	for i, lap := range []*harness.Agent{a, b, a, b} {
		dir := filepath.Join(cp.tmp, fmt.Sprintf("files-%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		w := &worker{l: cp.l, laptop: lap, id: i + 1, rng: rand.New(rand.NewPCG(seed, 1<<32+uint64(i))), dir: dir, attempted: map[string]bool{}}
		cp.wg.Add(1)
		go func() { defer cp.wg.Done(); w.run(cp.stop) }()
	}
	cp.wg.Add(1)
	go func() { defer cp.wg.Done(); cp.p.run(cp.stop, hub, a, b) }()
	t.Cleanup(cp.halt)
	return cp
}

// halt stops the load (idempotent).
func (cp *campaign) halt() {
	select {
	case <-cp.stop:
	default:
		close(cp.stop)
	}
	cp.wg.Wait()
}

// kill carries out one plan and checks everything after it.
func (cp *campaign) kill(plan killPlan) error {
	v := cp.agents[plan.victim]
	t0 := time.Now()
	defer func() { cp.n.checkTime += time.Since(t0) }()
	time.Sleep(plan.delay)
	if !v.Running() {
		return fmt.Errorf("%s exited by itself (exit %d):\n%s", v.Name, v.ExitCode(), tail(v.Log(), 30))
	}
	if plan.midCall {
		// Wait for a call to start, then kill inside it.
		deadline := time.Now().Add(2 * time.Second)
		for cp.l.inFlight[v.Name].Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(time.Duration(plan.rng.IntN(4000)) * time.Microsecond)
	}
	cp.n.loadTime += time.Since(t0)
	t0 = time.Now()
	cp.classify(v)
	floor := cp.p.get(v.Name).VersionVector
	cp.p.forget(v.Name)
	v.Kill()
	cp.n.kills++
	cp.n.byVictim[v.Name]++
	if err := cp.afterKill(v, plan.index, 0); err != nil {
		return err
	}
	for j, d := range plan.opening {
		logged := len(v.Log())
		if err := v.Launch(cp.args[v.Name]...); err != nil {
			return err
		}
		time.Sleep(d)
		if !v.Running() {
			return fmt.Errorf("%s exited by itself while opening (exit %d):\n%s", v.Name, v.ExitCode(), tail(v.Log()[logged:], 30))
		}
		v.Kill()
		cp.n.kills++
		cp.n.opening++
		cp.n.byVictim[v.Name]++
		cp.n.during["opening its store"]++
		if err := cp.afterKill(v, plan.index, j+1); err != nil {
			return err
		}
	}
	cp.n.verifyTime += time.Since(t0)
	t0 = time.Now()
	logged := len(v.Log())
	if err := v.Launch(cp.args[v.Name]...); err != nil {
		return err
	}
	if err := v.WaitReady(30 * time.Second); err != nil {
		return fmt.Errorf("REFUSED: %s does not start again on its data directory: %w", v.Name, err)
	}
	cp.n.repairedOnStart += strings.Count(v.Log()[logged:], "removed an empty log file")
	cp.n.startTime += time.Since(t0)
	t0 = time.Now()
	return cp.check(v, floor, plan)
}

// classify counts what was in progress when v is killed, as its last
// status (at most ~100 ms old) and the load show it.
func (cp *campaign) classify(v *harness.Agent) {
	st := cp.p.get(v.Name)
	hub, a := cp.p.get(crashHub), cp.p.get(crashA)
	ahead := func(peer map[string]uint64) bool { _, ok := covers(st.VersionVector, peer); return !ok }
	note := func(what string, cond bool) {
		if cond {
			cp.n.during[what]++
		}
	}
	if v.Name == crashHub {
		note("hub: receiving ops", ahead(a.VersionVector))
		note("hub: receiving chunks", st.Attachments.Incomplete > 0 || st.Attachments.InFlight > 0)
		note("hub: exporting (ops or files not yet in PostgreSQL)", st.Upstream.Undelivered > 0 || st.Upstream.AttachmentsUndelivered > 0)
		return
	}
	peer := cp.p.get(map[string]string{crashA: crashB, crashB: crashA}[v.Name])
	note("laptop: API call in flight", cp.l.inFlight[v.Name].Load() > 0)
	note("laptop: receiving ops", ahead(peer.VersionVector))
	note("laptop: receiving chunks", st.Attachments.Incomplete > 0 || st.Attachments.InFlight > 0)
	note("laptop: a newer receipt on its way", receiptBehind(st.Upstream.Receipts, hub.Upstream.Receipts))
	note("laptop: uploading to the hub", st.Upstream.Upload != nil && st.Upstream.Upload.PendingOps > 0)
}

func receiptBehind(have, hub map[string]uint64) bool {
	_, ok := covers(have, hub)
	return !ok
}

// afterKill copies the killed store and verifies the copy with the real
// store code: it opens (badger's recovery runs on the copy), every chain
// is intact, every receipt kept is true of PostgreSQL. The agent then
// restarts on the original, untouched, so its own recovery is what runs
// there.
func (cp *campaign) afterKill(v *harness.Agent, index, sub int) error {
	dir := filepath.Join(cp.tmp, fmt.Sprintf("copy-%d-%d", index, sub))
	defer os.RemoveAll(dir)
	if err := copyStore(v.Data, dir); err != nil {
		return err
	}
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snap := cp.l.snapshot()
	res, err := verifyStore(c, dir, cp.keys[v.Name], cp.conn, snap.files, cp.ids, false)
	if err != nil {
		return fmt.Errorf("store of %s as the kill left it: %w", v.Name, err)
	}
	cp.n.opsVerified += res.ops
	cp.n.storedReceipts += res.receipts
	return nil
}

// check runs the checks after v restarted: what its API acknowledged is
// there, it shows at least every op it showed before the kill, it and its
// peers catch up with each other, and what every agent says is delivered
// is in PostgreSQL.
func (cp *campaign) check(v *harness.Agent, floor map[string]uint64, plan killPlan) error {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cp.problems(); err != nil {
		return err
	}
	snap := cp.l.snapshot()
	if v.Name != crashHub {
		files := cp.filesToCheck(v.Name, snap, plan.rng)
		n, err := checkAcked(v, snap, files, cp.l.attempted)
		cp.n.dossierChecks += n
		cp.n.fileChecks += len(files)
		if err != nil {
			return err
		}
	}
	st, err := v.Client.Status(c)
	if err != nil {
		return err
	}
	if why, ok := covers(st.VersionVector, floor); !ok {
		return fmt.Errorf("LOST: %s restarted without ops it showed before the kill: %s", v.Name, why)
	}
	t1 := time.Now()
	err = cp.catchUp(v, plan)
	cp.n.catchUpTime += time.Since(t1)
	cp.n.checkTime -= time.Since(t1)
	if err != nil {
		return err
	}
	n, err := checkReceiptsOnline(c, cp.conn, cp.agents[crashHub], cp.agents[crashA], cp.agents[crashB])
	cp.n.receiptClaims += n
	if err != nil {
		return err
	}
	return checkDelivered(c, cp.conn, v, snap.files, cp.ids)
}

func (cp *campaign) problems() error {
	cp.l.mu.Lock()
	defer cp.l.mu.Unlock()
	if len(cp.l.problems) > 0 {
		return fmt.Errorf("WRONG ANSWER: %s", strings.Join(cp.l.problems, "; "))
	}
	return nil
}

// filesToCheck is what a laptop's kill checks of its own files: every one
// acknowledged since its last check, and a sample of the older ones.
func (cp *campaign) filesToCheck(laptop string, snap snapshot, r *rand.Rand) []ackedFile {
	var older, out []ackedFile
	for i, f := range snap.files {
		if f.laptop != laptop {
			continue
		}
		if i >= cp.fileMark[laptop] {
			out = append(out, f)
		} else {
			older = append(older, f)
		}
	}
	cp.fileMark[laptop] = len(snap.files)
	for range min(5, len(older)) {
		out = append(out, older[r.IntN(len(older))])
	}
	return out
}

// catchUp waits until v and its peers hold what each other held when v
// came back, and v serves a sample of the peer's files whole.
func (cp *campaign) catchUp(v *harness.Agent, plan killPlan) error {
	type pair struct{ from, to string }
	var pairs []pair
	switch v.Name {
	case crashHub:
		pairs = []pair{{crashA, crashHub}}
	case crashA:
		pairs = []pair{{crashB, crashA}, {crashA, crashB}, {crashA, crashHub}}
	case crashB:
		pairs = []pair{{crashA, crashB}, {crashB, crashA}}
	}
	vvs := map[string]map[string]uint64{}
	for _, p := range pairs {
		if vvs[p.from] == nil {
			vvs[p.from] = status(cp.t, cp.agents[p.from]).VersionVector
		}
	}
	for _, p := range pairs {
		to := cp.agents[p.to]
		var why string
		err := harness.WaitFor(convergeIn, func() (bool, error) {
			st, err := to.Client.Status(ctx)
			if err != nil {
				return false, err
			}
			w, ok := covers(st.VersionVector, vvs[p.from])
			why = w
			return ok, nil
		})
		if err != nil {
			return fmt.Errorf("NO CONVERGENCE: %s did not catch up with %s within %s: %s", p.to, p.from, convergeIn, why)
		}
	}
	// A sample of the files the victim should now hold, from the peer
	// whose ops it caught up with.
	snap := cp.l.snapshot()
	var due []ackedFile
	for _, f := range snap.files {
		if f.laptop != v.Name && vvs[pairs[0].from][cp.ids[f.laptop]] >= f.seq {
			due = append(due, f)
		}
	}
	for range min(4, len(due)) {
		f := due[plan.rng.IntN(len(due))]
		var last error
		err := harness.WaitFor(convergeIn, func() (bool, error) {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			last = checkFile(c, v, f, false)
			return last == nil, nil
		})
		if err != nil {
			return fmt.Errorf("NO CONVERGENCE: %s does not serve %s's file %s whole within %s: %v", v.Name, f.laptop, f.sha[:12], convergeIn, last)
		}
		cp.n.fileChecks++
	}
	return nil
}

// finish stops the load, waits until the deployment is quiet and checks
// it whole: both laptops hold the same dossiers in the same state, the hub
// holds every op and PostgreSQL every op, dossier and file; every
// acknowledged dossier, update and file is on both laptops (and the files
// at the hub); then, stopped, every store verifies end to end, every
// signature included.
func (cp *campaign) finish() error {
	cp.halt()
	hub, a, b := cp.agents[crashHub], cp.agents[crashA], cp.agents[crashB]
	var why string
	err := harness.WaitFor(3*time.Minute, func() (bool, error) {
		sh, sa, sb := status(cp.t, hub), status(cp.t, a), status(cp.t, b)
		switch {
		case !mapsEqual(sa.VersionVector, sb.VersionVector) || !mapsEqual(sa.VersionVector, sh.VersionVector):
			why = fmt.Sprintf("version vectors differ: a %v b %v hub %v", sa.VersionVector, sb.VersionVector, sh.VersionVector)
		case sa.Upstream.Undelivered+sb.Upstream.Undelivered+sh.Upstream.Undelivered > 0 ||
			sa.Upstream.AttachmentsUndelivered+sb.Upstream.AttachmentsUndelivered+sh.Upstream.AttachmentsUndelivered > 0:
			why = fmt.Sprintf("undelivered: a %d+%d b %d+%d hub %d+%d", sa.Upstream.Undelivered, sa.Upstream.AttachmentsUndelivered,
				sb.Upstream.Undelivered, sb.Upstream.AttachmentsUndelivered, sh.Upstream.Undelivered, sh.Upstream.AttachmentsUndelivered)
		case sa.Attachments.Incomplete+sb.Attachments.Incomplete+sh.Attachments.Incomplete > 0:
			why = "attachments incomplete"
		default:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("NO CONVERGENCE once the load stopped: %s", why)
	}
	if err := cp.problems(); err != nil {
		return err
	}
	snap := cp.l.snapshot()
	for _, lap := range []*harness.Agent{a, b} {
		n, err := checkAcked(lap, snap, nil, cp.l.attempted)
		cp.n.dossierChecks += n
		if err != nil {
			return err
		}
	}
	for _, ag := range []*harness.Agent{a, b, hub} {
		for _, f := range snap.files {
			if err := checkFile(ctx, ag, f, true); err != nil {
				return err
			}
			cp.n.fileChecks++
		}
	}
	ra, rb, rh := records(cp.t, a), records(cp.t, b), records(cp.t, hub)
	if len(ra) != len(rb) || len(ra) != len(rh) {
		return fmt.Errorf("NO CONVERGENCE: a holds %d dossiers, b %d, the hub %d", len(ra), len(rb), len(rh))
	}
	for id, x := range ra {
		if y := rb[id]; !mapsEqual(x.Fields, y.Fields) || !sameConflicts(x.Conflicts, y.Conflicts) {
			return fmt.Errorf("NO CONVERGENCE: dossier %s is %v on a, %v on b", id, x.Fields, y.Fields)
		}
		if _, ok := rh[id]; !ok {
			return fmt.Errorf("NO CONVERGENCE: dossier %s missing at the hub", id)
		}
	}
	for id := range snap.dossiers {
		if _, ok := ra[id]; !ok {
			return fmt.Errorf("LOST: acknowledged dossier %s", id)
		}
	}
	// PostgreSQL: every op, every dossier, every file, byte for byte.
	vv := status(cp.t, hub).VersionVector
	var total uint64
	for _, n := range vv {
		total += n
	}
	var ops, recs, bad int64
	if err := cp.conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM fieldsync_ops), (SELECT count(*) FROM fieldsync_records),
		(SELECT count(*) FROM fieldsync_attachments WHERE encode(sha256(bytes), 'hex') <> sha256)`).Scan(&ops, &recs, &bad); err != nil {
		return err
	}
	if uint64(ops) != total || int(recs) != len(rh) || bad != 0 {
		return fmt.Errorf("PostgreSQL holds %d ops of %d, %d dossiers of %d, %d files whose bytes do not hash to their key", ops, total, recs, len(rh), bad)
	}
	pg, err := readPG(ctx, cp.conn)
	if err != nil {
		return err
	}
	for _, f := range snap.files {
		if !pg.files[f.record+"|"+f.sha] {
			return fmt.Errorf("LOST upstream: file %s of %s is not in fieldsync_attachments", f.sha[:12], f.record)
		}
	}
	n, err := checkReceiptsOnline(ctx, cp.conn, hub, a, b)
	cp.n.receiptClaims += n
	if err != nil {
		return err
	}
	for _, ag := range []*harness.Agent{hub, a, b} {
		if err := checkDelivered(ctx, cp.conn, ag, snap.files, cp.ids); err != nil {
			return err
		}
	}
	for _, ag := range []*harness.Agent{hub, a, b} {
		if err := ag.Stop(); err != nil {
			return err
		}
		res, err := verifyStore(ctx, ag.Data, cp.keys[ag.Name], cp.conn, snap.files, cp.ids, true)
		if err != nil {
			return fmt.Errorf("store of %s, stopped at the end: %w", ag.Name, err)
		}
		cp.n.opsVerified += res.ops
		cp.n.storedReceipts += res.receipts
	}
	return nil
}

func (cp *campaign) report(took time.Duration) {
	snap := cp.l.snapshot()
	updates := 0
	for _, nl := range snap.notes {
		if nl.acked >= 0 {
			updates++
		}
	}
	t := cp.t
	t.Logf("kill -9 campaign, seed %d: %d kills in %s (%.1f kills/s)", cp.seed, cp.n.kills, took.Round(time.Second), float64(cp.n.kills)/took.Seconds())
	t.Logf("  kills by victim: %s; %d of them while the agent opened its store", fmtCounts(cp.n.byVictim), cp.n.opening)
	t.Logf("  in progress at the kill (last status before it; a kill can count in several):")
	keys := make([]string, 0, len(cp.n.during))
	for k := range cp.n.during {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("    %-55s %d", k, cp.n.during[k])
	}
	t.Logf("  acknowledged: %d dossiers, %d dossiers with acknowledged updates, %d attachments", len(snap.dossiers), updates, len(snap.files))
	t.Logf("  checked: %d acknowledged dossiers (summed over kills), %d files served whole, %d receipt claims against PostgreSQL, %d receipts kept in killed stores, %d ops' hash chains in killed stores",
		cp.n.dossierChecks, cp.n.fileChecks, cp.n.receiptClaims, cp.n.storedReceipts, cp.n.opsVerified)
	t.Logf("  empty log files removed at start (kills while badger created one): %d", cp.n.repairedOnStart)
	t.Logf("  time: %s under load before kills, %s verifying killed stores (and the kills while opening), %s restarting, %s checking, %s for peers to catch up",
		cp.n.loadTime.Round(time.Second), cp.n.verifyTime.Round(time.Second), cp.n.startTime.Round(time.Second),
		cp.n.checkTime.Round(time.Second), cp.n.catchUpTime.Round(time.Second))
	t.Logf("  lost 0, wrong 0, refused starts 0")
}

func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func records(t *testing.T, a *harness.Agent) map[string]api.Record {
	t.Helper()
	recs, err := a.Client.ListAll(ctx)
	if err != nil {
		t.Fatalf("list on %s: %v", a.Name, err)
	}
	out := make(map[string]api.Record, len(recs))
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameConflicts(a, b map[string][]api.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for f, xs := range a {
		ys := b[f]
		if len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if xs[i].Value != ys[i].Value || xs[i].Op != ys[i].Op {
				return false
			}
		}
	}
	return true
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
