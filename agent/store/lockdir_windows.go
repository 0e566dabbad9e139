//go:build windows

package store

import (
	"path/filepath"
	"syscall"
)

// lockDir takes the lock badger takes on a store directory on Windows (its
// LOCK file opened with no sharing and deleted on close, dir_windows.go in
// badger), failing at once if another process holds it, and returns its
// release.
func lockDir(dir string) (unlock func(), err error) {
	const fileAttributeTemporary, fileFlagDeleteOnClose = 0x00000100, 0x04000000
	path, err := filepath.Abs(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(p, 0, 0, nil, syscall.OPEN_ALWAYS, fileAttributeTemporary|fileFlagDeleteOnClose, 0)
	if err != nil {
		return nil, err
	}
	return func() { syscall.CloseHandle(h) }, nil
}
