package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fieldsync/fieldsync/agent/export"
	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/fieldsync/fieldsync/agent/syncer"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// hubRun is what the hub figures need from the sync figures: the cluster,
// the sender (stopped, its store holding n of its own dossiers), and the
// agent-to-agent rate to compare against.
type hubRun struct {
	c        *harness.Cluster
	sender   *harness.Agent
	origin   string // the sender's device id
	n        int
	opBytes  int64
	syncPerS float64
	// verifyPerS is one core's signature checks per second: a hub checks
	// every op's signature, where a field agent checks fewer.
	verifyPerS float64
}

// hubFigures measures the upload to a hub: with PostgreSQL export on (when
// the server binaries exist), then the same upload through a proxy, clean
// and cut at half way, without PostgreSQL so the figure is about the link.
// It returns the figures and, when a figure could not be measured here, a
// line saying why.
func hubFigures(ctx context.Context, r hubRun) ([]figure, []string, error) {
	var figs []figure
	var skips []string
	pg, err := hubWithPostgres(ctx, r)
	switch {
	case errors.Is(err, pgtest.ErrNoPostgres):
		skips = append(skips, fmt.Sprintf("SKIP hub_dossiers_per_s: %v (install the postgresql package: make deps)", err))
	case err != nil:
		return nil, nil, fmt.Errorf("hub with PostgreSQL: %w", err)
	default:
		figs = append(figs, pg...)
	}
	cut, clean, err := hubCut(ctx, r)
	if err != nil {
		return nil, nil, fmt.Errorf("hub uplink cut: %w", err)
	}
	// What PostgreSQL costs: the same upload to a hub without it.
	for i := range figs {
		if figs[i].name == "hub_dossiers_per_s" {
			figs[i].limit += fmt.Sprintf("; without PostgreSQL (the clean proxied upload below, until the hub held all): %.0f/s",
				float64(r.n)/clean.took.Seconds())
		}
	}
	return append(figs, cut...), skips, nil
}

// hubWithPostgres uploads the sender's n dossiers to a fresh hub exporting
// into a throwaway PostgreSQL, and times it until the sender holds the
// hub's receipt for all of them: a hub signs a receipt only after the
// PostgreSQL commit, so that is delivery as the issue defines it.
func hubWithPostgres(ctx context.Context, r hubRun) ([]figure, error) {
	fmt.Printf("starting a throwaway PostgreSQL...\n")
	pgURL, stopPG, err := pgtest.Start()
	if err != nil {
		return nil, err
	}
	defer stopPG()
	hub, err := r.c.Provision("hub-pg", "hub")
	if err != nil {
		return nil, err
	}
	if err := hub.Start("--postgres", pgURL); err != nil {
		return nil, err
	}
	defer hub.Stop()

	fmt.Printf("uploading %d dossiers from a field agent to the hub, exporting to PostgreSQL...\n", r.n)
	t0 := time.Now()
	if err := r.sender.Start("--hub", hub.Listen); err != nil {
		return nil, err
	}
	defer r.sender.Stop()
	started := time.Since(t0)
	var stored, delivered time.Duration
	peakHub := 0.0
	if err := harness.WaitFor(10*time.Minute, func() (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		peakHub = max(peakHub, rssMB(hub.Pid(), "VmRSS"))
		if stored == 0 {
			hst, err := hub.Client.Status(ctx)
			if err != nil {
				return false, err
			}
			if hst.VersionVector[r.origin] == uint64(r.n) {
				stored = time.Since(t0)
			}
		}
		st, err := r.sender.Client.Status(ctx)
		if err != nil {
			return false, err
		}
		if st.Upstream.Delivered == r.n && stored != 0 {
			delivered = time.Since(t0)
			return true, nil
		}
		return false, nil
	}); err != nil {
		return nil, fmt.Errorf("the hub's receipt never covered the %d dossiers: %w", r.n, err)
	}
	peakHub = max(peakHub, rssMB(hub.Pid(), "VmHWM"))
	// The receipt says the rows are committed: check that they are.
	ops, records, err := pgCounts(ctx, pgURL)
	if err != nil {
		return nil, err
	}
	if ops != int64(r.n) || records != int64(r.n) {
		return nil, fmt.Errorf("PostgreSQL holds %d ops and %d records after the receipt, want %d each", ops, records, r.n)
	}
	hst, err := hub.Client.Status(ctx)
	if err != nil {
		return nil, err
	}
	if hst.RefusedOps != 0 {
		return nil, fmt.Errorf("the hub refused %d ops", hst.RefusedOps)
	}
	perS := float64(r.n) / delivered.Seconds()
	return []figure{
		{"hub_dossiers_per_s", "dossiers/s", perS,
			fmt.Sprintf("%.0f%% of the agent-to-agent sync rate above (%.0f/s); field agent to hub, stored, every signature checked (one core: %.0f/s), exported to PostgreSQL and receipted (bar: 5000/s)",
				100*perS/r.syncPerS, r.syncPerS, r.verifyPerS)},
		{"hub_seconds", "s", delivered.Seconds(),
			fmt.Sprintf("wall time from starting the field agent (its API answered after %.2f s) to holding the hub's receipt for all %d dossiers; the hub's store held them all after %.2f s; PostgreSQL holds %d op rows and %d record rows",
				started.Seconds(), r.n, stored.Seconds(), ops, records)},
		{"hub_rss_mb", "MB", peakHub, "peak resident memory of the hub process"},
	}, nil
}

