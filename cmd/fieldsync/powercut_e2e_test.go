package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"github.com/fieldsync/fieldsync/cmd/internal/lazyfs"
	"github.com/fieldsync/fieldsync/crdt"
)

// The power-cut campaign (issue 10 point 2): a laptop's data directory is on
// a lazyfs mount, which loses at a cut whatever was not fsynced. The laptop
// captures dossiers through the API and receives a peer's while the power is
// cut at random moments; after each cut the agent is killed (a cut kills it
// too) and the file system boots again. The store as the cut left it must
// open and hold every dossier whose create was answered (checked on a copy
// of the disk, before the peer could hand anything back); then the agent
// restarts on it and converges with the peer. See docs/testing.md, "Power
// cuts".
//
// CUTS=N sets the number of cuts (default powercutDefault), POWERCUT_SEED
// the seed (default 1), POWERCUT_MODEL ordered or strict (lazyfs.Model);
// POWERCUT_KEEP=1 keeps the disk image (the backing directory) afterwards.

const powercutDefault = 30

func envUint(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

// powerCuts is the state the rounds share.
type powerCuts struct {
	t       *testing.T
	rng     *rand.Rand
	fsys    *lazyfs.FS
	disk    string // the laptop's data directory in lazyfs's backing directory
	scratch string
	laptop  *harness.Agent
	peer    *harness.Agent

	mu sync.Mutex
	// acked maps each dossier whose create the laptop answered to the
	// personal ID it was sent with; peerAcked the same on the peer.
	acked, peerAcked map[string]string
	n                int // dossiers sent, for distinct personal IDs

	// Figures.
	checked                    int // acknowledged dossiers checked on the disk, summed over the cuts
	byOps, byTime, duringStart int // cuts by kind
}

func TestE2EPowerCuts(t *testing.T) {
	c := cluster(t)
	cuts := int(envUint(t, "CUTS", powercutDefault))
	seed := envUint(t, "POWERCUT_SEED", 1)
	model, err := lazyfs.ParseModel(os.Getenv("POWERCUT_MODEL"))
	if err != nil {
		t.Fatal(err)
	}
	opts := lazyfs.Options{Seed: seed, Model: model}
	if os.Getenv("POWERCUT_KEEP") != "" {
		// The disk image outlives the test, for a failure's post-mortem.
		dir, err := os.MkdirTemp("", "fieldsync-powercut-disk")
		if err != nil {
			t.Fatal(err)
		}
		opts.Backing = dir
		t.Logf("power cuts: the disk (lazyfs's backing directory) is kept in %s", dir)
	}
	fsys := lazyfs.MountT(t, opts)
	t.Logf("power cuts: %d cuts, seed %d, model %s; replay: CUTS=%d POWERCUT_SEED=%d POWERCUT_MODEL=%s go test -run 'TestE2EPowerCuts$' ./cmd/fieldsync",
		cuts, seed, model, cuts, seed, model)

	peer := start(t, c, "peer")
	laptop, err := c.Provision("laptop", "field")
	if err != nil {
		t.Fatal(err)
	}
	onMount := filepath.Join(fsys.Mountpoint(), "laptop")
	if err := copyOnto(laptop.Data, onMount); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Sync(); err != nil {
		t.Fatal(err)
	}
	laptop.Data = onMount
	// Cleanups run last first: kill the laptop before lazyfs unmounts.
	t.Cleanup(laptop.Kill)

	k := &powerCuts{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), fsys: fsys, laptop: laptop, peer: peer,
		disk: filepath.Join(fsys.Backing(), "laptop"), scratch: t.TempDir(),
		acked: map[string]string{}, peerAcked: map[string]string{}}
	began := time.Now()
	for i := range cuts {
		k.round(i)
	}
	// After the last cut: the store opens, holds everything, converges.
	if err := k.startLaptop(); err != nil {
		t.Fatalf("after the last cut: %v", err)
	}
	k.verify(cuts)
	st := fsys.Stats()
	elapsed := time.Since(began)
	t.Logf("power cuts: %d cuts (%d during the agent's start, %d at an operation count and %d at a moment during capture and sync) in %s, %.1f s a cut; seed %d, model %s",
		cuts, k.duringStart, k.byOps, k.byTime, elapsed.Round(time.Second), elapsed.Seconds()/float64(max(cuts, 1)), seed, model)
	t.Logf("power cuts: %d dossiers acknowledged by the laptop, %d by the peer; %d acknowledged dossiers checked on the disk after the %d cuts (before the laptop met its peer again), every one also listed by the laptop after each start; lost 0; stores that did not open 0",
		len(k.acked), len(k.peerAcked), k.checked, cuts)
	t.Logf("power cuts: pending at the cuts: data operations lost %d, kept %d, torn %d; namespace changes lost %d, kept %d; %d fsyncs served",
		st.DataLost, st.DataKept, st.DataTorn, st.NamespaceLost, st.NamespaceKept, st.Fsyncs)
}

