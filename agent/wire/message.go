package wire

import (
	"errors"
	"fmt"

	"github.com/fieldsync/fieldsync/crdt"
)

// Protocol is the libp2p protocol id of the sync stream. The trailing number
// is the wire version: a change that old agents cannot read gets a new id.
const Protocol = "/fieldsync/sync/1"

// Limits a decoder enforces on untrusted input.
const (
	MaxFrame       = 8 << 20 // bytes in one frame: a batch of ops is bounded well below
	MaxOpsPerBatch = 4096
	MaxOrigins     = 1 << 16
	MaxCredential  = 4 << 10
)

// ErrMalformed: a frame or message that does not follow the protocol.
var ErrMalformed = errors.New("malformed sync message")

// Message is one frame's content: exactly one of its parts is set.
type Message struct {
	Hello *Hello `cbor:"1,keyasint,omitempty"`
	Batch *Batch `cbor:"2,keyasint,omitempty"`
	Ack   *Ack   `cbor:"3,keyasint,omitempty"`
	Error *Error `cbor:"4,keyasint,omitempty"`
	// Receipts carries hubs' receipts; sent after hello and whenever a newer
	// one is held.
	Receipts *Receipts `cbor:"5,keyasint,omitempty"`
	// Revocation carries the authority's revocation list; sent after hello
	// to a peer whose hello shows an older list, and to every open session
	// when a newer list arrives.
	Revocation *Revocation `cbor:"6,keyasint,omitempty"`
	// Fork carries evidence that an origin's log forked, or asks the peer
	// where its log of an origin parts from the sender's.
	Fork *Fork `cbor:"7,keyasint,omitempty"`
	// Want asks the peer for attachment chunks by hash; sent only to a peer
	// whose hello says it speaks chunks (Hello.Chunks).
	Want *Want `cbor:"8,keyasint,omitempty"`
	// Chunk answers one wanted hash: its bytes, or none when the sender
	// does not hold it.
	Chunk *Chunk `cbor:"9,keyasint,omitempty"`
}

// Want lists chunks the sender lacks and asks the receiver for, in the
// order it wants them.
type Want struct {
	Hashes [][]byte `cbor:"1,keyasint"`
}

// Chunk is one attachment chunk: Data, whose SHA-256 must be Hash; Data
// absent (or empty) says the sender does not hold it.
type Chunk struct {
	Hash []byte `cbor:"1,keyasint"`
	Data []byte `cbor:"2,keyasint,omitempty"`
}

// Limits on chunk messages.
const (
	MaxWant      = 64       // hashes in one Want
	MaxChunkData = 64 << 10 // attach.ChunkSize
)

// Fork is sent when a session finds that the two sides hold different ops
// under one (origin, seq). Evidence pairs spread to every peer; a probe is
// answered by resending the origin's ops from the highest mark that
// matches.
type Fork struct {
	// Evidence lists forks: two different ops of one origin, both signed by
	// it, with the same seq and the same previous op.
	Evidence []ForkEvidence `cbor:"1,keyasint,omitempty"`
	// Creds carries the origins' credentials, so a receiver that never met
	// the origin can check the signatures.
	Creds []Credential `cbor:"2,keyasint,omitempty"`
	// Probe asks where the receiver's log of an origin parts from the
	// sender's.
	Probe *Probe `cbor:"3,keyasint,omitempty"`
}

// ForkEvidence is the two ops at a fork point, exactly as signed.
type ForkEvidence struct {
	A crdt.Signed `cbor:"1,keyasint"`
	B crdt.Signed `cbor:"2,keyasint"`
}

// Probe is the sender's log of Origin at a few seqs (its head as the
// receiver knows it, then 1, 2, 4, … below): the receiver finds the
// highest mark its own log agrees with and sends its ops from there.
type Probe struct {
	Origin string `cbor:"1,keyasint"`
	Marks  []Mark `cbor:"2,keyasint"`
}

// Mark is the hash of the sender's op Seq of the probed origin.
type Mark struct {
	Seq  uint64 `cbor:"1,keyasint"`
	Hash []byte `cbor:"2,keyasint"`
}

