//go:build !linux

package store

// pageOutMapped is a no-op where MADV_PAGEOUT does not exist.
func pageOutMapped(string, bool) bool { return false }
