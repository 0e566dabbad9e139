package identity_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/vault"
)

// identity tells sealed files from plain ones by their first bytes, without
// importing agent/vault: this test keeps the two formats in step.
func TestVaultSealedFilesAreRecognised(t *testing.T) {
	dir := t.TempDir()
	k, err := vault.Create(dir, []byte("a test passphrase"), vault.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	a, err := identity.InitAuthority(filepath.Join(t.TempDir(), "auth"), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "laptop")
	d, err := identity.InitDeviceSealed(k, a, data, "laptop", "", identity.RoleField, time.Now(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := identity.LoadDeviceSealed(data, k)
	if err != nil || got.ID() != d.ID() {
		t.Fatalf("sealed device does not load: %v", err)
	}
	if _, err := identity.LoadDevice(data); !errors.Is(err, identity.ErrSealedSecrets) {
		t.Fatalf("a sealed directory loaded without its key: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	if _, err := identity.InitDevice(a, plain, "plain", identity.RoleField, time.Now(), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadDeviceSealed(plain, k); !errors.Is(err, identity.ErrPlainSecrets) {
		t.Fatalf("a plain directory loaded as sealed: %v", err)
	}
}
