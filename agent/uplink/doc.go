// Package uplink owns what a field agent and a hub say about delivery
// upstream: receipts, statements signed by a hub that it has durably stored
// (and, where configured, committed to PostgreSQL) every origin's ops up to a
// seq, and the retry schedule a field agent follows to reach its hub. It is
// pure: keys, times and randomness come in as arguments.
//
// A receipt is small and self-contained (the hub's credential travels beside
// it), so it crosses the mesh like any other data: a laptop that never met the
// hub learns from one that did which of its dossiers are safe.
package uplink