// Limits on fork messages.
const (
	MaxForkEvidence = 64
	MaxProbeMarks   = 64
	// TipSize is how many bytes of each head's hash a hello carries: enough
	// that two branches never agree by chance, few enough that a hello stays
	// small next to the version vector.
	TipSize = 8
)

// Revocation is a signed revocation list exactly as the authority wrote it
// (see identity.RevocationList).
type Revocation struct {
	Raw []byte `cbor:"1,keyasint"`
}

// MaxRevocation bounds a revocation list on the wire (identity's own limit).
const MaxRevocation = 512 << 10

// Receipts is a set of hub receipts, each with the hub's credential so the
// receiver can check it without having met the hub.
type Receipts struct {
	List []Receipt `cbor:"1,keyasint"`
}

// Receipt is one hub's signed receipt (see package uplink) and the hub's
// marshalled credential.
type Receipt struct {
	Body       []byte `cbor:"1,keyasint"`
	Sig        []byte `cbor:"2,keyasint"`
	Credential []byte `cbor:"3,keyasint"`
}

// Hello opens a session: the sender's version vector, an exact summary of
// every op it holds. Both sides send one at once, so two devices that agree
// know it after one round trip, having sent bytes in proportion to the number
// of origins, not records.
type Hello struct {
	VV map[string]uint64 `cbor:"1,keyasint"`
	// Tips holds, per origin of VV, the first TipSize bytes of the hash of
	// the sender's head: a peer whose log of the origin holds another op at
	// that seq has found a fork. Absent from agents built before forks were
	// caught.
	Tips map[string][]byte `cbor:"2,keyasint,omitempty"`
	// Revocation is the number of the revocation list the sender holds
	// (absent: none), so the peer sends its list only when it is newer.
	Revocation uint64 `cbor:"3,keyasint,omitempty"`
	// Chunks says the sender speaks Want and Chunk: a peer sends them only
	// then, so agents built before them never receive one.
	Chunks bool `cbor:"4,keyasint,omitempty"`
}

// Credential is an origin's credential, sent ahead of its first ops so the
// receiver can check who wrote them (a relay carries other devices' ops).
type Credential struct {
	Origin string `cbor:"1,keyasint"`
	Raw    []byte `cbor:"2,keyasint"`
}

// Batch carries ops the receiver lacks, each origin's ops consecutive and in
// seq order, exactly as signed by their origin.
type Batch struct {
	N     uint64        `cbor:"1,keyasint"`
	Ops   []crdt.Signed `cbor:"2,keyasint"`
	Creds []Credential  `cbor:"3,keyasint,omitempty"`
	// Ranges names the ops in the batch (origin, first and last seq), so the
	// receiver knows the sender holds them without decoding anything; a lying
	// sender only keeps itself from being sent those ops.
	Ranges []Range `cbor:"4,keyasint,omitempty"`
}

// Range is a run of one origin's ops.
type Range struct {
	Origin string `cbor:"1,keyasint"`
	From   uint64 `cbor:"2,keyasint"`
	To     uint64 `cbor:"3,keyasint"`
}

// Ack answers a batch once its ops are durable at the receiver: the
// receiver's heads for the origins in the batch, after applying it. An op the
// receiver refused shows as a head lower than what was sent.
type Ack struct {
	N  uint64            `cbor:"1,keyasint"`
	VV map[string]uint64 `cbor:"2,keyasint"`
}

// Error ends a session with a reason the other side logs.
type Error struct {
	Reason string `cbor:"1,keyasint"`
}

// Encode returns the message's CBOR.
func Encode(m *Message) ([]byte, error) { return crdt.Marshal(m) }

