// Package identity owns the deployment's trust: the authority key that
// defines a deployment, the device keys, the credentials the authority
// issues to devices, and the checks that decide whether a peer belongs.
//
// A deployment is one authority key pair plus a 32-byte random deployment
// secret. The authority signs a [Credential] for each device: it binds the
// device's ed25519 public key to a human name and a [Role] for a validity
// window. Any device holding the authority public key can check any other
// device's credential offline with a [Verifier]; no server is involved, which
// is what laptops that stay offline for days need.
//
// # Identifiers
//
//   - [DeviceID]: lowercase base32 (no padding) of the first 16 bytes of
//     SHA-256(device public key), 26 characters.
//   - [DeploymentID]: lowercase hex of the first 8 bytes of
//     SHA-256(authority public key), 16 characters.
//
// # Credential encoding
//
// A credential is a CBOR map with small integer keys, encoded with the core
// deterministic encoding (RFC 8949 §4.2.1) so that its bytes are unique:
//
//	1 deployment (text)   2 device id (text)   3 name (text)   4 role (text)
//	5 public key (bytes)  6 issued at (int)    7 expires (int) 8 signature (bytes)
//
// The signature is the authority's ed25519 signature over
// "fieldsync credential v1\x00" followed by the deterministic CBOR of keys 1
// to 7 (the same map without key 8). The prefix separates credential
// signatures from anything else the authority key might ever sign.
// [UnmarshalCredential] accepts only the exact bytes [Credential.Marshal]
// produces: unknown keys, duplicate keys, indefinite lengths, tags and
// non-canonical forms are rejected as [ErrMalformed], so one credential has
// one encoding.
//
// # Files
//
// The authority directory holds authority.key (0600, CBOR {1: ed25519 seed,
// 2: deployment secret}) and authority.pub (0644, hex of the public key and a
// newline). A device's data directory holds device.key (0600, CBOR {1: ed25519
// seed}), credential.cbor (0644, the marshalled credential) and deployment.cbor
// (0600, CBOR {1: authority public key, 2: deployment secret}). Every file is
// written atomically (temporary file, fsync, rename, fsync of the directory),
// and the two private key files are created with a hard link so that an
// existing key is never replaced, even by a concurrent run: replacing an
// authority key orphans every device of the deployment, and replacing a device
// key forks that laptop's op log.
//
// # Secrets
//
// Nothing in this package logs. [Authority] and [Device] format themselves
// without key material, so an accidental fmt.Print of either prints no secret.
// The memberlist gossip key is derived from the deployment secret with HKDF
// ([Device.GossipKey]); it only protects gossip hints, because every device of
// the deployment holds it.
package identity
