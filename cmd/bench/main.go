// Command bench measures fieldsync with real agent processes on loopback and
// prints each figure beside the limit it is measured against on this machine
// in the same run, plus one `BENCH <name> <value> <unit>` line per figure for
// scripts. `make bench` runs it.
//
// Figures:
//   - sync_dossiers_per_s: dossiers per second to sync N (~1 KB each) from one
//     agent to an empty other, durable and verified on arrival;
//   - wire_ratio: raw TCP bytes on the wire (Noise and yamux included, both
//     directions) divided by the bytes of the signed ops sent;
//   - reconcile_bytes, reconcile_round_trips: what two agents that already
//     agree spend on a new sync session;
//   - agent_rss_mb: peak resident memory of the receiving agent process;
//   - hub_dossiers_per_s: dossiers per second delivered from a field agent
//     to a hub exporting into PostgreSQL, until the field agent holds the
//     hub's receipt for all N (signed only after the PostgreSQL commit);
//     skipped, with a SKIP line, where no PostgreSQL server is installed;
//   - resent_bytes_after_cut: bytes the link to a hub carried beyond a clean
//     upload when it is cut at half way, both measured through a proxy in
//     the same run, against one window of unacknowledged batches;
//   - attachment_*: 500 MB of photos and fingerprints moved between laptops
//     and to a hub, against a raw libp2p stream, the store and the disk
//     (attach.go).
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
	"github.com/fieldsync/fieldsync/crdt"
)