func pgCounts(ctx context.Context, url string) (ops, records int64, err error) {
	e, err := export.Open(ctx, export.Config{URL: url})
	if err != nil {
		return 0, 0, err
	}
	defer e.Close()
	return e.Counts(ctx)
}

// linkUpload is one upload of the sender's dossiers to a fresh hub (no
// PostgreSQL) through a counting proxy.
type linkUpload struct {
	proxyBytes int64 // both directions, through the proxy
	hubWire    int64 // the hub's own count of data bytes, both directions, every connection
	cuts       int64
	duplicates uint64 // ops the hub received twice
	took       time.Duration
}

// hubCut measures what a cut at half way costs: the same upload through a
// proxy twice, once clean and once cut after half the ops' bytes, each to a
// fresh hub. It returns the figures and the clean upload.
func hubCut(ctx context.Context, r hubRun) ([]figure, linkUpload, error) {
	fmt.Printf("uploading %d dossiers to a hub through a proxy, clean...\n", r.n)
	clean, err := uploadThroughProxy(ctx, r, "hub-clean", 0)
	if err != nil {
		return nil, clean, err
	}
	if clean.cuts != 0 {
		return nil, clean, fmt.Errorf("the clean link was cut %d times", clean.cuts)
	}
	fmt.Printf("uploading %d dossiers to a hub through a proxy cut after %d bytes...\n", r.n, r.opBytes/2)
	cut, err := uploadThroughProxy(ctx, r, "hub-cut", r.opBytes/2)
	if err != nil {
		return nil, clean, err
	}
	if cut.cuts != 1 {
		return nil, clean, fmt.Errorf("the link was cut %d times, want once", cut.cuts)
	}
	sc := syncer.DefaultConfig()
	window := int64(sc.Window * sc.MaxBytes)
	resent := cut.proxyBytes - clean.proxyBytes
	return []figure{
		{"resent_bytes_after_cut", "bytes", float64(resent),
			fmt.Sprintf("%.0f%% of one window of unacknowledged batches (%d × %d KB = %d bytes: the bar); the link carried %d bytes with the cut, %d without, for %d bytes of ops; by the hub's own wire counters %d bytes more",
				100*float64(resent)/float64(window), sc.Window, sc.MaxBytes>>10, window, cut.proxyBytes, clean.proxyBytes, r.opBytes, cut.hubWire-clean.hubWire)},
		{"duplicate_ops_after_cut", "ops", float64(cut.duplicates),
			fmt.Sprintf("ops the hub received twice after the cut (window: %d × %d ops); the clean upload: %d; upload took %.2f s with the cut, %.2f s without",
				sc.Window, sc.MaxOps, clean.duplicates, cut.took.Seconds(), clean.took.Seconds())},
	}, clean, nil
}

// uploadThroughProxy starts a fresh hub, a proxy in front of it cutting
// after cutAfter bytes (0: never), and the sender with --hub at the proxy;
// it waits until the hub holds every op and the link has gone quiet.
func uploadThroughProxy(ctx context.Context, r hubRun, name string, cutAfter int64) (linkUpload, error) {
	var u linkUpload
	hub, proxy, t0, stop, err := startUplink(r.c, r.sender, name, cutAfter)
	if err != nil {
		return u, err
	}
	defer stop()
	if err := harness.WaitFor(5*time.Minute, func() (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		st, err := hub.Client.Status(ctx)
		if err != nil {
			return false, err
		}
		return st.VersionVector[r.origin] == uint64(r.n), nil
	}); err != nil {
		return u, fmt.Errorf("%s never held the %d dossiers: %w", name, r.n, err)
	}
	u.took = time.Since(t0)
	// The last acknowledgements and the hub's receipt are still on their
	// way: count them too, the same in both runs.
	if err := quiet(ctx, proxy, time.Second, 15*time.Second); err != nil {
		return u, err
	}
	st, err := hub.Client.Status(ctx)
	if err != nil {
		return u, err
	}
	u.proxyBytes = proxy.Bytes()
	u.hubWire = int64(st.WireBytesIn + st.WireBytesOut)
	u.cuts = proxy.Cuts()
	u.duplicates = st.DuplicateOps
	return u, nil
}

// startUplink starts a fresh hub, a proxy in front of it cutting after
// cutAfter bytes (0: never), and sender with --hub at the proxy, and returns
// when the sender started; stop stops all three.
func startUplink(c *harness.Cluster, sender *harness.Agent, name string, cutAfter int64) (hub *harness.Agent, proxy *harness.Proxy, started time.Time, stop func(), err error) {
	hub, err = c.Provision(name, "hub")
	if err != nil {
		return nil, nil, started, nil, err
	}
	if err := hub.Start(); err != nil {
		return nil, nil, started, nil, err
	}
	proxy, err = harness.NewProxy(hub.Listen)
	if err != nil {
		hub.Stop()
		return nil, nil, started, nil, err
	}
	if cutAfter > 0 {
		proxy.CutAfter(cutAfter)
	}
	started = time.Now()
	if err := sender.Start("--hub", proxy.Addr); err != nil {
		proxy.Close()
		hub.Stop()
		return nil, nil, started, nil, err
	}
	return hub, proxy, started, func() { sender.Stop(); proxy.Close(); hub.Stop() }, nil
}

// quiet waits until the proxy has carried nothing for calm, at most limit.
func quiet(ctx context.Context, p *harness.Proxy, calm, limit time.Duration) error {
	last, since := p.Bytes(), time.Now()
	return harness.WaitFor(limit, func() (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if b := p.Bytes(); b != last {
			last, since = b, time.Now()
			return false, nil
		}
		return time.Since(since) >= calm, nil
	})
}
