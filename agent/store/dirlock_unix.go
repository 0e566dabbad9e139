//go:build unix

package store

import (
	"os"
	"syscall"
)

// lockDir takes the exclusive lock badger takes on a store's directory
// (flock on the directory itself), so nothing is removed under a process
// that has the store open. ok is false when another process holds it.
func lockDir(dir string) (unlock func(), ok bool) {
	f, err := os.Open(dir)
	if err != nil {
		return func() {}, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return func() {}, false
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true
}
