package vault

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// FileName is the vault's file name in a data or authority directory.
const FileName = "vault.cbor"

// KeySize is the size of the data key and of every key derived from it.
const KeySize = 32

const (
	version  = 1
	kdfName  = "argon2id"
	saltSize = 16
	// maxFileSize bounds how much of vault.cbor is read.
	maxFileSize = 1024
)

// Params are the argon2id parameters of a vault.
type Params struct {
	// Time is the number of passes over the memory.
	Time uint32
	// MemoryKiB is the memory used, in KiB.
	MemoryKiB uint32
	// Threads is the number of lanes (argon2's parallelism).
	Threads uint8
}

// DefaultParams are the parameters of every vault made outside tests:
// 128 MiB, 10 passes, 4 lanes. About 0.5 s on the development machine (a
// 2-core x86-64 server) and more on a field laptop: slow enough that
// guessing passphrases of a stolen laptop costs real hardware, fast enough
// for an agent start. Memory is the hard part for a guesser's GPU; 128 MiB
// is held only while the key is derived and returned to the OS after.
func DefaultParams() Params { return Params{Time: 10, MemoryKiB: 128 << 10, Threads: 4} }

// TestParams are deliberately weak parameters (256 KiB, 1 pass) for tests
// that start many agents. Only [ParamsFromEnv] hands them out.
func TestParams() Params { return Params{Time: 1, MemoryKiB: 256, Threads: 1} }

// KDFEnv is the environment variable that selects [TestParams] when a vault
// is created. Test-only: never set it on a real laptop.
const KDFEnv = "FIELDSYNC_KDF"

// ParamsFromEnv returns the parameters for a new vault: [TestParams] if
// FIELDSYNC_KDF is "test", else [DefaultParams].
func ParamsFromEnv() Params {
	if os.Getenv(KDFEnv) == "test" {
		return TestParams()
	}
	return DefaultParams()
}

// Weak reports whether p costs less than [DefaultParams] in memory or time.
func (p Params) Weak() bool {
	d := DefaultParams()
	return p.MemoryKiB < d.MemoryKiB || p.Time < d.Time
}

// String describes p for logs.
func (p Params) String() string {
	return fmt.Sprintf("argon2id t=%d m=%dKiB p=%d", p.Time, p.MemoryKiB, p.Threads)
}

func (p Params) check() error {
	switch {
	case p.Time < 1 || p.Time > 1000:
		return fmt.Errorf("argon2id time %d out of range", p.Time)
	case p.Threads < 1 || p.Threads > 64:
		return fmt.Errorf("argon2id threads %d out of range", p.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 4<<20:
		// The upper bound (4 GiB) keeps a crafted vault file from making
		// the agent allocate without limit.
		return fmt.Errorf("argon2id memory %d KiB out of range", p.MemoryKiB)
	}
	return nil
}

// file is the CBOR content of vault.cbor.
type file struct {
	Version uint32 `cbor:"1,keyasint"`
	KDF     string `cbor:"2,keyasint"`
	Salt    []byte `cbor:"3,keyasint"`
	Time    uint32 `cbor:"4,keyasint"`
	Memory  uint32 `cbor:"5,keyasint"`
	Threads uint8  `cbor:"6,keyasint"`
	Nonce   []byte `cbor:"7,keyasint"`
	Wrapped []byte `cbor:"8,keyasint"`
}

func (f *file) params() Params { return Params{Time: f.Time, MemoryKiB: f.Memory, Threads: f.Threads} }

// ad is the associated data of the wrapped key: every field but the nonce
// and the key itself.
func (f *file) ad() []byte {
	return fmt.Appendf(nil, "fieldsync vault v1\x00%d\x00%s\x00%x\x00%d\x00%d\x00%d", f.Version, f.KDF, f.Salt, f.Time, f.Memory, f.Threads)
}

var (
	encMode, _ = cbor.CoreDetEncOptions().EncMode()
	decMode, _ = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
	}.DecMode()
)

// Key is an unlocked data key. It formats itself without key material.
type Key struct {
	data   []byte
	params Params
	files  []byte // HKDF "fieldsync files v1"
}

func newKey(data []byte, p Params) (*Key, error) {
	files, err := hkdf.Key(sha256.New, data, nil, "fieldsync files v1", KeySize)
	if err != nil {
		return nil, err
	}
	return &Key{data: data, params: p, files: files}, nil
}

// Params returns the argon2id parameters the vault was wrapped with.
func (k *Key) Params() Params { return k.params }

