package vault

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// sealMagic starts every sealed file.
const sealMagic = "FSSEAL1\x00"

// SealedOverhead is how many bytes sealing adds to a file.
const SealedOverhead = len(sealMagic) + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// IsSealed reports whether data starts like a sealed file. It says nothing
// about whether it opens.
func IsSealed(data []byte) bool { return bytes.HasPrefix(data, []byte(sealMagic)) }

func sealAD(name string) []byte { return append([]byte("fieldsync sealed v1\x00"), name...) }

// Seal encrypts plaintext as the content of the file called name (its base
// name, e.g. "device.key"): the result opens only under this key and only
// under that name.
func (k *Key) Seal(name string, plaintext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.files)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(sealMagic)+chacha20poly1305.NonceSizeX, SealedOverhead+len(plaintext))
	copy(out, sealMagic)
	nonce := out[len(sealMagic):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return aead.Seal(out, nonce, plaintext, sealAD(name)), nil
}

// Open decrypts a file sealed by [Key.Seal] under name. Anything else (a
// plain file, a truncated or altered one, one of another name or key)
// returns an error wrapping [ErrSealed]. The returned slice is the
// caller's.
func (k *Key) Open(name string, sealed []byte) ([]byte, error) {
	return OpenSealed(k.files, name, sealed)
}

// OpenSealed is [Key.Open] with the derived file key given directly; it
// exists for the fuzz test, which has no vault.
func OpenSealed(fileKey []byte, name string, sealed []byte) ([]byte, error) {
	if !IsSealed(sealed) || len(sealed) < SealedOverhead {
		return nil, fmt.Errorf("%s: not a sealed file: %w", name, ErrSealed)
	}
	aead, err := chacha20poly1305.NewX(fileKey)
	if err != nil {
		return nil, err
	}
	rest := sealed[len(sealMagic):]
	nonce, ct := rest[:chacha20poly1305.NonceSizeX], rest[chacha20poly1305.NonceSizeX:]
	pt, err := aead.Open(nil, nonce, ct, sealAD(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrSealed)
	}
	return pt, nil
}
