package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/chacha20poly1305"
)

// The gossip key changes with every revocation list so that a revoked
// laptop, which still holds the deployment secret, can neither read nor
// forge the team's gossip once the overlap ends. The authority makes a
// random key for the list's epoch and seals it to each remaining device's
// own ed25519 key, converted to X25519 the way age and libsodium do
// (crypto_sign_ed25519_pk_to_curve25519), so no new key has to be handed
// out: an ephemeral X25519 key per device, HKDF-SHA256 over the shared
// secret, and ChaCha20-Poly1305 around the 32-byte gossip key.

// gossipSealInfo is the HKDF info prefix of a sealed gossip key; the
// deployment, epoch and device id follow, so that a box opens only for the
// device, list and deployment it was made for.
const gossipSealInfo = "fieldsync gossip key v1\x00"

// GossipKeyFile is the current gossip key in the authority directory (0600),
// kept so that `device init` can seal it to devices issued after the list;
// GossipGrantFile is that grant in a new device's data directory.
const (
	gossipKeyFilePrefix = "gossip-"
	GossipGrantFile     = "gossip.cbor"
)

// ErrNoGossipGrant means a grant holds no key sealed to this device.
var ErrNoGossipGrant = errors.New("no gossip key sealed to this device (không có khóa gossip cho máy này)")

// SealGossipKey seals key (GossipKeySize bytes) for epoch to each device in
// to, sorted by device id as a list requires. random nil means crypto/rand.
func SealGossipKey(key []byte, epoch uint64, deployment string, to []Credential, random io.Reader) (*GossipGrant, error) {
	if len(key) != GossipKeySize {
		return nil, fmt.Errorf("seal gossip key: key is %d bytes, want %d", len(key), GossipKeySize)
	}
	if random == nil {
		random = rand.Reader
	}
	g := &GossipGrant{Epoch: epoch, Sealed: make([]SealedKey, 0, len(to))}
	seen := make(map[string]bool, len(to))
	for _, c := range to {
		if seen[c.DeviceID] {
			continue
		}
		seen[c.DeviceID] = true
		s, err := sealTo(key, epoch, deployment, c, random)
		if err != nil {
			return nil, err
		}
		g.Sealed = append(g.Sealed, s)
	}
	sortSealed(g.Sealed)
	return g, nil
}

func sealTo(key []byte, epoch uint64, deployment string, c Credential, random io.Reader) (SealedKey, error) {
	devX, err := x25519Public(c.PublicKey)
	if err != nil {
		return SealedKey{}, fmt.Errorf("seal gossip key to %s: %w", c.DeviceID, err)
	}
	var seed [32]byte
	if _, err := io.ReadFull(random, seed[:]); err != nil {
		return SealedKey{}, fmt.Errorf("seal gossip key: random: %w", err)
	}
	eph, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return SealedKey{}, err
	}
	shared, err := eph.ECDH(devX)
	if err != nil {
		return SealedKey{}, fmt.Errorf("seal gossip key to %s: %w", c.DeviceID, err)
	}
	aead, err := gossipBox(shared, eph.PublicKey().Bytes(), devX.Bytes(), epoch, deployment, c.DeviceID)
	if err != nil {
		return SealedKey{}, err
	}
	// A zero nonce is safe: the box key is fresh for every seal (a new
	// ephemeral key), so it encrypts exactly one message.
	nonce := make([]byte, chacha20poly1305.NonceSize)
	return SealedKey{DeviceID: c.DeviceID, Ephemeral: eph.PublicKey().Bytes(), Box: aead.Seal(nil, nonce, key, nil)}, nil
}

// OpenGossipKey opens the key g holds for this device. It returns an error
// wrapping [ErrNoGossipGrant] when g has nothing for it, and another error
// when the box does not open (a damaged or forged grant).
func (d *Device) OpenGossipKey(g *GossipGrant) ([]byte, error) {
	if g == nil {
		return nil, ErrNoGossipGrant
	}
	id := d.ID()
	var s *SealedKey
	for i := range g.Sealed {
		if g.Sealed[i].DeviceID == id {
			s = &g.Sealed[i]
		}
	}
	if s == nil {
		return nil, ErrNoGossipGrant
	}
	if len(d.Private) != ed25519.PrivateKeySize {
		return nil, errors.New("open gossip key: the device holds no private key")
	}
	priv, err := x25519Private(d.Private)
	if err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().NewPublicKey(s.Ephemeral)
	if err != nil {
		return nil, fmt.Errorf("open gossip key of epoch %d: %w", g.Epoch, err)
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		return nil, fmt.Errorf("open gossip key of epoch %d: %w", g.Epoch, err)
	}
	aead, err := gossipBox(shared, s.Ephemeral, priv.PublicKey().Bytes(), g.Epoch, DeploymentID(d.AuthorityPublic), id)
	if err != nil {
		return nil, err
	}
	key, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), s.Box, nil)
	if err != nil {
		return nil, fmt.Errorf("open gossip key of epoch %d: the sealed key does not open for this device (khóa gossip không mở được): damaged or not made for it", g.Epoch)
	}
	return key, nil
}

