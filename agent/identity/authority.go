package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names in the authority directory and in a device's data directory.
const (
	AuthorityKeyFile = "authority.key"
	AuthorityPubFile = "authority.pub"
	DeviceKeyFile    = "device.key"
	CredentialFile   = "credential.cbor"
	DeploymentFile   = "deployment.cbor"
)

// SecretSize is the size of the deployment secret in bytes (256 bits).
const SecretSize = 32

// DefaultValidity is how long a credential is valid when no validity is
// given: a year, so a campaign never stops for an expired laptop, while a
// lost laptop that is never revoked still falls out eventually.
const DefaultValidity = 365 * 24 * time.Hour

// Authority is a deployment's root of trust: the key that signs device
// credentials, and the deployment secret handed to every device. It lives on
// the administrator's machine, not on field laptops.
type Authority struct {
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
	// Secret is the 32-byte deployment secret, from which the gossip key
	// is derived.
	Secret []byte
	// sealer seals the authority's secret files (authority.key, the
	// gossip keys); nil for a plain authority directory.
	sealer Sealer
}

// authorityFile is the CBOR content of authority.key.
type authorityFile struct {
	Seed   []byte `cbor:"1,keyasint"`
	Secret []byte `cbor:"2,keyasint"`
}

// InitAuthority creates a new deployment in dir: it creates dir (0700) if
// needed, and writes authority.key (0600) and authority.pub (0644, the public
// key in hex and a newline). If authority.key already exists it returns an
// error wrapping [ErrExists] and changes nothing: replacing the key would
// cut off every device of the deployment. random supplies the key seed and
// the secret; nil means crypto/rand.
func InitAuthority(dir string, random io.Reader) (*Authority, error) {
	return InitAuthoritySealed(dir, random, nil)
}

