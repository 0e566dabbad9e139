//go:build !fieldsync_storeinclear

package agent

// storeInClear is false in every real build: the store is always
// encrypted at rest (see storeinclear.go for the measuring build).
const storeInClear = false
