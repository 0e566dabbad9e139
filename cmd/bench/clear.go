package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// inClear measures what encryption at rest costs the sync itself: the same
// sync between agents of the measuring build, whose stores are in clear
// (go build -tags fieldsync_storeinclear; agent/storeinclear.go), in rounds
// interleaved with the encrypted ones of the same run.
type inClear struct {
	c      *harness.Cluster
	bin    string
	sender *harness.Agent
	origin string
	n      int
	rounds int
	// profile, if set, is where the first round's receiver is profiled.
	profile string
}

// buildInClear builds the measuring binary and loads a sender of its own
// with n dossiers of its own signing.
func buildInClear(c *harness.Cluster, dir string, n int) (*inClear, error) {
	bin := filepath.Join(dir, "fieldsync-store-in-clear")
	fmt.Printf("building the measuring build (store in clear) to measure what encryption costs the sync...\n")
	if out, err := exec.Command("go", "build", "-tags", "fieldsync_storeinclear", "-o", bin, "./cmd/fieldsync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", bin, err, out)
	}
	sender, err := c.Provision("sender-in-clear", "field")
	if err != nil {
		return nil, err
	}
	sender.Bin = bin
	dev, err := harness.LoadDevice(sender.Data)
	if err != nil {
		return nil, err
	}
	ops, _, err := harness.SignedDossiers(dev, n, 6)
	if err != nil {
		return nil, err
	}
	if _, err := harness.PreloadInClear(sender, ops); err != nil {
		return nil, err
	}
	return &inClear{c: c, bin: bin, sender: sender, origin: dev.ID(), n: n}, nil
}

// round syncs the clear sender's n dossiers to a new, empty receiver of the
// measuring build and returns the rate.
func (ic *inClear) round(ctx context.Context) (float64, error) {
	ic.rounds++
	if err := ic.sender.Start(); err != nil {
		return 0, err
	}
	defer ic.sender.Stop()
	receiver, err := ic.c.Provision(fmt.Sprintf("receiver-in-clear-%d", ic.rounds), "field")
	if err != nil {
		return 0, err
	}
	receiver.Bin = ic.bin
	fmt.Printf("syncing %d dossiers between agents with their stores in clear (round %d)...\n", ic.n, ic.rounds)
	dir := ic.profile
	if ic.rounds > 1 {
		dir = ""
	}
	args, profile, err := profileOne(dir, "receiver-in-clear")
	if err != nil {
		return 0, err
	}
	wait := profile(ctx, 8*time.Second)
	rate, _, err := syncRound(ctx, ic.sender, receiver, ic.origin, ic.n, nil, args...)
	if err != nil {
		return 0, err
	}
	if err := wait(); err != nil {
		return 0, err
	}
	return rate, receiver.Stop()
}

// syncRound starts receiver (stopped, empty) joined to the running sender,
// waits until it holds origin's n ops and returns the rate and the time it
// took. sample, if not nil, is called on every poll (peak memory).
func syncRound(ctx context.Context, sender, receiver *harness.Agent, origin string, n int, sample func(), extra ...string) (float64, time.Duration, error) {
	t0 := time.Now()
	if err := receiver.Start(append([]string{"--join", sender.Listen}, extra...)...); err != nil {
		return 0, 0, err
	}
	if err := harness.WaitFor(10*time.Minute, func() (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if sample != nil {
			sample()
		}
		st, err := receiver.Client.Status(ctx)
		if err != nil {
			return false, err
		}
		return st.VersionVector[origin] == uint64(n), nil
	}); err != nil {
		return 0, 0, fmt.Errorf("%s did not catch up: %w", receiver.Name, err)
	}
	elapsed := time.Since(t0)
	return float64(n) / elapsed.Seconds(), elapsed, nil
}
