//go:build fieldsync_storeinclear

package agent

// storeInClear is set only in the measuring build (go build -tags
// fieldsync_storeinclear), which `make bench` uses to measure what
// encryption at rest costs the sync rate: the same agent with its store in
// clear. Key files stay sealed. Never a build for the field.
const storeInClear = true
