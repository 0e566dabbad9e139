// Package vault owns the data key that encrypts everything fieldsync keeps
// on disk, and the passphrase that unlocks it.
//
// A data directory (and an authority directory) holds vault.cbor: a random
// 32-byte data key, wrapped with XChaCha20-Poly1305 under a key derived from
// the officer's passphrase with argon2id. The argon2id parameters and salt
// are stored in the file, so a vault made with other parameters still opens,
// and changing the passphrase ([Rewrap]) rewrites only this small file: the
// store and the key files stay as they are.
//
// # vault.cbor
//
// A CBOR map with small integer keys:
//
//	1 version (1)   2 kdf ("argon2id")   3 salt (16 bytes)   4 time (passes)
//	5 memory (KiB)  6 threads            7 nonce (24 bytes)  8 wrapped key (48 bytes)
//
// The wrapped key is the AEAD seal of the data key; its associated data is
// "fieldsync vault v1" and keys 1 to 6, so a file whose parameters were
// edited (to make a guess cheaper, say) fails to open like a wrong
// passphrase. A wrong passphrase and a damaged wrapped key cannot be told
// apart; both return [ErrWrongPassphrase].
//
// # Keys derived from the data key
//
// The data key is never used directly. HKDF-SHA256 derives one key per use:
// "fieldsync files v1" for sealed files ([Key.Seal]), "fieldsync store v1"
// for the badger store ([Key.StoreKey], AES-256).
//
// # Sealed files
//
// A sealed file is the 8 bytes "FSSEAL1\x00", a 24-byte random nonce and the
// XChaCha20-Poly1305 ciphertext with its 16-byte tag. The associated data is
// "fieldsync sealed v1\x00" followed by the file's name, so a sealed
// device.key copied over deployment.cbor (or a file of another device) fails
// to open instead of being read as the other file.
//
// # Parameters
//
// [DefaultParams] (128 MiB, 10 passes, 4 lanes) take about half a second on
// the development machine and more on a field laptop. Tests start dozens of
// agents and cannot pay that each time: [ParamsFromEnv] returns the weak
// [TestParams] when FIELDSYNC_KDF=test, at creation time only. An agent
// whose vault has parameters below the default logs a warning at start
// ([Params.Weak]). Never set FIELDSYNC_KDF on a real laptop.
package vault
