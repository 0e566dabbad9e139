package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCreateOpenRewrap(t *testing.T) {
	dir := t.TempDir()
	k, err := Create(dir, []byte("mật khẩu một"), TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("vault file: %v, mode %v", err, fi.Mode())
	}
	if _, err := Create(dir, []byte("other"), TestParams()); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	k2, err := Open(dir, []byte("mật khẩu một"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.StoreKey(), k2.StoreKey()) || len(k.StoreKey()) != KeySize {
		t.Fatal("reopened vault gives another store key")
	}
	if bytes.Equal(k.StoreKey(), k.files) || bytes.Equal(k.StoreKey(), k.data) {
		t.Fatal("derived keys are not separated")
	}
	before, _ := os.ReadFile(filepath.Join(dir, FileName))
	if _, err := Open(dir, []byte("mật khẩu hai")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Rewrap(dir, []byte("wrong"), []byte("new"), TestParams()); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("rewrap with a wrong passphrase: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, FileName)); !bytes.Equal(before, after) {
		t.Fatal("a refused passphrase changed the vault")
	}
	sealed, err := k.Seal("device.key", []byte("secret seed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rewrap(dir, []byte("mật khẩu một"), []byte("mật khẩu hai"), TestParams()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, []byte("mật khẩu một")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after rewrap: %v", err)
	}
	k3, err := Open(dir, []byte("mật khẩu hai"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k3.Open("device.key", sealed); err != nil || string(pt) != "secret seed" {
		t.Fatalf("file sealed before the rewrap: %q, %v", pt, err)
	}
	if fmtd := []byte(k3.String()); bytes.Contains(fmtd, k3.data) {
		t.Fatal("String prints the key")
	}
}

func TestParamsTamperIsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir, []byte("pw"), Params{Time: 2, MemoryKiB: 512, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	raw, _ := os.ReadFile(path)
	var f file
	if err := decMode.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	f.Time = 1 // a cheaper guess
	b, _ := encMode.Marshal(f)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, []byte("pw")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("vault with edited params: %v, want ErrWrongPassphrase", err)
	}
	f.Memory = 1 << 30 // 1 TiB: refused before any allocation
	b, _ = encMode.Marshal(f)
	_ = os.WriteFile(path, b, 0o600)
	if _, err := Open(dir, []byte("pw")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("vault with huge memory: %v, want ErrMalformed", err)
	}
	if _, err := Open(t.TempDir(), []byte("pw")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no vault: %v", err)
	}
}

func TestSealBindsNameAndKey(t *testing.T) {
	a, err := Create(t.TempDir(), []byte("a"), TestParams())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(t.TempDir(), []byte("a"), TestParams())
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("the deployment secret")
	s, err := a.Seal("deployment.cbor", plain)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(s) || bytes.Contains(s, plain) || len(s) != len(plain)+SealedOverhead {
		t.Fatalf("sealed form: %x", s)
	}
	if _, err := a.Open("device.key", s); !errors.Is(err, ErrSealed) {
		t.Errorf("under another name: %v", err)
	}
	if _, err := b.Open("deployment.cbor", s); !errors.Is(err, ErrSealed) {
		t.Errorf("under another key: %v", err)
	}
	for i := range s {
		c := bytes.Clone(s)
		c[i] ^= 1
		if _, err := a.Open("deployment.cbor", c); !errors.Is(err, ErrSealed) {
			t.Fatalf("bit flip at %d opened: %v", i, err)
		}
	}
	if _, err := a.Open("deployment.cbor", plain); !errors.Is(err, ErrSealed) {
		t.Errorf("plain file: %v", err)
	}
}

// TestDefaultParamsCost measures what an officer waits at each agent start.
func TestDefaultParamsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("costs a second")
	}
	start := time.Now()
	derive([]byte("passphrase"), make([]byte, saltSize), DefaultParams())
	took := time.Since(start)
	t.Logf("argon2id %s: %s", DefaultParams(), took)
	if took < 50*time.Millisecond {
		t.Errorf("default argon2id took %s: far too cheap", took)
	}
	if !TestParams().Weak() || DefaultParams().Weak() {
		t.Error("Weak is wrong")
	}
}
