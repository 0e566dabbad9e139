package main

import (
	"os"
	"testing"

	"github.com/fieldsync/fieldsync/agent/vault"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// TestMain gives the commands these tests run in-process the passphrase
// and cheap key derivation that the harness gives to the processes it
// starts, so no test waits at a prompt.
func TestMain(m *testing.M) {
	if os.Getenv(EnvPassphrase) == "" {
		os.Setenv(EnvPassphrase, harness.Passphrase())
	}
	if os.Getenv(EnvAuthorityPassphrase) == "" {
		os.Setenv(EnvAuthorityPassphrase, harness.AuthorityPassphrase())
	}
	os.Setenv(vault.KDFEnv, "test")
	os.Exit(m.Run())
}