type options struct {
	bin  string
	n    int
	keep bool
	// profile, when set, is a directory for CPU profiles of the sender and
	// the receiver taken during the sync (go tool pprof FILE).
	profile string
	noHub   bool
	// attachMB is the size of the attachment figures' data set;
	// noAttach skips them, attachOnly runs only them.
	attachMB   int
	noAttach   bool
	attachOnly bool
	logs       bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/fieldsync", "the fieldsync binary to measure")
	flag.IntVar(&o.n, "n", 100_000, "dossiers to sync")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.BoolVar(&o.noHub, "no-hub", false, "skip the hub figures (PostgreSQL, receipts, the cut link)")
	flag.IntVar(&o.attachMB, "attach-mb", 500, "MB of attachments (photos and fingerprints) to move for the attachment figures")
	flag.BoolVar(&o.noAttach, "no-attach", false, "skip the attachment figures")
	flag.BoolVar(&o.logs, "logs", false, "print the agents' logs")
	flag.BoolVar(&o.attachOnly, "attach-only", false, "measure only the attachment figures")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles of the sending and receiving agents during the sync into this directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type figure struct {
	name, unit string
	value      float64
	limit      string
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "fieldsync-bench")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	c, err := harness.NewCluster(bin, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	if o.logs {
		c.LogTo = os.Stderr
	}
	go func() { <-ctx.Done(); c.Close() }()

	fmt.Printf("fieldsync bench: %d dossiers, %d CPUs, %s\n\n", o.n, runtime.NumCPU(), runtime.Version())
	if o.attachOnly {
		figs, err := attachmentFigures(ctx, c, o.attachMB, o.profile)
		if err != nil {
			return err
		}
		report(figs, nil)
		return nil
	}
	sender, err := c.Provision("sender", "field")
	if err != nil {
		return err
	}
	receiver, err := c.Provision("receiver", "field")
	if err != nil {
		return err
	}
	dev, err := harness.LoadDevice(sender.Data)
	if err != nil {
		return err
	}

	fmt.Printf("generating %d signed dossier ops (~1 KB each)...\n", o.n)
	ops, opBytes, err := harness.SignedDossiers(dev, o.n, 6)
	if err != nil {
		return err
	}

	// Limit 1: signature verification, one core.
	verifyPerS := verifyRate(dev, ops)
	// Limit 2: the store's own durable, verified, batched ingest, in process
	// (no network): the sender's store is loaded this way.
	// The same ingest into a store in clear, the limit encryption at rest
	// is measured against (the agents themselves always run encrypted).
	fmt.Printf("ingesting into a store in clear, in process...\n")
	plainPerS, err := plainIngestRate(filepath.Join(dir, "plain-store"), dev, ops)
	if err != nil {
		return err
	}
	fmt.Printf("loading the sender's (encrypted) store in process...\n")
	ingestPerS, err := harness.Preload(sender, ops)
	if err != nil {
		return err
	}

	ic, err := buildInClear(c, dir, o.n)
	if err != nil {
		return err
	}
	ic.profile = o.profile
	// Rounds in the order clear, encrypted, encrypted, clear: a drift of the
	// machine's speed over the run weighs on both alike.
	clear1, err := ic.round(ctx)
	if err != nil {
		return err
	}

	senderArgs, receiverArgs, profiles, err := profileArgs(o.profile)
	if err != nil {
		return err
	}
	if err := sender.Start(senderArgs...); err != nil {
		return err
	}
	fmt.Printf("syncing %d dossiers from sender to an empty receiver...\n", o.n)
	profiled := profiles(ctx, 8*time.Second)
	peakSender := 0.0
	syncPerS, elapsed, err := syncRound(ctx, sender, receiver, dev.ID(), o.n, func() {
		peakSender = max(peakSender, rssMB(sender.Pid(), "VmRSS"))
	}, receiverArgs...)
	if err != nil {
		return err
	}
	if err := profiled(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	rst, err := receiver.Client.Status(ctx)
	if err != nil {
		return err
	}
	if rst.Records != o.n {
		return fmt.Errorf("receiver holds %d records, want %d", rst.Records, o.n)
	}
	wire := float64(rst.WireBytesIn + rst.WireBytesOut)
	ratio := wire / float64(opBytes)
	rss := rssMB(receiver.Pid(), "VmHWM")
	rssNow := fmt.Sprintf("now %.0f MB: %.0f MB heap and other anonymous, %.0f MB mapped files",
		rssMB(receiver.Pid(), "VmRSS"), rssMB(receiver.Pid(), "RssAnon"), rssMB(receiver.Pid(), "RssFile"))
	peakSender = max(peakSender, rssMB(sender.Pid(), "VmHWM"))
	senderNow := fmt.Sprintf("now %.0f MB: %.0f MB heap and other anonymous, %.0f MB mapped files",
		rssMB(sender.Pid(), "VmRSS"), rssMB(sender.Pid(), "RssAnon"), rssMB(sender.Pid(), "RssFile"))

	// An idle pair of agents (connected, in agreement) should cost almost
	// nothing: CPU time of the receiver over 10 s of idleness.
	idleCPU, err := idleCPUPercent(receiver.Pid(), 10*time.Second)
	if err != nil {
		return fmt.Errorf("idle cpu: %w", err)
	}

	// The admin's queues at this size come from indexes, not a scan of the
	// records: time them on the receiver (best of 3 calls, warm).
	dupMS, dupGroups, err := timeCall(3, func() (int, error) {
		d, err := receiver.Client.Duplicates(ctx)
		return len(d), err
	})
	if err != nil {
		return fmt.Errorf("duplicates: %w", err)
	}
	listMS, _, err := timeCall(1, func() (int, error) {
		r, err := receiver.Client.ListAll(ctx)
		return len(r), err
	})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}

	// Reconcile two agents that agree: restart the receiver and read the
	// new session's counters once it is in sync.
	if err := receiver.Stop(); err != nil {
		return err
	}
	if err := receiver.Start("--join", sender.Listen); err != nil {
		return err
	}
	var sess *api.Session
	var reconnectWire uint64
	if err := harness.WaitFor(60*time.Second, func() (bool, error) {
		st, err := receiver.Client.Status(ctx)
		if err != nil {
			return false, err
		}
		for _, p := range st.Peers {
			if p.Name == "sender" && p.Session != nil && p.Session.InSync && p.Session.RoundTrips > 0 {
				sess = p.Session
				reconnectWire = st.WireBytesIn + st.WireBytesOut
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	reconcileBytes := sess.BytesIn + sess.BytesOut

	if err := receiver.Stop(); err != nil {
		return err
	}
	// The remaining rounds, in the order encrypted, clear, clear,
	// encrypted: with the first two, ABBAAB.
	encRound := func(i int) (float64, error) {
		r, err := c.Provision(fmt.Sprintf("receiver-%d", i), "field")
		if err != nil {
			return 0, err
		}
		fmt.Printf("syncing %d dossiers from sender to an empty receiver (round %d)...\n", o.n, i)
		rate, _, err := syncRound(ctx, sender, r, dev.ID(), o.n, nil)
		if err != nil {
			return 0, err
		}
		return rate, r.Stop()
	}
	encRates, clearRates := []float64{syncPerS}, []float64{clear1}
	enc, err := encRound(2)
	if err != nil {
		return err
	}
	encRates = append(encRates, enc)
	if err := sender.Stop(); err != nil {
		return err
	}
	for range 2 {
		rate, err := ic.round(ctx)
		if err != nil {
			return err
		}
		clearRates = append(clearRates, rate)
	}
	if err := sender.Start(); err != nil {
		return err
	}
	if enc, err = encRound(3); err != nil {
		return err
	}
	encRates = append(encRates, enc)
	encMean, clearMean := mean(encRates), mean(clearRates)
	syncCost := 100 * (1 - encMean/clearMean)

	// The hub: the sender uploads its dossiers upstream; it stops so that it
	// can start again with --hub.
	if err := sender.Stop(); err != nil {
		return err
	}
	var hubFigs []figure
	skips := []string{"SKIP hub figures (--no-hub)"}
	if !o.noHub {
		hubFigs, skips, err = hubFigures(ctx, hubRun{c: c, sender: sender, origin: dev.ID(), n: o.n, opBytes: opBytes, syncPerS: syncPerS, verifyPerS: verifyPerS})
		if err != nil {
			return err
		}
	}

	figs := []figure{
		{"sync_dossiers_per_s", "dossiers/s", syncPerS,
			fmt.Sprintf("%.0f%% of in-process verified durable ingest (%.0f/s); one core verifies %.0f signatures/s (bar: 10000/s)",
				100*syncPerS/ingestPerS, ingestPerS, verifyPerS)},
		{"store_ingest_per_s", "dossiers/s", ingestPerS, "the store's own batched ingest, durable and verified, encrypted at rest, no network"},
		{"store_ingest_plain_per_s", "dossiers/s", plainPerS, "the same ingest into a store in clear (the unencrypted limit)"},
		{"encryption_cost_percent", "%", syncCost, fmt.Sprintf("sync rate lost to encryption at rest, mean against mean (bar: 15%%): encrypted rounds %s, in clear (the measuring build) %s, run in the order clear, encrypted, encrypted, clear, clear, encrypted", rates(encRates), rates(clearRates))},
		{"sync_in_clear_per_s", "dossiers/s", clearMean, fmt.Sprintf("the same sync with both stores in clear (mean of 3 rounds; the measuring build, go build -tags fieldsync_storeinclear); encrypted sync is %.0f%% of it", 100*encMean/clearMean)},
		{"store_encryption_cost_percent", "%", 100 * (1 - ingestPerS/plainPerS), fmt.Sprintf("the store's in-process ingest lost to encryption at rest (one round each; the disk's noise is of this order); sync runs encrypted at %.0f/s, %.0f%% of the unencrypted ingest limit", syncPerS, 100*syncPerS/plainPerS)},
		{"verify_per_s", "signatures/s", verifyPerS, "ed25519 verification on one core: what verifying every op would cap"},
		{"sync_seconds", "s", elapsed.Seconds(), "wall time from starting the receiver to holding every dossier"},
		{"wire_ratio", "x", ratio, fmt.Sprintf("%d wire bytes / %d bytes of signed ops (1.0 = no overhead; bar: 1.3)", int64(wire), opBytes)},
		{"reconcile_bytes", "bytes", float64(reconcileBytes), fmt.Sprintf("sync-protocol bytes both ways for %d dossiers in agreement (%d origin(s); bar: 4 KB); the whole reconnection incl. Noise and libp2p setup: %d bytes", o.n, len(rst.VersionVector), reconnectWire)},
		{"reconcile_round_trips", "round_trips", float64(sess.RoundTrips), fmt.Sprintf("%d frames in all (bar: 1)", sess.Messages)},
		{"idle_cpu_percent", "%", idleCPU, "CPU of one core used by the receiving agent over 10 s while connected and in agreement (gossip, probes, the safety pass)"},
		{"duplicates_list_ms", "ms", dupMS, fmt.Sprintf("GET /v1/duplicates over %d dossiers (%d groups found), from the indexes; listing every dossier through the API takes %.0f ms", o.n, dupGroups, listMS)},
		{"agent_rss_mb", "MB", rss, fmt.Sprintf("peak resident memory of the receiving agent holding %d dossiers (bar: 200 MB); %s", o.n, rssNow)},
		{"sender_rss_mb", "MB", peakSender, "peak resident memory of the sending agent; " + senderNow},
	}
	figs = append(figs, hubFigs...)
	if o.noAttach {
		skips = append(skips, "SKIP attachment figures (--no-attach)")
	} else {
		attFigs, err := attachmentFigures(ctx, c, o.attachMB, o.profile)
		if err != nil {
			return fmt.Errorf("attachments: %w", err)
		}
		figs = append(figs, attFigs...)
	}
	report(figs, skips)
	return nil
}

// report prints each figure beside its limit, then the BENCH lines.
func report(figs []figure, skips []string) {
	fmt.Println()
	for _, f := range figs {
		fmt.Printf("%-26s %14s %-12s %s\n", f.name, format(f.value), f.unit, f.limit)
	}
	for _, s := range skips {
		fmt.Println(s)
	}
	fmt.Println()
	for _, f := range figs {
		fmt.Printf("BENCH %s %s %s\n", f.name, format(f.value), strings.ReplaceAll(f.unit, " ", "_"))
	}
}

func format(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func verifyRate(dev *identity.Device, ops []crdt.Signed) float64 {
	pub := dev.Public()
	k := min(len(ops), 20_000)
	t := time.Now()
	for _, s := range ops[:k] {
		if !ed25519.Verify(pub, s.Body, s.Sig) {
			panic("generated op does not verify")
		}
	}
	return float64(k) / time.Since(t).Seconds()
}

// plainIngestRate ingests ops into a new store in clear at dir, as
// harness.Preload does into an agent's encrypted one, and returns ops/s.
func plainIngestRate(dir string, dev *identity.Device, ops []crdt.Signed) (float64, error) {
	rate, err := harness.Ingest(store.DefaultOptions(dir), dev, ops)
	if err != nil {
		return 0, err
	}
	return rate, os.RemoveAll(dir)
}

// rssMB reads a memory line (VmRSS, VmHWM) of a process, in MB.
func rssMB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// timeCall runs fn n times and returns the fastest run in milliseconds and
// fn's last count.
func timeCall(n int, fn func() (int, error)) (float64, int, error) {
	best := time.Duration(1 << 62)
	count := 0
	for i := 0; i < n; i++ {
		t := time.Now()
		c, err := fn()
		if err != nil {
			return 0, 0, err
		}
		best = min(best, time.Since(t))
		count = c
	}
	return float64(best.Microseconds()) / 1000, count, nil
}

// idleCPUPercent measures a process's CPU time (user + system) over d, as a
// percentage of one core.
func idleCPUPercent(pid int, d time.Duration) (float64, error) {
	ticks := func() (float64, error) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		// Fields after the command name (which may hold spaces): utime and
		// stime are the 12th and 13th of them.
		rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			return 0, fmt.Errorf("short /proc/%d/stat", pid)
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return u + s, nil
	}
	before, err := ticks()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	after, err := ticks()
	if err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ on Linux
	return 100 * (after - before) / clockTicks / d.Seconds(), nil
}

func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// rates formats sync rates as "8905/s, 10036/s".
func rates(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.0f/s", x)
	}
	return strings.Join(out, ", ")
}
