package store

import (
	"encoding/binary"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/fieldsync/fieldsync/crdt"
)

// The two values written for every op, encoded by hand: they are the same
// bytes crdt.Marshal produces (core deterministic CBOR, checked by
// TestEncodingMatchesCRDT), at a fraction of the cost of reflection on the
// hot ingest path.

// encodeEnvelope encodes sg as CBOR {1: body, 2: sig}.
func encodeEnvelope(sg crdt.Signed) []byte {
	b := make([]byte, 0, len(sg.Body)+len(sg.Sig)+16)
	b = append(b, 0xa2, 0x01)
	b = appendHeader(b, 2, uint64(len(sg.Body)))
	b = append(b, sg.Body...)
	b = append(b, 0x02)
	b = appendHeader(b, 2, uint64(len(sg.Sig)))
	return append(b, sg.Sig...)
}

// encodeHead encodes h as CBOR {1: seq, 2: hash}.
func encodeHead(h crdt.Head) []byte {
	b := make([]byte, 0, 48)
	b = append(b, 0xa2, 0x01)
	b = appendHeader(b, 0, h.Seq)
	b = append(b, 0x02)
	b = appendHeader(b, 2, uint64(len(h.Hash)))
	return append(b, h.Hash[:]...)
}

// appendHeader appends a CBOR head of the given major type and argument, in
// its shortest form.
func appendHeader(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// recordEnc encodes records as plain CBOR, without sorting map keys: a
// stored record is never hashed or signed, and skipping the sort makes
// encoding a third cheaper. crdt.Unmarshal reads it like any other CBOR.
var recordEnc = sync.OnceValue(func() cbor.EncMode {
	em, err := cbor.EncOptions{}.EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	return em
})

func encodeRecord(r *crdt.Record) ([]byte, error) { return recordEnc().Marshal(r) }
