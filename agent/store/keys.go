package store

import (
	"encoding/binary"
	"strings"

	"github.com/fieldsync/fieldsync/crdt"
)

// Key layout. Every key starts with a one-byte prefix and a '/', so that each
// kind of key is one contiguous range badger can scan. Sequence numbers are 8
// bytes big-endian, so byte order is numeric order. Origin ids never contain
// '/' (PutCredential and Write refuse them), so "o/<origin>/" is a prefix of
// that origin's ops and of nothing else.
//
//	o/<origin>/<seq 8B>  CBOR crdt.Signed: the op envelope exactly as received
//	                     (relays forward it byte for byte)
//	h/<origin>           CBOR crdt.Head: seq and hash of the origin's last op;
//	                     the set of heads is the version vector
//	r/<record id>        CBOR crdt.Record: the merged state of the record
//	x/c/<record id>      empty: the record has a field in conflict (written or
//	                     deleted in the transaction that changes the record)
//	c/<origin>           CBOR {1: ed25519 public key, 2: credential bytes};
//	                     the credential is opaque to the store
//	w/<seq 8B>           record id: a record this device created, by the seq
//	                     of its own KindCreate op (for the "at risk" count)
//	p/<peer device id>   8B: highest seq of this device's own log the peer is
//	                     known to hold
//	k/<origin>/<seq 8B>  record id: a record created by origin's KindCreate op
//	                     seq (every origin), for delivered/undelivered counts
//	R/<hub device id>    the latest receipt signed by that hub (opaque bytes)
//	x/h/<record>/<origin>/<seq 8B>  empty: an op that touched the record
//	x/i/<key>\x00<record>  empty: the record has index key <key> (possible
//	                     duplicates share one; Options.IndexKeys makes them)
//	m/exported           CBOR version vector: ops exported to PostgreSQL
//	m/clock              CBOR crdt.Timestamp: last time issued or observed, so
//	                     the hybrid logical clock survives restarts
//	m/self               this device's own origin id
//	m/records            8B: number of r/ keys, so counting is not a scan
//	m/version            8B: layout version (layoutVersion)
//	q/, V/qh/, m/revocation, m/revocation.at: the quarantine of revoked
//	                     origins and the revocation list (quarantine.go)
//	F/, y/               fork evidence and ops of losing branches (fork.go)
//	a/<sha256 32B>       an attachment chunk's bytes (≤ 64 KiB), keyed by their
//	                     SHA-256: identical chunks are stored once (chunks.go)
//	b/<sha256 32B>       16B: where a chunk received from a peer is kept, in a
//	                     chunk pack (packs.go): pack id 4B, offset 8B,
//	                     record length 4B; a chunk is under a/ or b/
//	u/<sha256 32B>       empty: the chunk a/<sha256> was written by a local
//	                     upload no committed manifest op refers to yet;
//	                     deleted in the manifest op's transaction, and every
//	                     chunk still marked is deleted at Open
//	x/a/<sha256 32B>     the value of an attachment field (its manifest) naming
//	                     the file with this SHA-256; written with the op
//	                     (Options.AttachmentFile)
//	x/at/<sha256 32B>    8B: the wall time (ms) of the op that wrote x/a/, so the
//	                     transfer asks for the oldest files first
//	x/ao/<origin>/<seq 8B>/<field>  file sha256 (32B), the op's wall time (8B)
//	                     and the record id: every manifest op, in log order,
//	                     for a hub to know how far an origin's attachments are
//	                     whole (its receipts' Attached) and a laptop which
//	                     dossiers' attachments are not yet delivered
//	P/<sha256 32B>       empty: the file's chunks were dropped after delivery
//	                     (prune.go); m/pruned, m/pruned.bytes: how far, how much
//	m/attached           a hub's watermark of whole attachments (a version
//	                     vector; SetAttached)
//
// All writes of one op (o/, r/, x/c/, h/, w/, k/, x/h/, x/i/, m/clock,
// m/records) are in one transaction.
const (
	prefixOp       = "o/"
	prefixHead     = "h/"
	prefixRecord   = "r/"
	prefixConflict = "x/c/"
	prefixCred     = "c/"
	prefixOwn      = "w/"
	prefixPeer     = "p/"
	prefixCreate   = "k/"
	prefixReceipt  = "R/"
	prefixHistory  = "x/h/"
	prefixIndex    = "x/i/"
	prefixChunk    = "a/"
	prefixPacked   = "b/"
	prefixUpload   = "u/"
	prefixManifest = "x/a/"
	prefixManTime  = "x/at/"
	prefixManOp    = "x/ao/"
	prefixPruned   = "P/"

	keyClock       = "m/clock"
	keySelf        = "m/self"
	keyRecords     = "m/records"
	keyVersion     = "m/version"
	keyExported    = "m/exported"
	keyAttached    = "m/attached"
	keyPruned      = "m/pruned"
	keyPrunedBytes = "m/pruned.bytes"

	// layoutVersion is stored in m/version; a store written with another
	// layout is refused at Open rather than misread. 2 added the create,
	// history and duplicate indexes (k/, x/h/, x/i/), which a layout-1 store
	// lacks for its existing records.
	layoutVersion = 2
)

func validOrigin(origin string) bool {
	return origin != "" && len(origin) <= crdt.MaxOriginLen && !strings.Contains(origin, "/")
}

func opPrefix(origin string) []byte {
	k := make([]byte, 0, len(prefixOp)+len(origin)+1+8)
	k = append(k, prefixOp...)
	k = append(k, origin...)
	return append(k, '/')
}

func opKey(origin string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(opPrefix(origin), seq)
}

func headKey(origin string) []byte { return []byte(prefixHead + origin) }

func recordKey(id string) []byte { return []byte(prefixRecord + id) }

func conflictKey(id string) []byte { return []byte(prefixConflict + id) }

func credKey(origin string) []byte { return []byte(prefixCred + origin) }

func ownKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixOwn), seq)
}

func peerKey(peer string) []byte { return []byte(prefixPeer + peer) }

func createKey(origin string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixCreate+origin+"/"), seq)
}

func receiptKey(hub string) []byte { return []byte(prefixReceipt + hub) }

func historyKey(record, origin string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixHistory+record+"/"+origin+"/"), seq)
}

func indexKey(key, record string) []byte { return []byte(prefixIndex + key + "\x00" + record) }

func chunkKey(h [32]byte) []byte { return append([]byte(prefixChunk), h[:]...) }

func packedKey(h [32]byte) []byte { return append([]byte(prefixPacked), h[:]...) }

func uploadKey(h [32]byte) []byte { return append([]byte(prefixUpload), h[:]...) }

func manifestKey(file [32]byte) []byte { return append([]byte(prefixManifest), file[:]...) }
func manifestTimeKey(file [32]byte) []byte {
	return append([]byte(prefixManTime), file[:]...)
}

func manifestOpPrefix(origin string) []byte { return []byte(prefixManOp + origin + "/") }

func manifestOpKey(origin string, seq uint64, field string) []byte {
	k := binary.BigEndian.AppendUint64(manifestOpPrefix(origin), seq)
	return append(append(k, '/'), field...)
}

func manifestOpValue(file [32]byte, wall int64, record string) []byte {
	v := append(file[:0:0], file[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(wall))
	return append(v, record...)
}

func prunedKey(file [32]byte) []byte { return append([]byte(prefixPruned), file[:]...) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// readU64 decodes an 8-byte counter; ok is false for any other length.
func readU64(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
