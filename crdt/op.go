package crdt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Kind says what an op does to its record.
type Kind uint8

const (
	// KindCreate starts a record: the first op of a dossier captured on a device.
	KindCreate Kind = 1
	// KindUpdate changes some fields of a record.
	KindUpdate Kind = 2
	// KindResolve settles field conflicts: each field write supersedes
	// exactly the values the admin saw.
	KindResolve Kind = 3
	// KindMerge writes, on the surviving record of a duplicate pair, the
	// values the admin chose, and notes the merged record.
	KindMerge Kind = 4
	// KindRetire marks a record as merged into another (system field
	// FieldRetiredInto). Its later edits are kept, not lost.
	KindRetire Kind = 5
	// KindDistinct marks two records as different people (system field
	// DistinctPrefix+other id), so they stop being flagged as duplicates.
	KindDistinct Kind = 6
)

// System fields: names starting with "_" are written only by settling ops,
// never by input.
const (
	FieldRetiredInto = "_retired_into"
	MergedPrefix     = "_merged_from."
	DistinctPrefix   = "_distinct."
)

// Settles reports whether the op settles something an admin decides: a
// settling kind, a write of a system field, or any field write superseding
// more than one value (which could silently settle a conflict: replicas
// cannot tell from the op whether those values agreed, so an ordinary edit
// never supersedes more than one). Only devices allowed to settle may write
// such ops; every replica refuses them from any other device.
func (o *Op) Settles() bool {
	if o.Kind >= KindResolve {
		return true
	}
	for name, w := range o.Fields {
		if len(w.Seen) > 1 || strings.HasPrefix(name, "_") {
			return true
		}
	}
	return false
}

func (k Kind) String() string {
	switch k {
	case KindCreate:
		return "create"
	case KindUpdate:
		return "update"
	case KindResolve:
		return "resolve"
	case KindMerge:
		return "merge"
	case KindRetire:
		return "retire"
	case KindDistinct:
		return "distinct"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FieldWrite is one field set by an op: the new value, and the dots of the
// values of that field the writer had seen (and so supersedes).
type FieldWrite struct {
	Value string `cbor:"1,keyasint"`
	Seen  []Dot  `cbor:"2,keyasint,omitempty"`
}

// Op is one change made by one device. Its encoding (Body) is deterministic
// CBOR, hashed for the chain and signed by the origin.
type Op struct {
	Origin string                `cbor:"1,keyasint"`
	Seq    uint64                `cbor:"2,keyasint"`
	Prev   []byte                `cbor:"3,keyasint,omitempty"` // SHA-256 of the origin's previous op body; empty for seq 1
	Time   Timestamp             `cbor:"4,keyasint"`
	Record string                `cbor:"5,keyasint"`
	Kind   Kind                  `cbor:"6,keyasint"`
	Fields map[string]FieldWrite `cbor:"7,keyasint"`
}

// Dot is the op's own name.
func (o *Op) Dot() Dot { return Dot{Origin: o.Origin, Seq: o.Seq} }

// Limits on a decoded op. They bound what a peer can make a replica allocate
// and keep one op well under a sync batch.
const (
	MaxOriginLen    = 64
	MaxRecordIDLen  = 64
	MaxFields       = 256
	MaxFieldName    = 64
	MaxValueBytes   = 64 << 10
	MaxSeenPerField = 1024
	MaxBodyBytes    = 1 << 20
	HashSize        = sha256.Size
)

// Errors returned when decoding or verifying ops.
var (
	// ErrMalformed: the bytes are not a well-formed op.
	ErrMalformed = errors.New("malformed op")
	// ErrChain: an op does not link to its origin's previous op (wrong seq or
	// wrong previous hash): a gap, a fork, or an altered op.
	ErrChain = errors.New("op does not link to its origin's log")
	// ErrSignature: the origin's signature does not verify.
	ErrSignature = errors.New("op signature does not verify")
)

var (
	encModeOnce sync.Once
	encMode     cbor.EncMode
	decMode     cbor.DecMode
)

func modes() (cbor.EncMode, cbor.DecMode) {
	encModeOnce.Do(func() {
		var err error
		encMode, err = cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err) // static options: cannot fail
		}
		decMode, err = cbor.DecOptions{
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			MaxArrayElements: 1 << 16,
			MaxMapPairs:      1 << 16,
			MaxNestedLevels:  16,
			IndefLength:      cbor.IndefLengthForbidden,
			UTF8:             cbor.UTF8RejectInvalid,
		}.DecMode()
		if err != nil {
			panic(err)
		}
	})
	return encMode, decMode
}

// Marshal encodes v as deterministic (core deterministic) CBOR.
func Marshal(v any) ([]byte, error) {
	enc, _ := modes()
	return enc.Marshal(v)
}

// Unmarshal decodes CBOR strictly (no duplicate map keys, no indefinite
// lengths, valid UTF-8, bounded sizes). Safe on untrusted input.
func Unmarshal(data []byte, v any) error {
	_, dec := modes()
	return dec.Unmarshal(data, v)
}

// EncodeOp returns the op's body: the deterministic CBOR the hash chain and
// the signature cover.
func EncodeOp(o *Op) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return Marshal(o)
}

// DecodeOp parses and validates an op body received from anywhere.
func DecodeOp(body []byte) (*Op, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrMalformed, len(body))
	}
	var o Op
	if err := Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// Only the canonical encoding is accepted, so that two byte strings never
	// stand for one op and the hash names the op uniquely.
	canon, err := Marshal(&o)
	if err != nil || !bytes.Equal(canon, body) {
		return nil, fmt.Errorf("%w: not in canonical encoding", ErrMalformed)
	}
	return &o, nil
}

