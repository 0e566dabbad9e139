package identity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuthorityRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deep", "authority")
	a, err := InitAuthority(dir, seededRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Secret) != SecretSize || !a.Public.Equal(a.Private.Public()) {
		t.Fatal("InitAuthority returned an inconsistent authority")
	}
	b, err := LoadAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Private.Equal(a.Private) || !b.Public.Equal(a.Public) || !bytes.Equal(b.Secret, a.Secret) {
		t.Fatal("loaded authority differs from the created one")
	}
	pubText, err := os.ReadFile(filepath.Join(dir, AuthorityPubFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(a.Public) + "\n"; string(pubText) != want {
		t.Errorf("authority.pub = %q, want %q", pubText, want)
	}
	// The same seed gives the same deployment; another seed another one.
	c, err := InitAuthority(filepath.Join(t.TempDir(), "a"), seededRand(1))
	if err != nil || !c.Public.Equal(a.Public) {
		t.Errorf("same seed gave another authority (%v)", err)
	}
	if d := newAuthority(t, 2); d.Public.Equal(a.Public) || bytes.Equal(d.Secret, a.Secret) {
		t.Error("different seeds gave the same authority")
	}
}

func TestInitAuthorityRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, err := InitAuthority(dir, seededRand(1)); err != nil {
		t.Fatal(err)
	}
	key0 := readBytes(t, filepath.Join(dir, AuthorityKeyFile))
	pub0 := readBytes(t, filepath.Join(dir, AuthorityPubFile))
	_, err := InitAuthority(dir, seededRand(2))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second InitAuthority = %v, want ErrExists", err)
	}
	if !strings.Contains(err.Error(), "authority.key already exists in "+dir) {
		t.Errorf("message %q does not say what exists where", err)
	}
	if !bytes.Equal(readBytes(t, filepath.Join(dir, AuthorityKeyFile)), key0) ||
		!bytes.Equal(readBytes(t, filepath.Join(dir, AuthorityPubFile)), pub0) {
		t.Fatal("refused InitAuthority changed the files")
	}
	assertNoTempFiles(t, dir)
}

func TestLoadAuthorityErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing-here")
	_, err := LoadAuthority(dir)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadAuthority of empty dir = %v, want ErrNotFound", err)
	}
	if want := fmt.Sprintf("no authority in %s: run `fieldsync authority init --dir %s`", dir, dir); err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}

	// authority.pub of another deployment beside the key.
	dir = t.TempDir()
	if _, err := InitAuthority(dir, seededRand(1)); err != nil {
		t.Fatal(err)
	}
	other := newAuthority(t, 2)
	writeBytes(t, filepath.Join(dir, AuthorityPubFile), []byte(hex.EncodeToString(other.Public)+"\n"))
	if _, err := LoadAuthority(dir); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched authority.pub: %v, want ErrMalformed saying it does not match", err)
	}
	// Without authority.pub the key alone loads.
	if err := os.Remove(filepath.Join(dir, AuthorityPubFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(dir); err != nil {
		t.Errorf("key without authority.pub: %v", err)
	}
	// A damaged key.
	writeBytes(t, filepath.Join(dir, AuthorityKeyFile), []byte("garbage"))
	if _, err := LoadAuthority(dir); !errors.Is(err, ErrMalformed) {
		t.Errorf("damaged key: %v, want ErrMalformed", err)
	}
}

func TestDeviceRoundTrip(t *testing.T) {
	a := newAuthority(t, 1)
	dataDir := filepath.Join(t.TempDir(), "data")
	d, err := InitDevice(a, dataDir, "laptop-a", RoleField, testNow, 0, seededRand(10))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID() != DeviceID(d.Public()) || d.ID() != d.Credential.DeviceID || d.Name() != "laptop-a" {
		t.Fatalf("device ids disagree: ID %s, credential %s", d.ID(), d.Credential.DeviceID)
	}
	if got := d.Credential.Expires - d.Credential.IssuedAt; got != int64(DefaultValidity/time.Second) {
		t.Errorf("validity 0 gave %ds, want DefaultValidity", got)
	}
	l, err := LoadDevice(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := l.Credential.Marshal()
	db, _ := d.Credential.Marshal()
	if !l.Private.Equal(d.Private) || !bytes.Equal(lb, db) || !l.AuthorityPublic.Equal(a.Public) ||
		!bytes.Equal(l.DeploymentSecret, a.Secret) || l.ID() != d.ID() {
		t.Fatal("loaded device differs from the provisioned one")
	}
	if err := l.Verifier().VerifyPeer(d.Credential, d.Public(), testNow); err != nil {
		t.Fatalf("device's own credential does not verify: %v", err)
	}
	if l.Verifier().Deployment() != a.Deployment() {
		t.Fatal("device verifier is of another deployment")
	}
}

func TestGossipKey(t *testing.T) {
	a, b := newAuthority(t, 1), newAuthority(t, 2)
	d1 := initDevice(t, a, "laptop-1", 10)
	d2 := initDevice(t, a, "laptop-2", 11)
	e := initDevice(t, b, "laptop-3", 12)
	k := d1.GossipKey()
	if len(k) != GossipKeySize {
		t.Fatalf("GossipKey is %d bytes, want %d", len(k), GossipKeySize)
	}
	if !bytes.Equal(k, d1.GossipKey()) || !bytes.Equal(k, d2.GossipKey()) {
		t.Error("GossipKey differs between calls or between devices of one deployment")
	}
	if bytes.Equal(k, e.GossipKey()) {
		t.Error("two deployments have the same gossip key")
	}
	if bytes.Equal(k, a.Secret) {
		t.Error("GossipKey is the raw secret, not derived")
	}
	k[0] ^= 1 // the returned slice is the caller's
	if bytes.Equal(k, d1.GossipKey()) {
		t.Error("GossipKey returned shared memory")
	}
}

func TestInitDeviceRefusesOverwrite(t *testing.T) {
	a := newAuthority(t, 1)
	dataDir := t.TempDir()
	d := initDeviceIn(t, a, dataDir, "laptop-a", 10)
	before := map[string][]byte{}
	for _, f := range []string{DeviceKeyFile, CredentialFile, DeploymentFile} {
		before[f] = readBytes(t, filepath.Join(dataDir, f))
	}
	_, err := InitDevice(a, dataDir, "laptop-b", RoleAdmin, testNow, 0, seededRand(11))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second InitDevice = %v, want ErrExists", err)
	}
	if want := "device.key already exists in " + dataDir + ": this laptop is already provisioned"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain %q", err, want)
	}
	for f, b := range before {
		if !bytes.Equal(readBytes(t, filepath.Join(dataDir, f)), b) {
			t.Errorf("refused InitDevice changed %s", f)
		}
	}
	l, err := LoadDevice(dataDir)
	if err != nil || l.ID() != d.ID() {
		t.Fatalf("after refusal the device is %v (%v), want %s", l, err, d.ID())
	}
	assertNoTempFiles(t, dataDir)
}

func TestLoadDeviceExpiredStillLoads(t *testing.T) {
	a := newAuthority(t, 1)
	dataDir := t.TempDir()
	if _, err := InitDevice(a, dataDir, "laptop-a", RoleField, testNow, time.Hour, seededRand(10)); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDevice(dataDir)
	if err != nil {
		t.Fatalf("LoadDevice of an expired device: %v", err)
	}
	if err := d.Verifier().Verify(d.Credential, testNow.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify = %v, want ErrExpired", err)
	}
}