// InitAuthoritySealed is InitAuthority with authority.key sealed by s
// (nil: plain, for tests of this package).
func InitAuthoritySealed(dir string, random io.Reader, s Sealer) (*Authority, error) {
	if dir == "" {
		return nil, errors.New("init authority: no directory given")
	}
	if random == nil {
		random = rand.Reader
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("init authority: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, AuthorityKeyFile)); err == nil {
		return nil, authorityExists(dir)
	}
	seed := make([]byte, ed25519.SeedSize)
	secret := make([]byte, SecretSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, fmt.Errorf("init authority: read random: %w", err)
	}
	if _, err := io.ReadFull(random, secret); err != nil {
		return nil, fmt.Errorf("init authority: read random: %w", err)
	}
	data, err := encMode.Marshal(authorityFile{Seed: seed, Secret: secret})
	if err != nil {
		return nil, fmt.Errorf("init authority: encode key: %w", err)
	}
	if data, err = sealSecret(s, AuthorityKeyFile, data); err != nil {
		return nil, fmt.Errorf("init authority: %w", err)
	}
	// The private key first, exclusively: if it already exists nothing,
	// not even authority.pub, is touched.
	if err := createFile(dir, AuthorityKeyFile, data, privateMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, authorityExists(dir)
		}
		return nil, fmt.Errorf("init authority: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if err := replaceFile(dir, AuthorityPubFile, []byte(hex.EncodeToString(pub)+"\n"), publicMode); err != nil {
		return nil, fmt.Errorf("init authority: %w", err)
	}
	return &Authority{Private: priv, Public: pub, Secret: secret, sealer: s}, nil
}

func authorityExists(dir string) error {
	return &detailError{
		msg: fmt.Sprintf("%s already exists in %s: this deployment already has an authority key, and it is never overwritten (every device credential depends on it)",
			AuthorityKeyFile, dir),
		sentinel: ErrExists,
	}
}

// LoadAuthority reads the authority written by [InitAuthority] from dir. A
// missing key returns an error wrapping [ErrNotFound] that says how to create
// one; a damaged key file, or an authority.pub that does not match it,
// returns an error wrapping [ErrMalformed].
func LoadAuthority(dir string) (*Authority, error) { return LoadAuthoritySealed(dir, nil) }

// LoadAuthoritySealed is LoadAuthority for an authority.key sealed by s.
func LoadAuthoritySealed(dir string, s Sealer) (*Authority, error) {
	path := filepath.Join(dir, AuthorityKeyFile)
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &detailError{
			msg:      fmt.Sprintf("no authority in %s: run `fieldsync authority init --dir %s`", dir, dir),
			sentinel: ErrNotFound,
			cause:    err,
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load authority: %w", err)
	}
	if data, err = openSecret(s, path, data); err != nil {
		return nil, fmt.Errorf("load authority: %w", err)
	}
	var f authorityFile
	if err := decMode.Unmarshal(data, &f); err != nil || len(f.Seed) != ed25519.SeedSize || len(f.Secret) != SecretSize {
		return nil, &detailError{
			msg:      fmt.Sprintf("%s is damaged or is not a fieldsync authority key: restore it from the backup", path),
			sentinel: ErrMalformed,
			cause:    err,
		}
	}
	priv := ed25519.NewKeyFromSeed(f.Seed)
	pub := priv.Public().(ed25519.PublicKey)
	// authority.pub is what gets copied around; catch a mix-up of two
	// deployments' files here rather than as refused devices later.
	pubPath := filepath.Join(dir, AuthorityPubFile)
	if text, err := readFile(pubPath); err == nil {
		if got, err := hex.DecodeString(string(bytes.TrimSpace(text))); err != nil || !pub.Equal(ed25519.PublicKey(got)) {
			return nil, &detailError{
				msg: fmt.Sprintf("%s does not match %s (deployment %s): the files come from different deployments",
					pubPath, path, DeploymentID(pub)),
				sentinel: ErrMalformed,
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load authority: %w", err)
	}
	return &Authority{Private: priv, Public: pub, Secret: f.Secret, sealer: s}, nil
}

// Deployment returns the DeploymentID of this authority.
func (a *Authority) Deployment() string { return DeploymentID(a.Public) }

// Verifier returns a Verifier for this authority's deployment.
func (a *Authority) Verifier() Verifier { return NewVerifier(a.Public) }

// Issue signs a credential binding pub to the device name and role, valid
// from now for validity (0 means [DefaultValidity]; times are truncated to
// whole seconds). It rejects an invalid name ([ErrInvalidName]), an unknown
// role ([ErrUnknownRole]), a public key of the wrong size and a negative or
// sub-second validity.
func (a *Authority) Issue(name string, role Role, pub ed25519.PublicKey, now time.Time, validity time.Duration) (Credential, error) {
	return a.IssueTo(name, "", role, pub, now, validity)
}

// IssueTo is Issue for a device assigned to an officer (empty: none).
func (a *Authority) IssueTo(name, officer string, role Role, pub ed25519.PublicKey, now time.Time, validity time.Duration) (Credential, error) {
	if officer != "" {
		if err := checkName(officer); err != nil {
			return Credential{}, fmt.Errorf("officer: %w", err)
		}
	}
	if err := a.check(); err != nil {
		return Credential{}, fmt.Errorf("issue credential: %w", err)
	}
	if err := checkName(name); err != nil {
		return Credential{}, err
	}
	if !role.Valid() {
		return Credential{}, &detailError{
			msg:      fmt.Sprintf("unknown role %q: valid roles are %s", role, validRoles),
			sentinel: ErrUnknownRole,
		}
	}
	if len(pub) != ed25519.PublicKeySize {
		return Credential{}, fmt.Errorf("issue credential: device public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < time.Second {
		return Credential{}, fmt.Errorf("issue credential: validity %s is not a positive number of seconds", validity)
	}
	issued := now.Unix()
	c := Credential{
		Deployment: DeploymentID(a.Public),
		DeviceID:   DeviceID(pub),
		Name:       name,
		Role:       role,
		PublicKey:  append(ed25519.PublicKey(nil), pub...),
		IssuedAt:   issued,
		Expires:    issued + int64(validity/time.Second),
		Officer:    officer,
	}
	msg, err := c.signedBytes()
	if err != nil {
		return Credential{}, fmt.Errorf("issue credential: %w", err)
	}
	c.Signature = ed25519.Sign(a.Private, msg)
	return c, nil
}

// check verifies the authority's fields are usable, so a hand-built or
// half-filled Authority fails with an error instead of signing garbage.
func (a *Authority) check() error {
	switch {
	case a == nil:
		return errors.New("no authority")
	case len(a.Private) != ed25519.PrivateKeySize:
		return errors.New("authority private key has the wrong size")
	case !a.Public.Equal(a.Private.Public()):
		return errors.New("authority public key does not match its private key")
	}
	return nil
}

// String describes the authority without key material.
func (a Authority) String() string {
	return "authority of deployment " + DeploymentID(a.Public)
}

// Format prints [Authority.String] for every verb, so that no format
// string, %#v included, can print the private key or the secret.
func (a Authority) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// SealAuthorityFiles seals, in place, every secret file of the authority
// directory dir that is still plain (authority.key and the gossip keys), for
// `fieldsync authority encrypt`. Each file is replaced atomically and files
// already sealed are left alone, so a run cut short is finished by running
// it again. It returns how many files it sealed.
func SealAuthorityFiles(dir string, s Sealer) (int, error) {
	if s == nil {
		return 0, errors.New("seal authority files: no key")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (name != AuthorityKeyFile && !(strings.HasPrefix(name, gossipKeyFilePrefix) && strings.HasSuffix(name, ".key"))) {
			continue
		}
		b, err := readFile(filepath.Join(dir, name))
		if err != nil {
			return n, err
		}
		if bytes.HasPrefix(b, []byte(sealedMagic)) {
			continue
		}
		sealed, err := s.Seal(name, b)
		if err != nil {
			return n, err
		}
		if err := replaceFile(dir, name, sealed, privateMode); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
