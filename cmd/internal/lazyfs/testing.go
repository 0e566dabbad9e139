package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// EnvRequire, set to 1, turns "this machine cannot mount FUSE" from a skip
// into a failure (make test and CI set it).
const EnvRequire = "FIELDSYNC_REQUIRE_FUSE"

var (
	checkOnce sync.Once
	checkErr  error
)

// Check says why this machine cannot mount a FUSE file system, or nil:
// not root, no /dev/fuse, or a mount that fails. It tries once per process.
func Check() error {
	checkOnce.Do(func() { checkErr = check() })
	return checkErr
}

func check() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: mounting FUSE without fusermount needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	dir, err := os.MkdirTemp("", "lazyfs-check")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	back, mnt := filepath.Join(dir, "b"), filepath.Join(dir, "m")
	if err := errors.Join(os.Mkdir(back, 0o700), os.Mkdir(mnt, 0o700)); err != nil {
		return err
	}
	f, err := Mount(Options{Backing: back, Mountpoint: mnt})
	if err != nil {
		return err
	}
	return f.Close()
}

// MountT mounts for a test, with opts.Backing and opts.Mountpoint made in
// t.TempDir() when empty, and unmounts in cleanup. A machine that cannot
// mount skips the test with the reason, or fails it when
// FIELDSYNC_REQUIRE_FUSE=1.
func MountT(t testing.TB, opts Options) *FS {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("FUSE is required (%s=1) but cannot be mounted: %v", EnvRequire, err)
		}
		t.Skipf("cannot mount FUSE here (%v); set %s=1 to fail instead", err, EnvRequire)
	}
	dir := t.TempDir()
	if opts.Backing == "" {
		opts.Backing = filepath.Join(dir, "backing")
		if err := os.Mkdir(opts.Backing, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Mountpoint == "" {
		opts.Mountpoint = filepath.Join(dir, "mnt")
		if err := os.Mkdir(opts.Mountpoint, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("lazyfs close: %v", err)
		}
	})
	return f
}
