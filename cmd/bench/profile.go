package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// profileArgs returns the extra agent flags that turn on the profiler of the
// sender and the receiver, and a function that starts CPU profiles of both
// for d (and takes their heap profiles after) and returns a wait for them
// to be written into dir. With dir empty it does nothing.
func profileArgs(dir string) (sender, receiver []string, start func(context.Context, time.Duration) func() error, err error) {
	sender, startSender, err := profileOne(dir, "sender")
	if err != nil {
		return nil, nil, nil, err
	}
	receiver, startReceiver, err := profileOne(dir, "receiver")
	if err != nil {
		return nil, nil, nil, err
	}
	start = func(ctx context.Context, d time.Duration) func() error {
		waitSender, waitReceiver := startSender(ctx, d), startReceiver(ctx, d)
		return func() error {
			return errors.Join(waitSender(), waitReceiver())
		}
	}
	return sender, receiver, start, nil
}

// profileOne is profileArgs for one agent: the flags that turn on its
// profiler, and a function that profiles it for d into dir/NAME.pprof and
// then takes its heap profile into dir/NAME.heap.
func profileOne(dir, name string) (args []string, start func(context.Context, time.Duration) func() error, err error) {
	nop := func(context.Context, time.Duration) func() error { return func() error { return nil } }
	if dir == "" {
		return nil, nop, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	start = func(ctx context.Context, d time.Duration) func() error {
		errc := make(chan error, 1)
		go func() {
			// An execution trace beside the CPU profile: what the
			// goroutines wait on (go tool trace -pprof=sync|net|syscall).
			traced := make(chan error, 1)
			go func() {
				traced <- fetchProfile(ctx, addr, "trace", d, filepath.Join(dir, name+".trace"))
			}()
			err := fetchProfile(ctx, addr, "profile", d, filepath.Join(dir, name+".pprof"))
			if err == nil {
				err = fetchURL(ctx, fmt.Sprintf("http://%s/debug/pprof/heap", addr), filepath.Join(dir, name+".heap"))
			}
			errc <- errors.Join(err, <-traced)
		}()
		return func() error { return <-errc }
	}
	return []string{"--pprof", addr}, start, nil
}

func fetchURL(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fetchProfile(ctx context.Context, addr, kind string, d time.Duration, path string) error {
	// The receiver's profiler starts with its process: retry briefly.
	var resp *http.Response
	err := harness.WaitFor(10*time.Second, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", addr, kind, int(d.Seconds())), nil)
		if err != nil {
			return false, err
		}
		resp, err = http.DefaultClient.Do(req)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("profile %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", addr, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