func TestLoadDeviceErrors(t *testing.T) {
	a, b := newAuthority(t, 1), newAuthority(t, 2)

	empty := t.TempDir()
	_, err := LoadDevice(empty)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not provisioned") {
		t.Errorf("LoadDevice of empty dir = %v, want ErrNotFound saying not provisioned", err)
	}

	// The credential of another device of the same deployment.
	dirA, dirB := t.TempDir(), t.TempDir()
	initDeviceIn(t, a, dirA, "laptop-a", 10)
	initDeviceIn(t, a, dirB, "laptop-b", 11)
	writeBytes(t, filepath.Join(dirA, CredentialFile), readBytes(t, filepath.Join(dirB, CredentialFile)))
	if _, err := LoadDevice(dirA); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("swapped credential: %v, want ErrKeyMismatch", err)
	}

	// deployment.cbor of another deployment.
	dirC, dirD := t.TempDir(), t.TempDir()
	initDeviceIn(t, a, dirC, "laptop-c", 12)
	initDeviceIn(t, b, dirD, "laptop-d", 13)
	writeBytes(t, filepath.Join(dirC, DeploymentFile), readBytes(t, filepath.Join(dirD, DeploymentFile)))
	if _, err := LoadDevice(dirC); !errors.Is(err, ErrOtherDeployment) {
		t.Errorf("swapped deployment: %v, want ErrOtherDeployment", err)
	}

	// A credential signed by nobody: tampered role in the stored file.
	dirE := t.TempDir()
	d := initDeviceIn(t, a, dirE, "laptop-e", 14)
	forged := d.Credential
	forged.Role = RoleAdmin
	fb, _ := forged.Marshal()
	writeBytes(t, filepath.Join(dirE, CredentialFile), fb)
	if _, err := LoadDevice(dirE); !errors.Is(err, ErrBadSignature) {
		t.Errorf("self-promoted credential: %v, want ErrBadSignature", err)
	}

	// Missing and damaged files.
	dirF := t.TempDir()
	initDeviceIn(t, a, dirF, "laptop-f", 15)
	if err := os.Remove(filepath.Join(dirF, CredentialFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDevice(dirF); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("missing credential: %v, want ErrNotFound saying incomplete", err)
	}
	writeBytes(t, filepath.Join(dirF, DeviceKeyFile), []byte{0xa1, 0x01, 0x41, 0x00})
	if _, err := LoadDevice(dirF); !errors.Is(err, ErrMalformed) {
		t.Errorf("short device key: %v, want ErrMalformed", err)
	}
	writeBytes(t, filepath.Join(dirF, DeviceKeyFile), bytes.Repeat([]byte{0}, maxKeyFileSize+1))
	if _, err := LoadDevice(dirF); err == nil {
		t.Error("huge device.key loaded")
	}
}

func TestFilePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix permissions")
	}
	authDir := filepath.Join(t.TempDir(), "authority")
	a, err := InitAuthority(authDir, seededRand(1))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	initDeviceIn(t, a, dataDir, "laptop-a", 10)
	for path, want := range map[string]os.FileMode{
		authDir:                                  os.ModeDir | 0o700,
		filepath.Join(authDir, AuthorityKeyFile): 0o600,
		filepath.Join(authDir, AuthorityPubFile): 0o644,
		dataDir:                                  os.ModeDir | 0o700,
		filepath.Join(dataDir, DeviceKeyFile):    0o600,
		filepath.Join(dataDir, CredentialFile):   0o644,
		filepath.Join(dataDir, DeploymentFile):   0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode(), want)
		}
	}
	assertNoTempFiles(t, authDir)
	assertNoTempFiles(t, dataDir)
}

// TestCreateFileExclusive races many writers for one name: exactly one wins
// and the file holds the winner's bytes.
func TestCreateFileExclusive(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = createFile(dir, "k", []byte{byte(i)}, privateMode) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, os.ErrExist):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	if got := readBytes(t, filepath.Join(dir, "k")); !bytes.Equal(got, []byte{byte(winner)}) {
		t.Fatalf("file holds %x, want the winner's %x", got, winner)
	}
	assertNoTempFiles(t, dir)
}

// TestNoSecretsInFormat checks that printing an Authority or Device with any
// verb shows no key material.
func TestNoSecretsInFormat(t *testing.T) {
	a := newAuthority(t, 1)
	d := initDevice(t, a, "laptop-a", 10)
	out := fmt.Sprintf("%v %+v %#v %s %x %q %v %+v %#v %x %d", a, a, a, *a, *a, a, d, d, *d, *d, d)
	for name, secret := range map[string][]byte{
		"authority seed": a.Private.Seed(), "secret": a.Secret, "device seed": d.Private.Seed(),
	} {
		for _, enc := range []string{hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)), fmt.Sprint(secret), string(secret)} {
			if strings.Contains(out, enc) {
				t.Fatalf("%s printed: %s", name, out)
			}
		}
	}
	if !strings.Contains(out, a.Deployment()) || !strings.Contains(out, d.ID()) {
		t.Errorf("formatted output %q does not identify the authority and device", out)
	}
}

func initDevice(t *testing.T, a *Authority, name string, seed uint64) *Device {
	t.Helper()
	return initDeviceIn(t, a, t.TempDir(), name, seed)
}

func initDeviceIn(t *testing.T, a *Authority, dir, name string, seed uint64) *Device {
	t.Helper()
	d, err := InitDevice(a, dir, name, RoleField, testNow, 0, seededRand(seed))
	if err != nil {
		t.Fatalf("InitDevice: %v", err)
	}
	return d
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind in %s: %s", dir, e.Name())
		}
	}
}
