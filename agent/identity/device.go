package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// gossipKeyInfo is the HKDF info string of the memberlist key. Changing it
// changes every deployment's gossip key: bump the version only together with
// a gossip protocol change.
const gossipKeyInfo = "fieldsync memberlist v1"

// GossipKeySize is the size of [Device.GossipKey] (AES-256 in memberlist).
const GossipKeySize = 32

// Device is one provisioned laptop (or hub): its private key, the credential
// the authority issued for it, and what it needs to check other devices of
// the deployment.
type Device struct {
	Private          ed25519.PrivateKey
	Credential       Credential
	AuthorityPublic  ed25519.PublicKey
	DeploymentSecret []byte
}

// deviceKeyFile is the CBOR content of device.key.
type deviceKeyFile struct {
	Seed []byte `cbor:"1,keyasint"`
}

// deploymentFile is the CBOR content of deployment.cbor.
type deploymentFile struct {
	AuthorityPublic []byte `cbor:"1,keyasint"`
	Secret          []byte `cbor:"2,keyasint"`
}

// InitDevice provisions a device in dataDir (created 0700 if needed): it
// generates the device key pair from random (nil means crypto/rand), has a
// issue a credential for name and role valid from now for validity (0 means
// [DefaultValidity]), and writes credential.cbor (0644), deployment.cbor
// (0600) and, last, device.key (0600).
//
// If device.key already exists in dataDir it returns an error wrapping
// [ErrExists] and changes nothing: a re-provisioned laptop would start a
// second op log under a new key beside the data of the old one. device.key
// is written last and exclusively, so a run interrupted before it can simply
// be repeated.
func InitDevice(a *Authority, dataDir, name string, role Role, now time.Time, validity time.Duration, random io.Reader) (*Device, error) {
	return InitDeviceFor(a, dataDir, name, "", role, now, validity, random)
}

// InitDeviceFor is InitDevice for a device assigned to an officer, whose
// name the credential carries (empty: none).
func InitDeviceFor(a *Authority, dataDir, name, officer string, role Role, now time.Time, validity time.Duration, random io.Reader) (*Device, error) {
	return InitDeviceSealed(nil, a, dataDir, name, officer, role, now, validity, random)
}

// Sealer encrypts a directory's secret files (agent/vault's Key): the
// device key and the deployment secret never reach the disk in clear.
type Sealer interface {
	Seal(name string, plaintext []byte) ([]byte, error)
	Open(name string, sealed []byte) ([]byte, error)
}

// sealedMagic starts every file a Sealer wrote (agent/vault's format), so
// that a plain and a sealed file are told apart without a key.
const sealedMagic = "FSSEAL1\x00"

// ErrPlainSecrets means a data directory's secret files are not encrypted:
// a directory from before encryption at rest, converted by `fieldsync device
// encrypt`.
var ErrPlainSecrets = errors.New("the device key is not encrypted (khóa thiết bị chưa được mã hóa): convert the data directory with `fieldsync device encrypt --data DIR`")

// ErrSealedSecrets means a data directory's secret files are encrypted and
// no key was given to open them.
var ErrSealedSecrets = errors.New("the device key is encrypted: a passphrase is needed (khóa thiết bị đã mã hóa: cần mật khẩu)")

// sealSecret seals a secret file's content with s (nil: plain).
func sealSecret(s Sealer, name string, b []byte) ([]byte, error) {
	if s == nil {
		return b, nil
	}
	return s.Seal(name, b)
}

// openSecret opens a secret file read from path with s (nil: plain).
func openSecret(s Sealer, path string, b []byte) ([]byte, error) {
	sealed := bytes.HasPrefix(b, []byte(sealedMagic))
	switch {
	case s == nil && sealed:
		return nil, fmt.Errorf("%s: %w", path, ErrSealedSecrets)
	case s == nil:
		return b, nil
	case !sealed:
		return nil, fmt.Errorf("%s: %w", path, ErrPlainSecrets)
	}
	return s.Open(filepath.Base(path), b)
}