// Validate checks the op's structure (not its signature or chain).
func (o *Op) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	switch {
	case o.Origin == "" || len(o.Origin) > MaxOriginLen:
		return bad("origin of %d bytes", len(o.Origin))
	case o.Seq == 0:
		return bad("seq 0")
	case o.Seq == 1 && len(o.Prev) != 0:
		return bad("first op names a previous op")
	case o.Seq > 1 && len(o.Prev) != HashSize:
		return bad("previous hash of %d bytes", len(o.Prev))
	case o.Record == "" || len(o.Record) > MaxRecordIDLen:
		return bad("record id of %d bytes", len(o.Record))
	case o.Kind < KindCreate || o.Kind > KindDistinct:
		return bad("unknown kind %d", o.Kind)
	case len(o.Fields) == 0 || len(o.Fields) > MaxFields:
		return bad("%d fields", len(o.Fields))
	case o.Time.Wall <= 0:
		return bad("no time")
	}
	for name, w := range o.Fields {
		if name == "" || len(name) > MaxFieldName || !utf8.ValidString(name) {
			return bad("field name %q", name)
		}
		if len(w.Value) > MaxValueBytes || !utf8.ValidString(w.Value) {
			return bad("field %s: value of %d bytes", name, len(w.Value))
		}
		if len(w.Seen) > MaxSeenPerField {
			return bad("field %s: %d seen dots", name, len(w.Seen))
		}
		for _, d := range w.Seen {
			if d.Origin == "" || len(d.Origin) > MaxOriginLen || d.Seq == 0 {
				return bad("field %s: bad seen dot", name)
			}
			if d.Origin == o.Origin && d.Seq >= o.Seq {
				return bad("field %s: sees its own future", name)
			}
		}
	}
	return nil
}

// Hash names an op body in its origin's chain.
func Hash(body []byte) [HashSize]byte { return sha256.Sum256(body) }

// Head is the end of an origin's log as a replica holds it.
type Head struct {
	Seq  uint64         `cbor:"1,keyasint"`
	Hash [HashSize]byte `cbor:"2,keyasint"`
}

// Signed is an op as it travels and is stored: its body and the origin's
// ed25519 signature over it. Relays forward it byte for byte.
type Signed struct {
	Body []byte `cbor:"1,keyasint"`
	Sig  []byte `cbor:"2,keyasint"`
}

// Sign seals an op: it encodes the body and signs it with the origin's key.
func Sign(o *Op, key ed25519.PrivateKey) (Signed, error) {
	body, err := EncodeOp(o)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Body: body, Sig: ed25519.Sign(key, body)}, nil
}

// Opened is a signed op decoded, with its hash computed once.
type Opened struct {
	Signed
	Op   *Op
	Hash [HashSize]byte
}

// Open decodes a signed op. It checks structure only; VerifyRun checks the
// chain and the signature.
func Open(s Signed) (Opened, error) {
	if len(s.Sig) != ed25519.SignatureSize {
		return Opened{}, fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(s.Sig))
	}
	op, err := DecodeOp(s.Body)
	if err != nil {
		return Opened{}, err
	}
	return Opened{Signed: s, Op: op, Hash: Hash(s.Body)}, nil
}

// VerifyRun checks a run of one origin's ops that should extend head: seqs
// consecutive from head.Seq+1, each op naming the hash of the one before. The
// chain makes the last op's signature vouch for the whole run, so only that
// one signature is verified: this is what lets a replica ingest an origin's
// log at hash speed rather than signature speed.
//
// It returns how many ops of the run are verified. If the last signature
// fails (a relay may have damaged a stored signature without being able to
// change any content), it looks backwards for the longest prefix whose last
// signature verifies, so that one bad signature does not block the good ops
// before it; the rest is refused with ErrSignature.
func VerifyRun(head Head, run []Opened, pub ed25519.PublicKey) (int, error) {
	if len(run) == 0 {
		return 0, nil
	}
	if len(pub) != ed25519.PublicKeySize {
		return 0, fmt.Errorf("%w: no public key for origin", ErrSignature)
	}
	prev := head
	for i := range run {
		op := run[i].Op
		if op.Seq != prev.Seq+1 {
			return 0, fmt.Errorf("%w: %s seq %d after %d", ErrChain, op.Origin, op.Seq, prev.Seq)
		}
		if op.Seq > 1 && !bytes.Equal(op.Prev, prev.Hash[:]) {
			return 0, fmt.Errorf("%w: %s seq %d names another previous op", ErrChain, op.Origin, op.Seq)
		}
		if i > 0 && op.Origin != run[0].Op.Origin {
			return 0, fmt.Errorf("%w: run mixes origins", ErrChain)
		}
		prev = Head{Seq: op.Seq, Hash: run[i].Hash}
	}
	for n := len(run); n > 0; n-- {
		if ed25519.Verify(pub, run[n-1].Body, run[n-1].Sig) {
			if n < len(run) {
				return n, fmt.Errorf("%w: %s seq %d", ErrSignature, run[n].Op.Origin, run[n].Op.Seq)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: %s seq %d", ErrSignature, run[0].Op.Origin, run[0].Op.Seq)
}

// SortedFieldNames returns the op's field names in order, for deterministic
// iteration.
func (o *Op) SortedFieldNames() []string {
	names := make([]string, 0, len(o.Fields))
	for n := range o.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
