package harness

import (
	"testing"

	"github.com/fieldsync/fieldsync/agent/vault"
	"os"
	"path/filepath"
	"strings"

	"github.com/fieldsync/fieldsync/agent/api"
)

// RuntimeDir is where this cluster's agents write their API runtime files
// (FIELDSYNC_RUNTIME_DIR of every process the cluster starts), so parallel
// tests and the officer's own agent never see each other's tokens.
func (c *Cluster) RuntimeDir() string { return filepath.Join(c.Dir, "run") }

// procEnv is the environment of every process the cluster starts: this
// process's, with FIELDSYNC_RUNTIME_DIR set to RuntimeDir, no API token of
// the caller's, and the cluster's passphrase in FIELDSYNC_PASSPHRASE, so that
// every agent and command runs unattended.
func (c *Cluster) procEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, api.EnvRuntimeDir+"=") || strings.HasPrefix(kv, api.EnvToken+"=") ||
			strings.HasPrefix(kv, EnvPassphrase+"=") || strings.HasPrefix(kv, EnvAuthorityPassphrase+"=") ||
			strings.HasPrefix(kv, vault.KDFEnv+"=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, api.EnvRuntimeDir+"="+c.RuntimeDir(), EnvPassphrase+"="+Passphrase(), EnvAuthorityPassphrase+"="+AuthorityPassphrase())
	if testing.Testing() {
		// Tests start hundreds of agents: a deliberately cheap key
		// derivation (the agents warn about it). The demo keeps the real one.
		env = append(env, vault.KDFEnv+"=test")
	}
	return env
}

// NewClient returns an API client for addr that carries the token of the
// cluster's agent at addr, read from its runtime file at each request.
func (c *Cluster) NewClient(addr string) *api.Client {
	cl := api.NewClient(addr)
	cl.SetRuntimeDir(c.RuntimeDir())
	return cl
}

// NewClient returns a fresh client for a's current API address (after its
// ports changed).
func (a *Agent) NewClient() *api.Client { return a.c.NewClient(a.API) }

// Env is the environment the cluster's processes run with (passphrases,
// runtime directory), for a test that starts the binary itself.
func (c *Cluster) Env() []string { return c.procEnv() }
