package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// demoOptions builds the binary and returns options for a quiet run under
// a fresh temporary root.
func demoOptions(t *testing.T) options {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real agent processes: skipped with -short")
	}
	bin, err := harness.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.Bin = bin
	o.TempRoot = t.TempDir()
	return o
}

// lockedBuffer collects output written from several goroutines and calls
// onText once the text contains a trigger.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	onText  func()
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.onText != nil && strings.Contains(b.buf.String(), b.trigger) {
		b.onText()
		b.onText = nil
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// assertCleanedUp checks that no agent is left running and the demo's
// temporary directory is gone.
func assertCleanedUp(t *testing.T, c *harness.Cluster, root string) {
	t.Helper()
	if c == nil {
		t.Fatal("the demo never made its cluster")
	}
	for _, a := range c.Agents() {
		if a.Running() {
			t.Errorf("%s still running after the demo", a.Name)
		}
	}
	left, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind in the temporary root: %s", e.Name())
	}
}

func TestDemoRunsEveryStep(t *testing.T) {
	o := demoOptions(t)
	out := &lockedBuffer{}
	o.Out = out
	var c *harness.Cluster
	o.onCluster = func(cl *harness.Cluster) { c = cl }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	if err := run(ctx, o); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	took := time.Since(began)
	text := out.String()
	for _, want := range []string{
		"▶ Bước 1 / Step 1:", "▶ Bước 8 / Step 8:",
		"$ fieldsync authority init --dir $DEMO/authority",
		"--no-mdns", "--join",
		"laptop-a: 60 hồ sơ",                    // step 4: 3 × 20 converged
		"laptop-c bắt kịp: 60 → 70 hồ sơ",       // step 5: caught up
		"laptop-d giữ cả 25 hồ sơ của laptop-a", // step 6: relayed
		"Chỉ có trên máy này / Only on this laptop:  0",
		`"Vừ Mí Chứ"  laptop-b`, `"Vừ Mý Chứ"  laptop-c`, // step 7: both values, by device
		"Tạo bởi / Created by:  laptop-a",
		"đã xóa thư mục tạm / temporary directory removed",
		"Tổng / Total",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The path shows once, in "export DEMO=...": commands use $DEMO.
	if n := strings.Count(text, o.TempRoot); n != 1 {
		t.Errorf("output shows the temporary path %d times, want once (export DEMO=)", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
	assertCleanedUp(t, c, o.TempRoot)
	// The demo promises to stay under about a minute.
	if took > time.Minute {
		t.Errorf("demo took %s", took)
	}
}

// Ctrl-C in the middle (the context cancelled) stops every agent and removes
// the temporary directory.
func TestDemoInterruptedCleansUp(t *testing.T) {
	o := demoOptions(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{trigger: "▶ Bước 3 / Step 3", onText: cancel}
	o.Out = out
	var c *harness.Cluster
	o.onCluster = func(cl *harness.Cluster) { c = cl }
	err := run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run returned %v, want context.Canceled\n%s", err, out)
	}
	if n := len(c.Agents()); n != 3 {
		t.Fatalf("%d agents provisioned before the interrupt, want 3", n)
	}
	assertCleanedUp(t, c, o.TempRoot)
}

func TestOptionsRefuseAMissingBinary(t *testing.T) {
	o := defaultOptions()
	o.Bin = t.TempDir() + "/no-such-fieldsync"
	if err := run(context.Background(), o); !errors.Is(err, errOptions) {
		t.Fatalf("run with a missing binary: %v, want errOptions", err)
	}
	o.Bin = t.TempDir() // a directory
	if err := run(context.Background(), o); !errors.Is(err, errOptions) {
		t.Fatalf("run with a directory as binary: %v, want errOptions", err)
	}
}
