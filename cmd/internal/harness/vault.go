package harness

import (
	"os"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/vault"
)

// EnvPassphrase is the variable fieldsync reads the passphrase from.
const EnvPassphrase = "FIELDSYNC_PASSPHRASE"

// defaultPassphrase encrypts the data directories of clusters when the
// caller's environment gives none. It protects test data only.
const defaultPassphrase = "harness passphrase, not a secret"

// Passphrase is the passphrase of every data directory a cluster makes:
// $FIELDSYNC_PASSPHRASE when set, else a fixed one.
func Passphrase() string {
	if p := os.Getenv(EnvPassphrase); p != "" {
		return p
	}
	return defaultPassphrase
}

// EnvAuthorityPassphrase is the variable the authority's passphrase is read
// from.
const EnvAuthorityPassphrase = "FIELDSYNC_AUTHORITY_PASSPHRASE"

// AuthorityPassphrase is the passphrase of a cluster's authority directory:
// $FIELDSYNC_AUTHORITY_PASSPHRASE when set, else a fixed one.
func AuthorityPassphrase() string {
	if p := os.Getenv(EnvAuthorityPassphrase); p != "" {
		return p
	}
	return "harness authority passphrase, not a secret"
}

// LoadAuthority loads a cluster's authority.
func LoadAuthority(dir string) (*identity.Authority, error) {
	k, err := vault.Open(dir, []byte(AuthorityPassphrase()))
	if err != nil {
		return nil, err
	}
	return identity.LoadAuthoritySealed(dir, k)
}

// Unlock opens the vault of a data directory the harness provisioned.
func Unlock(dataDir string) (*vault.Key, error) {
	return vault.Open(dataDir, []byte(Passphrase()))
}

// LoadDevice loads the device of a data directory the harness provisioned.
func LoadDevice(dataDir string) (*identity.Device, error) {
	k, err := Unlock(dataDir)
	if err != nil {
		return nil, err
	}
	return identity.LoadDeviceSealed(dataDir, k)
}