// StoreKey returns the 32-byte key the badger store is encrypted with
// (AES-256), derived from the data key. The slice is the caller's.
func (k *Key) StoreKey() []byte {
	b, err := hkdf.Key(sha256.New, k.data, nil, "fieldsync store v1", KeySize)
	if err != nil {
		panic(err) // only for an impossible length
	}
	return b
}

// String describes the key without key material.
func (k Key) String() string { return "vault key (" + k.params.String() + ")" }

// Format prints [Key.String] for every verb.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// Create makes a new vault in dir (which must exist): a random data key
// wrapped under passphrase with p. It refuses to replace an existing vault
// ([ErrExists]): the data it encrypts would be lost for good.
func Create(dir string, passphrase []byte, p Params) (*Key, error) {
	if len(passphrase) == 0 {
		return nil, ErrNoPassphrase
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, FileName)); err == nil {
		return nil, fmt.Errorf("%s in %s: %w", FileName, dir, ErrExists)
	}
	data := make([]byte, KeySize)
	if _, err := rand.Read(data); err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	enc, err := wrap(data, passphrase, p)
	if err != nil {
		return nil, err
	}
	if err := writeFile(dir, FileName, enc, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s in %s: %w", FileName, dir, ErrExists)
		}
		return nil, fmt.Errorf("create vault: %w", err)
	}
	return newKey(data, p)
}

// Exists reports whether dir holds a vault.
func Exists(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, FileName))
	return err == nil
}

// Open unlocks the vault in dir with passphrase. A missing vault returns
// [ErrNotFound]; a wrong passphrase [ErrWrongPassphrase]. It changes
// nothing on disk.
func Open(dir string, passphrase []byte) (*Key, error) {
	path := filepath.Join(dir, FileName)
	f, err := readVault(path)
	if err != nil {
		return nil, err
	}
	data, err := f.unwrap(passphrase)
	if err != nil {
		return nil, err
	}
	return newKey(data, f.params())
}

// ReadParams returns the parameters of the vault in dir without unlocking
// it.
func ReadParams(dir string) (Params, error) {
	f, err := readVault(filepath.Join(dir, FileName))
	if err != nil {
		return Params{}, err
	}
	return f.params(), nil
}

// Rewrap changes the passphrase of the vault in dir: the same data key is
// wrapped under newPass with p and replaces vault.cbor atomically (after a
// crash the file holds the old or the new wrapping, never neither). A wrong
// oldPass returns [ErrWrongPassphrase] and changes nothing.
func Rewrap(dir string, oldPass, newPass []byte, p Params) (*Key, error) {
	if len(newPass) == 0 {
		return nil, ErrNoPassphrase
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("change passphrase: %w", err)
	}
	k, err := Open(dir, oldPass)
	if err != nil {
		return nil, err
	}
	enc, err := wrap(k.data, newPass, p)
	if err != nil {
		return nil, err
	}
	if err := writeFile(dir, FileName, enc, false); err != nil {
		return nil, fmt.Errorf("change passphrase: %w", err)
	}
	return newKey(k.data, p)
}

func readVault(path string) (*file, error) {
	b, err := readLimited(path, maxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var f file
	if err := decMode.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrMalformed, err)
	}
	if f.Version != version || f.KDF != kdfName || len(f.Salt) != saltSize ||
		len(f.Nonce) != chacha20poly1305.NonceSizeX || len(f.Wrapped) != KeySize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%s: %w", path, ErrMalformed)
	}
	if err := f.params().check(); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrMalformed, err)
	}
	return &f, nil
}

// derive runs argon2id and hands the work memory back to the OS: on a
// laptop the agent's own memory is far below the KDF's.
func derive(passphrase, salt []byte, p Params) []byte {
	k := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	debug.FreeOSMemory()
	return k
}

func wrap(data, passphrase []byte, p Params) ([]byte, error) {
	f := file{Version: version, KDF: kdfName, Salt: make([]byte, saltSize), Time: p.Time, Memory: p.MemoryKiB, Threads: p.Threads,
		Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
	if _, err := rand.Read(f.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(f.Nonce); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(derive(passphrase, f.Salt, p))
	if err != nil {
		return nil, err
	}
	f.Wrapped = aead.Seal(nil, f.Nonce, data, f.ad())
	return encMode.Marshal(f)
}

func (f *file) unwrap(passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, ErrNoPassphrase
	}
	aead, err := chacha20poly1305.NewX(derive(passphrase, f.Salt, f.params()))
	if err != nil {
		return nil, err
	}
	data, err := aead.Open(nil, f.Nonce, f.Wrapped, f.ad())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return data, nil
}
