// Command demo plays a field trip of fieldsync on this machine, narrated in
// Vietnamese with English beside it, for `make demo`: an IT officer
// provisions laptops, real agent processes start on 127.0.0.1 (mDNS off),
// officers capture synthetic dossiers, the laptops converge, one goes away
// and catches up, a new laptop gets dossiers relayed from one it never met,
// and two corrections of the same field become a visible conflict, which the
// district admin's laptop settles (a field laptop is refused) before it
// merges one pair of duplicate dossiers and keeps another apart; a laptop is
// lost, the admin revokes it and the rest of the team refuses it; then, on
// Vạn Thạnh's islands, two laptops merge, one of them with a fisherman's
// photo and ten fingerprints, one reaches the province's hub (exporting
// into a throwaway PostgreSQL where this machine has one, fingerprints
// before the photo, after the dossiers), and the hub's receipts come back
// to the other, which sees the files delivered. It owns
// nothing the product uses: it drives the real binary through
// cmd/internal/harness and the agents' HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// options configure one run of the demo.
type options struct {
	// Bin is the fieldsync binary to run (built by `make build`).
	Bin string
	// Keep leaves the temporary directory (keys, stores) in place.
	Keep bool
	// Logs shows every agent's log lines, prefixed with its name.
	Logs bool
	// Out receives the narration.
	Out io.Writer
	// TempRoot is where the demo's temporary directory is made; "" means
	// the system's temporary directory.
	TempRoot string
	// Seed drives the synthetic dossiers: the same seed, the same people.
	Seed uint64
	// PerLaptop is how many dossiers each of the first three laptops
	// captures in step 3.
	PerLaptop int
	// WaitLimit bounds every wait for the laptops to converge.
	WaitLimit time.Duration

	// onCluster, if set, is called with the cluster once it exists, so a
	// test can check that every process is gone afterwards.
	onCluster func(*harness.Cluster)
}

// defaultOptions: about 20 dossiers per laptop keeps the demo readable and
// well under a minute; 30 s per wait is far above the sub-second
// convergence on loopback, yet fails clearly when something is wrong.
func defaultOptions() options {
	return options{
		Bin:       "bin/fieldsync",
		Out:       os.Stdout,
		Seed:      20220106, // Project 06 started in January 2022
		PerLaptop: 20,
		WaitLimit: 30 * time.Second,
	}
}

// errOptions: the options cannot run a demo.
var errOptions = errors.New("bad options")

func (o options) validate() error {
	switch {
	case o.Bin == "":
		return fmt.Errorf("%w: --bin is required", errOptions)
	case o.Out == nil:
		return fmt.Errorf("%w: no output", errOptions)
	case o.PerLaptop < 5:
		// Step 7 corrects a dossier of laptop-a and the tables sample
		// three per laptop.
		return fmt.Errorf("%w: at least 5 dossiers per laptop, got %d", errOptions, o.PerLaptop)
	case o.WaitLimit <= 0:
		return fmt.Errorf("%w: wait limit must be positive", errOptions)
	}
	st, err := os.Stat(o.Bin)
	if err != nil {
		return fmt.Errorf("%w: fieldsync binary %s: %w (build it first: make build)", errOptions, o.Bin, err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not an executable file (build it first: make build)", errOptions, o.Bin)
	}
	return nil
}

const usage = `demo --bin PATH [--keep] [--logs]

Một chuyến công tác của fieldsync, chạy thật trên máy này / A field trip of
fieldsync played out on this machine with real agent processes, narrated.
Run it with: make demo

Tùy chọn / Flags:
`

func main() {
	o := defaultOptions()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Bin, "bin", o.Bin, "path of the fieldsync binary (make build puts it in bin/fieldsync)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory with the keys and stores (giữ lại thư mục tạm)")
	fs.BoolVar(&o.Logs, "logs", false, "show the agents' logs, prefixed with the laptop's name (hiện nhật ký tác tử)")
	quiet := fs.Bool("quiet-logs", true, "hide the agents' logs (the default; --quiet-logs=false is --logs)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	if !*quiet {
		o.Logs = true
	}

	// Ctrl-C or a SIGTERM cancels the run; run's deferred cleanup then
	// stops every agent and removes the temporary directory. A second
	// Ctrl-C ends the demo at once (the agents die with it: they are
	// started with a parent-death signal).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, o)
	stop()
	switch {
	case err == nil:
		return
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "\ndemo: dừng theo yêu cầu; mọi tác tử đã dừng / interrupted; every agent stopped")
		os.Exit(130)
	case errors.Is(err, errOptions):
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "\n✗ demo thất bại / demo failed: %v\n", err)
	os.Exit(1)
}