// InitDeviceSealed is InitDeviceFor writing the device key and the
// deployment file sealed by s (nil: plain, for tests of this package and
// the conversion of old directories).
func InitDeviceSealed(s Sealer, a *Authority, dataDir, name, officer string, role Role, now time.Time, validity time.Duration, random io.Reader) (*Device, error) {
	if dataDir == "" {
		return nil, errors.New("provision device: no data directory given")
	}
	if err := a.check(); err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	if len(a.Secret) != SecretSize {
		return nil, errors.New("provision device: authority deployment secret has the wrong size")
	}
	if random == nil {
		random = rand.Reader
	}
	if err := os.MkdirAll(dataDir, dirMode); err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(dataDir, DeviceKeyFile)); err == nil {
		return nil, deviceExists(dataDir)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, fmt.Errorf("provision device: read random: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	cred, err := a.IssueTo(name, officer, role, priv.Public().(ed25519.PublicKey), now, validity)
	if err != nil {
		return nil, err
	}
	d := &Device{
		Private:          priv,
		Credential:       cred,
		AuthorityPublic:  append(ed25519.PublicKey(nil), a.Public...),
		DeploymentSecret: append([]byte(nil), a.Secret...),
	}
	credBytes, err := cred.Marshal()
	if err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	depBytes, err := encMode.Marshal(deploymentFile{AuthorityPublic: d.AuthorityPublic, Secret: d.DeploymentSecret})
	if err != nil {
		return nil, fmt.Errorf("provision device: encode deployment: %w", err)
	}
	keyBytes, err := encMode.Marshal(deviceKeyFile{Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("provision device: encode key: %w", err)
	}
	if depBytes, err = sealSecret(s, DeploymentFile, depBytes); err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	if keyBytes, err = sealSecret(s, DeviceKeyFile, keyBytes); err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	if err := replaceFile(dataDir, CredentialFile, credBytes, publicMode); err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	if err := replaceFile(dataDir, DeploymentFile, depBytes, privateMode); err != nil {
		return nil, fmt.Errorf("provision device: %w", err)
	}
	if err := createFile(dataDir, DeviceKeyFile, keyBytes, privateMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, deviceExists(dataDir)
		}
		return nil, fmt.Errorf("provision device: %w", err)
	}
	return d, nil
}

func deviceExists(dir string) error {
	return &detailError{
		msg: fmt.Sprintf("%s already exists in %s: this laptop is already provisioned (provisioning it again would split its records under a new identity)",
			DeviceKeyFile, dir),
		sentinel: ErrExists,
	}
}

// LoadDevice reads the device provisioned by [InitDevice] in dataDir. It
// checks that the credential is well formed, was signed by the stored
// authority key and belongs to the stored device key. It does not check the
// validity window: an expired device still loads, and the caller decides
// what it may do (see [Device.Verifier]). A missing device.key returns an
// error wrapping [ErrNotFound].
func LoadDevice(dataDir string) (*Device, error) { return LoadDeviceSealed(dataDir, nil) }

// LoadDeviceSealed is LoadDevice for a directory whose secret files s
// sealed. A plain directory returns an error wrapping [ErrPlainSecrets];
// with s nil, a sealed one returns [ErrSealedSecrets].
func LoadDeviceSealed(dataDir string, s Sealer) (*Device, error) {
	keyPath := filepath.Join(dataDir, DeviceKeyFile)
	data, err := readFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &detailError{
			msg:      fmt.Sprintf("no %s in %s: this laptop is not provisioned yet; provision it with the deployment's authority first", DeviceKeyFile, dataDir),
			sentinel: ErrNotFound,
			cause:    err,
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load device: %w", err)
	}
	if data, err = openSecret(s, keyPath, data); err != nil {
		return nil, fmt.Errorf("load device: %w", err)
	}
	var kf deviceKeyFile
	if err := decMode.Unmarshal(data, &kf); err != nil || len(kf.Seed) != ed25519.SeedSize {
		return nil, damaged(keyPath, "a fieldsync device key", err)
	}
	priv := ed25519.NewKeyFromSeed(kf.Seed)

	depPath := filepath.Join(dataDir, DeploymentFile)
	data, err = readFile(depPath)
	if err != nil {
		return nil, incomplete(depPath, err)
	}
	if data, err = openSecret(s, depPath, data); err != nil {
		return nil, fmt.Errorf("load device: %w", err)
	}
	var df deploymentFile
	if err := decMode.Unmarshal(data, &df); err != nil || len(df.AuthorityPublic) != ed25519.PublicKeySize || len(df.Secret) != SecretSize {
		return nil, damaged(depPath, "a fieldsync deployment file", err)
	}

	credPath := filepath.Join(dataDir, CredentialFile)
	data, err = readFile(credPath)
	if err != nil {
		return nil, incomplete(credPath, err)
	}
	cred, err := UnmarshalCredential(data)
	if err != nil {
		return nil, fmt.Errorf("load device: %s: %w", credPath, err)
	}
	d := &Device{
		Private:          priv,
		Credential:       cred,
		AuthorityPublic:  ed25519.PublicKey(df.AuthorityPublic),
		DeploymentSecret: df.Secret,
	}
	if err := d.Verifier().verifyIssued(cred); err != nil {
		return nil, fmt.Errorf("load device: %s: %w", credPath, err)
	}
	if pub := d.Public(); !cred.PublicKey.Equal(pub) {
		return nil, &detailError{
			msg: fmt.Sprintf("%s is the credential of device %q (%s), not of this laptop's key in %s (%s): the files were mixed up; restore them or provision the laptop again",
				credPath, cred.Name, cred.DeviceID, keyPath, DeviceID(pub)),
			sentinel: ErrKeyMismatch,
		}
	}
	return d, nil
}

func damaged(path, what string, cause error) error {
	return &detailError{
		msg:      fmt.Sprintf("%s is damaged or is not %s", path, what),
		sentinel: ErrMalformed,
		cause:    cause,
	}
}

func incomplete(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &detailError{
			msg:      fmt.Sprintf("%s is missing: this laptop's provisioning is incomplete", path),
			sentinel: ErrNotFound,
			cause:    err,
		}
	}
	return fmt.Errorf("load device: %w", err)
}