// round runs the laptop until one power cut, then restarts the file
// system. The checks of what the cut kept run at the start of the next
// round (and after the last), with the power on.
func (k *powerCuts) round(i int) {
	t := k.t
	// Every draw of the round comes first, so the generator's stream does
	// not depend on timing: a seed always gives the same schedule.
	peerBatch := k.rng.IntN(20)
	// One cut in four is armed at the start: the n-th mutating file
	// operation from the agent's launch fails and cuts the power. A start
	// makes 30-40 of them (badger's recovery, a new memtable and value
	// log, the first writes of the sync the peer sends at once).
	atStart := k.rng.IntN(4) == 0
	startOps := 1 + k.rng.Int64N(60)
	// The others come during capture and sync: at the n-th mutating
	// operation (a round makes 50-2,000) or after a delay.
	byOps := k.rng.IntN(2) == 0
	ops := 1 + k.rng.Int64N(2000)
	delay := time.Duration(k.rng.IntN(1000)) * time.Millisecond

	// While the laptop is down the peer captures: the laptop receives
	// these at its start.
	k.capture(k.peer, k.peerAcked, peerBatch)

	if atStart {
		k.fsys.PowerOffAfter(startOps)
	}
	m0, t0 := k.fsys.Stats().Mutations, time.Now()
	startErr := k.startLaptop()
	k.fsys.PowerOffAfter(0)
	off := k.fsys.Off()
	select {
	case <-off:
		// The cut came while the agent started (or just after, before
		// the disarm): kill it as any other.
		k.duringStart++
		k.laptop.Kill()
		t.Logf("cut %d: during the start, at mutating operation %d (drawn %d), after %s", i,
			k.fsys.Stats().Mutations-m0, startOps, time.Since(t0).Round(time.Millisecond))
		k.reboot(i)
		return
	default:
	}
	if startErr != nil {
		t.Fatalf("cut %d: the laptop did not start: %v", i, startErr)
	}
	started := time.Since(t0)
	k.verify(i)

	if byOps {
		k.fsys.PowerOffAfter(ops)
		k.byOps++
	} else {
		k.byTime++
	}
	// Capture on the laptop (three officers) and on the peer (one, which
	// the laptop receives at once) until the power goes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, acked := k.laptop, k.acked
			if w == 3 {
				a, acked = k.peer, k.peerAcked
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !k.captureOne(a, acked) && w != 3 {
					return // the laptop is gone: unacknowledged
				}
				if w == 3 {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wait := delay
	if byOps {
		wait = 5 * time.Second // in case the count is not reached
	}
	k.mu.Lock()
	acked0 := len(k.acked)
	k.mu.Unlock()
	m1, t1 := k.fsys.Stats().Mutations, time.Now()
	select {
	case <-off:
	case <-time.After(wait):
		k.fsys.PowerOff()
	}
	how := fmt.Sprintf("at mutating operation %d", k.fsys.Stats().Mutations-m1)
	if !byOps {
		how = fmt.Sprintf("after %s (%d mutating operations)", time.Since(t1).Round(time.Millisecond), k.fsys.Stats().Mutations-m1)
	}
	// The power is off: the process dies with it.
	k.laptop.Kill()
	close(stop)
	wg.Wait()
	k.mu.Lock()
	ackedNow := len(k.acked) - acked0
	k.mu.Unlock()
	t.Logf("cut %d: during capture and sync, %s, %d dossiers acknowledged; the start before took %s, the checks %s", i, how,
		ackedNow, started.Round(time.Millisecond), t1.Sub(t0.Add(started)).Round(time.Millisecond))
	k.reboot(i)
}

// reboot completes the cut: the file system keeps what survives and
// mounts again.
func (k *powerCuts) reboot(i int) {
	if err := k.fsys.Restart(); err != nil {
		k.t.Fatalf("cut %d: restart the file system: %v", i, err)
	}
	k.checkDisk(i)
}

// checkDisk opens a copy of the store exactly as the cut left it on the
// disk, before the laptop meets its peer again (whose sync would hand back
// anything lost), and checks it holds every dossier the laptop
// acknowledged, with the fields it was sent with. The agent then recovers
// the disk itself.
func (k *powerCuts) checkDisk(i int) {
	t := k.t
	cp := filepath.Join(k.scratch, "disk")
	defer os.RemoveAll(cp)
	if out, err := exec.Command("cp", "-a", "--sparse=always", k.disk, cp).CombinedOutput(); err != nil {
		t.Fatalf("cut %d: copy the disk: %v\n%s", i, err, out)
	}
	key, err := harness.Unlock(cp)
	if err != nil {
		t.Fatalf("cut %d: unlock the laptop's data directory: %v", i, err)
	}
	opts := store.DefaultOptions(filepath.Join(cp, "store"))
	opts.EncryptionKey = key.StoreKey()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(opts)
	if err != nil {
		t.Fatalf("cut %d: the laptop's store does not open after the cut: %v", i, err)
	}
	defer st.Close()
	have := map[string]string{}
	if err := st.Records("", func(r *crdt.Record) bool {
		have[r.ID] = r.Values()["personal_id"]
		return true
	}); err != nil {
		t.Fatalf("cut %d: read the store after the cut: %v", i, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var lost []string
	for id, pid := range k.acked {
		got, ok := have[id]
		switch {
		case !ok:
			lost = append(lost, id)
		case got != pid:
			t.Fatalf("cut %d: on the disk, dossier %s has personal_id %q, acknowledged with %q", i, id, got, pid)
		}
	}
	k.checked += len(k.acked)
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("cut %d: %d of %d acknowledged dossiers lost on the disk, first %s", i, len(lost), len(k.acked), lost[0])
	}
}

// startLaptop starts the laptop agent, joined to the peer. A start that
// fails because the power was cut during it is not an error: it returns
// nil and the caller sees the file system off.
func (k *powerCuts) startLaptop() error {
	err := k.laptop.StartUntil(k.fsys.Off(), "--join", k.peer.Listen)
	if err != nil {
		select {
		case <-k.fsys.Off():
			return nil
		default:
		}
		return err
	}
	return nil
}

// verify checks the running laptop holds every dossier it acknowledged,
// with the fields sent, then that it converges with the peer.
func (k *powerCuts) verify(i int) {
	t := k.t
	defer k.checkPowerOn(i)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := k.laptop.Client.ListAll(ctx)
	if err != nil {
		t.Fatalf("after cut %d: list: %v\n%s", i, err, k.laptop.Log())
	}
	have := make(map[string]string, len(recs))
	for _, r := range recs {
		have[r.ID] = r.Fields["personal_id"]
	}
	k.mu.Lock()
	acked := make(map[string]string, len(k.acked))
	for id, pid := range k.acked {
		acked[id] = pid
	}
	k.mu.Unlock()
	var lost []string
	for id, pid := range acked {
		got, ok := have[id]
		switch {
		case !ok:
			lost = append(lost, id)
		case got != pid:
			t.Fatalf("after cut %d: dossier %s has personal_id %q, acknowledged with %q", i, id, got, pid)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("after cut %d: the laptop does not list %d of %d acknowledged dossiers, first %s\n%s", i, len(lost), len(acked), lost[0], k.laptop.Log())
	}
	// Convergence: both hold the same dossiers, which include everything
	// either acknowledged.
	err = harness.WaitFor(30*time.Second, func() (bool, error) {
		a, err := k.laptop.Client.ListAll(ctx)
		if err != nil {
			return false, err
		}
		b, err := k.peer.Client.ListAll(ctx)
		if err != nil {
			return false, err
		}
		if len(a) != len(b) {
			return false, fmt.Errorf("laptop %d dossiers, peer %d", len(a), len(b))
		}
		for j := range a {
			if a[j].ID != b[j].ID {
				return false, fmt.Errorf("laptop holds %s, peer %s", a[j].ID, b[j].ID)
			}
		}
		ids := make(map[string]bool, len(a))
		for _, r := range a {
			ids[r.ID] = true
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		for id := range k.peerAcked {
			if !ids[id] {
				return false, fmt.Errorf("peer's dossier %s missing", id)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("after cut %d: laptop and peer do not converge: %v\nlaptop:\n%s", i, err, k.laptop.Log())
	}
	for _, a := range []*harness.Agent{k.laptop, k.peer} {
		st, err := a.Client.Status(ctx)
		if err != nil {
			t.Fatalf("after cut %d: status of %s: %v", i, a.Name, err)
		}
		if len(st.Alerts) > 0 {
			t.Fatalf("after cut %d: %s raises alerts %+v", i, a.Name, st.Alerts)
		}
	}
}

// checkPowerOn fails the test if the file system went off during a check:
// the checks must see what the last cut kept, not a new cut.
func (k *powerCuts) checkPowerOn(i int) {
	select {
	case <-k.fsys.Off():
		k.t.Fatalf("after cut %d: the power went off during the checks (a bug of the campaign)", i)
	default:
	}
}

// capture creates n dossiers on a, one at a time.
func (k *powerCuts) capture(a *harness.Agent, acked map[string]string, n int) {
	for range n {
		if !k.captureOne(a, acked) {
			k.t.Fatalf("capture on %s failed", a.Name)
		}
	}
}

// captureOne creates one dossier on a and records it if acknowledged.
func (k *powerCuts) captureOne(a *harness.Agent, acked map[string]string) bool {
	k.mu.Lock()
	k.n++
	n := k.n
	k.mu.Unlock()
	fields := dossier(n, "Pả Vi")
	fields["personal_id"] = fmt.Sprintf("0010%08d", n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := a.Client.Create(ctx, fields)
	if err != nil {
		return false
	}
	k.mu.Lock()
	acked[rec.ID] = fields["personal_id"]
	k.mu.Unlock()
	return true
}

// copyOnto copies a directory tree (regular files and directories).
func copyOnto(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, info.Mode().Perm())
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, info.Mode().Perm())
		}
		return errors.New("copy " + path + ": not a regular file")
	})
}
