//go:build !windows && !plan9 && !js && !wasip1 && !aix

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockDir takes the lock badger takes on a store directory (an exclusive
// flock of the directory itself, dir_unix.go in badger), failing at once if
// another process holds it, and returns its release.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
