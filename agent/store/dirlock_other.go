//go:build !unix

package store

// lockDir does nothing where badger's directory lock is not a flock: there
// a file another process has open (mapped) cannot be removed anyway.
func lockDir(string) (unlock func(), ok bool) { return func() {}, true }