// ID returns the device's DeviceID.
func (d *Device) ID() string { return DeviceID(d.Public()) }

// Name returns the device's name from its credential.
func (d *Device) Name() string { return d.Credential.Name }

// Public returns the device's public key (nil if the Device holds no valid
// private key).
func (d *Device) Public() ed25519.PublicKey {
	if len(d.Private) != ed25519.PrivateKeySize {
		return nil
	}
	pub, _ := d.Private.Public().(ed25519.PublicKey)
	return pub
}

// Verifier returns a Verifier for the device's deployment.
func (d *Device) Verifier() Verifier { return NewVerifier(d.AuthorityPublic) }

// GossipKey derives the 32-byte memberlist encryption key from the
// deployment secret with HKDF-SHA256 (no salt, info "fieldsync memberlist
// v1"). Every device of a deployment derives the same key; different
// deployments get different keys. The returned slice is the caller's.
//
// It returns nil if the device holds no valid 32-byte secret (only possible
// for a hand-built Device): memberlist treats a nil key as "no encryption",
// so callers must refuse to start gossip on nil.
func (d *Device) GossipKey() []byte {
	if len(d.DeploymentSecret) != SecretSize {
		return nil
	}
	key, err := hkdf.Key(sha256.New, d.DeploymentSecret, nil, gossipKeyInfo, GossipKeySize)
	if err != nil {
		return nil
	}
	return key
}

// String describes the device without key material.
func (d Device) String() string {
	return fmt.Sprintf("device %q (%s) of deployment %s", d.Credential.Name, d.Credential.DeviceID, DeploymentID(d.AuthorityPublic))
}

// Format prints [Device.String] for every verb, so that no format string,
// %#v included, can print the private key or the deployment secret.
func (d Device) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, d.String()) }

// SaveSecrets writes the device key and the deployment file of d into dir,
// sealed by s (nil: plain). It is how `fieldsync device encrypt` rewrites
// the secrets of a directory from before encryption at rest.
func (d *Device) SaveSecrets(dir string, s Sealer) error {
	if len(d.Private) != ed25519.PrivateKeySize {
		return errors.New("save device secrets: no private key")
	}
	depBytes, err := encMode.Marshal(deploymentFile{AuthorityPublic: d.AuthorityPublic, Secret: d.DeploymentSecret})
	if err != nil {
		return err
	}
	keyBytes, err := encMode.Marshal(deviceKeyFile{Seed: d.Private.Seed()})
	if err != nil {
		return err
	}
	if depBytes, err = sealSecret(s, DeploymentFile, depBytes); err != nil {
		return err
	}
	if keyBytes, err = sealSecret(s, DeviceKeyFile, keyBytes); err != nil {
		return err
	}
	if err := replaceFile(dir, DeploymentFile, depBytes, privateMode); err != nil {
		return err
	}
	return replaceFile(dir, DeviceKeyFile, keyBytes, privateMode)
}