// Decode parses and checks a message received from a peer.
func Decode(data []byte) (*Message, error) {
	var m Message
	if err := crdt.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Message) validate() error {
	set := 0
	for _, p := range []bool{m.Hello != nil, m.Batch != nil, m.Ack != nil, m.Error != nil, m.Receipts != nil, m.Revocation != nil, m.Fork != nil, m.Want != nil, m.Chunk != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("%w: %d parts set", ErrMalformed, set)
	}
	switch {
	case m.Hello != nil:
		if len(m.Hello.Tips) > MaxOrigins {
			return fmt.Errorf("%w: %d tips", ErrMalformed, len(m.Hello.Tips))
		}
		for _, t := range m.Hello.Tips {
			if len(t) != TipSize {
				return fmt.Errorf("%w: tip of %d bytes", ErrMalformed, len(t))
			}
		}
		return validVV(m.Hello.VV)
	case m.Fork != nil:
		return m.Fork.validate()
	case m.Want != nil:
		if len(m.Want.Hashes) == 0 || len(m.Want.Hashes) > MaxWant {
			return fmt.Errorf("%w: want of %d hashes", ErrMalformed, len(m.Want.Hashes))
		}
		for _, h := range m.Want.Hashes {
			if len(h) != 32 {
				return fmt.Errorf("%w: chunk hash of %d bytes", ErrMalformed, len(h))
			}
		}
	case m.Chunk != nil:
		if len(m.Chunk.Hash) != 32 || len(m.Chunk.Data) > MaxChunkData {
			return fmt.Errorf("%w: chunk of %d bytes, hash of %d", ErrMalformed, len(m.Chunk.Data), len(m.Chunk.Hash))
		}
	case m.Ack != nil:
		return validVV(m.Ack.VV)
	case m.Batch != nil:
		b := m.Batch
		if len(b.Ops) > MaxOpsPerBatch {
			return fmt.Errorf("%w: %d ops in a batch", ErrMalformed, len(b.Ops))
		}
		for _, c := range b.Creds {
			if c.Origin == "" || len(c.Origin) > crdt.MaxOriginLen || len(c.Raw) == 0 || len(c.Raw) > MaxCredential {
				return fmt.Errorf("%w: bad credential", ErrMalformed)
			}
		}
	case m.Receipts != nil:
		if len(m.Receipts.List) > 64 {
			return fmt.Errorf("%w: %d receipts", ErrMalformed, len(m.Receipts.List))
		}
		for _, r := range m.Receipts.List {
			if len(r.Body) == 0 || len(r.Body) > 64<<10 || len(r.Sig) == 0 || len(r.Credential) == 0 || len(r.Credential) > MaxCredential {
				return fmt.Errorf("%w: bad receipt", ErrMalformed)
			}
		}
	case m.Revocation != nil:
		if len(m.Revocation.Raw) == 0 || len(m.Revocation.Raw) > MaxRevocation {
			return fmt.Errorf("%w: revocation list of %d bytes", ErrMalformed, len(m.Revocation.Raw))
		}
	case m.Error != nil:
		if len(m.Error.Reason) > 1024 {
			return fmt.Errorf("%w: error reason of %d bytes", ErrMalformed, len(m.Error.Reason))
		}
	}
	return nil
}

func validVV(vv map[string]uint64) error {
	if len(vv) > MaxOrigins {
		return fmt.Errorf("%w: %d origins", ErrMalformed, len(vv))
	}
	for o := range vv {
		if o == "" || len(o) > crdt.MaxOriginLen {
			return fmt.Errorf("%w: bad origin in version vector", ErrMalformed)
		}
	}
	return nil
}

func (f *Fork) validate() error {
	if len(f.Evidence) > MaxForkEvidence || len(f.Creds) > MaxForkEvidence {
		return fmt.Errorf("%w: %d fork evidence, %d credentials", ErrMalformed, len(f.Evidence), len(f.Creds))
	}
	for _, c := range f.Creds {
		if c.Origin == "" || len(c.Origin) > crdt.MaxOriginLen || len(c.Raw) == 0 || len(c.Raw) > MaxCredential {
			return fmt.Errorf("%w: bad credential", ErrMalformed)
		}
	}
	if p := f.Probe; p != nil {
		if p.Origin == "" || len(p.Origin) > crdt.MaxOriginLen || len(p.Marks) == 0 || len(p.Marks) > MaxProbeMarks {
			return fmt.Errorf("%w: bad probe", ErrMalformed)
		}
		for _, m := range p.Marks {
			if m.Seq == 0 || len(m.Hash) != TipSize {
				return fmt.Errorf("%w: bad probe mark", ErrMalformed)
			}
		}
	}
	return nil
}
