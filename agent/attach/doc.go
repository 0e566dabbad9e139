// Package attach owns what an attachment is: the kinds a dossier may carry
// (the citizen's face photo, ten fingerprints, scanned documents), the field
// name each is stored under, the media types accepted for each (recognised
// by their magic bytes, never by a name or a client's word), the manifest that
// describes a file, its strict decoder, and the chunker that cuts a file
// into fixed 64 KiB content-addressed chunks while hashing it.
//
// It is pure: no disk, no network, no clock. The store keeps the chunks
// and the manifest op; the agent wires the two together.
//
// # The manifest is a field value
//
// Attaching writes an ordinary signed op of the capturing device on the
// dossier, setting one field: attachment.photo, attachment.document or
// attachment.fingerprint.<finger>. Its value is the manifest, encoded as
// core deterministic CBOR and then base64url (RFC 4648 §5, no padding),
// because field values are UTF-8 strings (crdt.FieldWrite.Value) and every
// replica, the hub and PostgreSQL carry them as text. A later attachment of
// the same kind and finger replaces the earlier one like any field change;
// two made concurrently are both kept, as a conflict of that field.
//
// # Limits
//
// Chunks are [ChunkSize] (64 KiB) bytes, the last one shorter. A manifest
// lists at most [MaxChunks] chunk hashes, so a file is at most [MaxSize]
// bytes and its manifest stays well under crdt.MaxValueBytes once encoded.
// An agent refuses local files over its own, lower limit (20 MiB by
// default, [DefaultMaxBytes]).
package attach
