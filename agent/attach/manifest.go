package attach

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/fieldsync/fieldsync/crdt"
)

const (
	// Version is the manifest format written and the only one read.
	Version = 1
	// ChunkSize is the size of every chunk but a file's last: 64 KiB. A
	// face photo of ~300 KB is five chunks, a fingerprint template of
	// ~20 KB one, so the per-chunk costs (a 32-byte hash in the manifest,
	// a key in the store, a frame on the wire) stay small; and a transfer
	// cut on a 3G link loses at most 64 KiB, about half a second at
	// 1 Mbit/s. It is a value badger keeps in its value log, well under
	// its value size limit.
	ChunkSize = 64 << 10
	// MaxChunks bounds the chunk hashes of one manifest: 1024 hashes are
	// 32 KiB, about 44 KiB once encoded, under crdt.MaxValueBytes (64 KiB).
	MaxChunks = 1024
	// MaxSize is the largest file a manifest can describe: 64 MiB.
	MaxSize = MaxChunks * ChunkSize
	// DefaultMaxBytes is an agent's default limit on files attached
	// through it: 20 MiB, far above a face photo (~300 KB) or a ten-print
	// set, room for a multi-page scanned document.
	DefaultMaxBytes = 20 << 20
)

// Hash is a SHA-256 digest: of a chunk, or of a whole file.
type Hash = [32]byte

// Manifest describes one attached file. It is the value of the dossier's
// attachment field, signed with the op that sets it.
type Manifest struct {
	Kind      Kind
	Finger    string // fingerprints only
	MediaType string // detected from the magic bytes
	Size      int64  // bytes, 1..MaxSize
	ChunkSize int    // always ChunkSize
	Chunks    []Hash // SHA-256 of each chunk, in order
	SHA256    Hash   // of the whole file
}

// Field is the dossier field the manifest is stored under.
func (m Manifest) Field() string { return FieldName(m.Kind, m.Finger) }

// SHA256Hex is the whole file's hash in lower-case hex, as the API shows it.
func (m Manifest) SHA256Hex() string { return hex.EncodeToString(m.SHA256[:]) }

// wire is the manifest's CBOR shape: integer keys, the chunk hashes as one
// byte string of 32 bytes each.
type wire struct {
	Version   uint64 `cbor:"1,keyasint"`
	Kind      string `cbor:"2,keyasint"`
	Finger    string `cbor:"3,keyasint,omitempty"`
	MediaType string `cbor:"4,keyasint"`
	Size      uint64 `cbor:"5,keyasint"`
	ChunkSize uint64 `cbor:"6,keyasint"`
	Chunks    []byte `cbor:"7,keyasint"`
	SHA256    []byte `cbor:"8,keyasint"`
}

// Encode returns the manifest's canonical CBOR. The manifest must be valid.
func (m Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := wire{
		Version: Version, Kind: string(m.Kind), Finger: m.Finger, MediaType: m.MediaType,
		Size: uint64(m.Size), ChunkSize: uint64(m.ChunkSize),
		Chunks: make([]byte, 0, len(m.Chunks)*32), SHA256: m.SHA256[:],
	}
	for _, h := range m.Chunks {
		w.Chunks = append(w.Chunks, h[:]...)
	}
	return crdt.Marshal(w)
}

// FieldValue is the manifest as the value of its field: base64url of its
// canonical CBOR.
func (m Manifest) FieldValue() (string, error) {
	b, err := m.Encode()
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode parses a manifest received from anywhere: strict CBOR in its
// canonical encoding only (so one manifest has one encoding), then
// Validate. Errors are *Error of CodeManifest.
func Decode(b []byte) (Manifest, error) {
	if len(b) > crdt.MaxValueBytes {
		return Manifest{}, malformed("%d bytes", len(b))
	}
	var w wire
	if err := crdt.Unmarshal(b, &w); err != nil {
		return Manifest{}, malformed("not CBOR of a manifest")
	}
	if canon, err := crdt.Marshal(w); err != nil || !bytes.Equal(canon, b) {
		return Manifest{}, malformed("not in canonical encoding")
	}
	if w.Version != Version {
		return Manifest{}, malformed("version %d, this build reads %d", w.Version, Version)
	}
	if len(w.Chunks)%32 != 0 || len(w.SHA256) != 32 {
		return Manifest{}, malformed("hashes are not 32 bytes each")
	}
	if w.Size > MaxSize || w.ChunkSize > MaxSize {
		return Manifest{}, malformed("size %d over the limit of %d bytes", w.Size, MaxSize)
	}
	m := Manifest{Kind: Kind(w.Kind), Finger: w.Finger, MediaType: w.MediaType,
		Size: int64(w.Size), ChunkSize: int(w.ChunkSize), Chunks: make([]Hash, len(w.Chunks)/32)}
	for i := range m.Chunks {
		copy(m.Chunks[i][:], w.Chunks[i*32:])
	}
	copy(m.SHA256[:], w.SHA256)
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// DecodeFieldValue decodes a manifest from its field value: strict
// base64url without padding, then Decode.
func DecodeFieldValue(v string) (Manifest, error) {
	if len(v) > crdt.MaxValueBytes {
		return Manifest{}, malformed("value of %d bytes", len(v))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil {
		return Manifest{}, malformed("not base64url")
	}
	return Decode(b)
}

// Validate checks that a manifest can describe a real file: kind and finger,
// a media type the kind accepts, a size of 1..MaxSize, ChunkSize, exactly as
// many chunk hashes as the size needs and no hash twice.
func (m Manifest) Validate() error {
	if err := CheckKind(m.Kind, m.Finger); err != nil {
		return malformed("%s", Refusal(err).En)
	}
	switch {
	case !Accepts(m.Kind, m.MediaType):
		return malformed("media type %q is not one a %s may have", clip(m.MediaType), m.Kind)
	case m.Size <= 0 || m.Size > MaxSize:
		return malformed("size %d, want 1 to %d bytes", m.Size, MaxSize)
	case m.ChunkSize != ChunkSize:
		return malformed("chunk size %d, want %d", m.ChunkSize, ChunkSize)
	case int64(len(m.Chunks)) != (m.Size+ChunkSize-1)/ChunkSize:
		return malformed("%d chunk hashes for %d bytes", len(m.Chunks), m.Size)
	}
	seen := make(map[Hash]struct{}, len(m.Chunks))
	for _, h := range m.Chunks {
		if _, dup := seen[h]; dup {
			return malformed("a chunk hash is listed twice")
		}
		seen[h] = struct{}{}
	}
	return nil
}

// ChunkLen is the size of chunk i of the manifest's file.
func (m Manifest) ChunkLen(i int) int {
	if i == len(m.Chunks)-1 {
		return int(m.Size - int64(i)*ChunkSize)
	}
	return ChunkSize
}

func malformed(format string, args ...any) *Error {
	en := "malformed attachment manifest: " + fmt.Sprintf(format, args...)
	return newError(CodeManifest, en, "bản kê tệp đính kèm không hợp lệ")
}
