package store

import (
	"bytes"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

func TestEncodingMatchesCRDT(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 20} {
		sg := crdt.Signed{Body: bytes.Repeat([]byte{7}, n), Sig: bytes.Repeat([]byte{9}, 64)}
		want, err := crdt.Marshal(sg)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeEnvelope(sg); !bytes.Equal(got, want) {
			t.Fatalf("envelope of %d-byte body: % x, want % x", n, got[:8], want[:8])
		}
	}
	for _, seq := range []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		h := crdt.Head{Seq: seq, Hash: crdt.Hash([]byte{byte(seq)})}
		want, err := crdt.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeHead(h); !bytes.Equal(got, want) {
			t.Fatalf("head %d: % x, want % x", seq, got, want)
		}
		var back crdt.Head
		if err := crdt.Unmarshal(encodeHead(h), &back); err != nil || back != h {
			t.Fatalf("head %d does not decode: %v", seq, err)
		}
	}
}
