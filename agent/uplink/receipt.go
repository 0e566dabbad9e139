package uplink

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"

	"github.com/fieldsync/fieldsync/crdt"
)

// receiptContext separates receipt signatures from anything else a hub key
// signs (its ops, for instance).
const receiptContext = "fieldsync receipt v1\x00"

// MaxReceiptBytes bounds a receipt's encoding (a province: a few hundred
// origins of ~40 bytes each).
const MaxReceiptBytes = 64 << 10

// Errors of receipts.
var (
	// ErrBadReceipt: the bytes are not a well-formed receipt.
	ErrBadReceipt = errors.New("malformed receipt")
	// ErrReceiptSignature: the hub's signature does not verify.
	ErrReceiptSignature = errors.New("receipt signature does not verify")
)

// Receipt says: hub Hub has durably stored every op of each origin up to
// Stored[origin]. Issued orders one hub's receipts (unix milliseconds,
// strictly increasing per hub); a later receipt of a hub replaces an earlier
// one.
//
// A hub that tracks attachments sets Attachments: then, per origin, every
// attachment manifest op up to Lagging[origin], or up to Stored[origin] for
// an origin not in Lagging, names a file the hub holds whole and verified
// against its manifest (and has exported, where it exports). Listing only
// the origins whose files lag keeps a receipt about as small as before.
type Receipt struct {
	Hub         string            `cbor:"1,keyasint"`
	Issued      int64             `cbor:"2,keyasint"`
	Stored      map[string]uint64 `cbor:"3,keyasint"`
	Attachments bool              `cbor:"4,keyasint,omitempty"`
	Lagging     map[string]uint64 `cbor:"5,keyasint,omitempty"`
}

// Attached returns, per origin, how far its attachments are whole at the
// hub: empty for a hub that does not track them.
func (r Receipt) Attached() crdt.VersionVector {
	out := crdt.VersionVector{}
	if !r.Attachments {
		return out
	}
	for o, n := range r.Stored {
		if lag, ok := r.Lagging[o]; ok {
			n = lag
		}
		if n > 0 {
			out[o] = n
		}
	}
	return out
}

// MergedAttached combines the attachment watermarks of several hubs.
func MergedAttached(rs []Receipt) crdt.VersionVector {
	out := crdt.VersionVector{}
	for _, r := range rs {
		out.Merge(r.Attached())
	}
	return out
}

// Signed is a receipt as it travels: its body and the hub's signature.
type Signed struct {
	Body []byte `cbor:"1,keyasint"`
	Sig  []byte `cbor:"2,keyasint"`
}

// Sign encodes and signs a receipt with the hub's key.
func Sign(r Receipt, key ed25519.PrivateKey) (Signed, error) {
	if err := r.validate(); err != nil {
		return Signed{}, err
	}
	body, err := crdt.Marshal(r)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Body: body, Sig: ed25519.Sign(key, append([]byte(receiptContext), body...))}, nil
}

// Decode parses a receipt without checking its signature (to learn which
// hub's key to check it with).
func Decode(s Signed) (Receipt, error) {
	if len(s.Body) > MaxReceiptBytes || len(s.Sig) != ed25519.SignatureSize {
		return Receipt{}, fmt.Errorf("%w: %d bytes, signature of %d", ErrBadReceipt, len(s.Body), len(s.Sig))
	}
	var r Receipt
	if err := crdt.Unmarshal(s.Body, &r); err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrBadReceipt, err)
	}
	if err := r.validate(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// Verify decodes a receipt and checks it was signed by pub.
func Verify(s Signed, pub ed25519.PublicKey) (Receipt, error) {
	r, err := Decode(s)
	if err != nil {
		return Receipt{}, err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, append([]byte(receiptContext), s.Body...), s.Sig) {
		return Receipt{}, fmt.Errorf("%w: hub %s", ErrReceiptSignature, r.Hub)
	}
	return r, nil
}

func (r Receipt) validate() error {
	if r.Hub == "" || len(r.Hub) > crdt.MaxOriginLen || r.Issued <= 0 {
		return fmt.Errorf("%w: hub %q issued %d", ErrBadReceipt, r.Hub, r.Issued)
	}
	for o := range r.Stored {
		if o == "" || len(o) > crdt.MaxOriginLen {
			return fmt.Errorf("%w: bad origin", ErrBadReceipt)
		}
	}
	for o, n := range r.Lagging {
		if !r.Attachments || n > r.Stored[o] {
			return fmt.Errorf("%w: attachments of %q lag to %d, beyond the %d ops stored", ErrBadReceipt, o, n, r.Stored[o])
		}
	}
	return nil
}

// Merged combines the receipts of several hubs: for each origin, the highest
// seq any hub has stored. That is what is safe upstream.
func Merged(rs []Receipt) crdt.VersionVector {
	out := crdt.VersionVector{}
	for _, r := range rs {
		out.Merge(r.Stored)
	}
	return out
}

// Hubs returns the hubs of a set of receipts, sorted.
func Hubs(rs map[string]Receipt) []string {
	out := make([]string, 0, len(rs))
	for h := range rs {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