func gossipBox(shared, ephPub, devPub []byte, epoch uint64, deployment, deviceID string) (interface {
	Seal(dst, nonce, plaintext, additional []byte) []byte
	Open(dst, nonce, ciphertext, additional []byte) ([]byte, error)
}, error) {
	salt := append(append([]byte{}, ephPub...), devPub...)
	info := gossipSealInfo + deployment + "\x00" + string(binary.BigEndian.AppendUint64(nil, epoch)) + deviceID
	k, err := hkdf.Key(sha256.New, shared, salt, info, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(k)
}

// x25519Public converts an ed25519 public key to its X25519 (Montgomery)
// form.
func x25519Public(pub ed25519.PublicKey) (*ecdh.PublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("not an ed25519 public key")
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("not an ed25519 public key: %w", err)
	}
	return ecdh.X25519().NewPublicKey(p.BytesMontgomery())
}

// x25519Private converts an ed25519 private key to the X25519 key of the
// same point: the clamped first half of SHA-512(seed), as ed25519 itself
// derives its scalar (X25519 clamps on use).
func x25519Private(priv ed25519.PrivateKey) (*ecdh.PrivateKey, error) {
	h := sha512.Sum512(priv.Seed())
	return ecdh.X25519().NewPrivateKey(h[:32])
}

// gossipKeyFile names the authority's key file of epoch.
func gossipKeyFile(epoch uint64) string {
	return gossipKeyFilePrefix + strconv.FormatUint(epoch, 10) + ".key"
}

// GossipSealer returns the seal function [Authority.Revoke] takes: it makes
// a random key for the list's epoch, keeps it in dir (0600) before the list
// is written, so that devices issued later can be given it, and seals it to
// every remaining device.
func (a *Authority) GossipSealer(dir string, random io.Reader) func([]Credential, uint64) (*GossipGrant, error) {
	if random == nil {
		random = rand.Reader
	}
	return func(remaining []Credential, epoch uint64) (*GossipGrant, error) {
		key := make([]byte, GossipKeySize)
		if _, err := io.ReadFull(random, key); err != nil {
			return nil, fmt.Errorf("new gossip key: %w", err)
		}
		sealed, err := sealSecret(a.sealer, gossipKeyFile(epoch), key)
		if err != nil {
			return nil, err
		}
		if err := replaceFile(dir, gossipKeyFile(epoch), sealed, 0o600); err != nil {
			return nil, fmt.Errorf("keep the new gossip key: %w", err)
		}
		return SealGossipKey(key, epoch, a.Deployment(), remaining, random)
	}
}

// GrantCurrentGossipKey seals the gossip key of dir's newest revocation list
// to c, for a device issued after that list. It returns nil, nil when no
// list has changed the key yet.
func (a *Authority) GrantCurrentGossipKey(dir string, c Credential) (*GossipGrant, error) {
	_, list, err := a.LastRevocation(dir)
	if err != nil || list == nil || list.Gossip == nil {
		return nil, err
	}
	path := filepath.Join(dir, gossipKeyFile(list.Gossip.Epoch))
	key, err := readFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the gossip key of revocation list %d is missing from %s (%s): revoke again to make a new one (thiếu khóa gossip)",
			list.Number, dir, gossipKeyFile(list.Gossip.Epoch))
	}
	if err != nil {
		return nil, err
	}
	if key, err = openSecret(a.sealer, path, key); err != nil {
		return nil, err
	}
	return SealGossipKey(key, list.Gossip.Epoch, a.Deployment(), []Credential{c}, nil)
}

// MarshalGossipGrant encodes a grant for a data directory's gossip.cbor.
func MarshalGossipGrant(g *GossipGrant) ([]byte, error) { return encMode.Marshal(g) }

// LoadGossipGrant reads dataDir's gossip.cbor: the gossip key the authority
// sealed to this device when it was issued after a revocation. It returns
// nil, nil when there is none.
func LoadGossipGrant(dataDir string) (*GossipGrant, error) {
	raw, err := readFile(filepath.Join(dataDir, GossipGrantFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var g GossipGrant
	if err := revDecMode.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", GossipGrantFile, err)
	}
	return &g, nil
}

func sortSealed(s []SealedKey) {
	slices.SortFunc(s, func(x, y SealedKey) int { return strings.Compare(x.DeviceID, y.DeviceID) })
}

// HandOverRevocations gives a device issued after a revocation what the
// team already has: the authority's newest list (revocations.cbor in the
// data directory, installed by the agent at its first start) and the
// current gossip key sealed to the device (gossip.cbor). Without them the
// new laptop would trust the revoked one until a peer passed the list on,
// and could not join the team's gossip at all. It does nothing before any
// revocation.
func (a *Authority) HandOverRevocations(authDir, dataDir string, c Credential) error {
	raw, list, err := a.LastRevocation(authDir)
	if err != nil || list == nil {
		return err
	}
	if err := replaceFile(dataDir, RevocationsFile, raw, publicMode); err != nil {
		return fmt.Errorf("hand over revocation list %d: %w", list.Number, err)
	}
	g, err := a.GrantCurrentGossipKey(authDir, c)
	if err != nil || g == nil {
		return err
	}
	enc, err := MarshalGossipGrant(g)
	if err != nil {
		return err
	}
	return replaceFile(dataDir, GossipGrantFile, enc, 0o600)
}
