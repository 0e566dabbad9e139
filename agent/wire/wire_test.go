package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/fieldsync/fieldsync/crdt"
)

func sample() []*Message {
	return []*Message{
		{Hello: &Hello{VV: map[string]uint64{"aaaa": 7, "bbbb": 100000}}},
		{Batch: &Batch{N: 3, Ops: []crdt.Signed{{Body: []byte{0xa1, 0x01, 0x02}, Sig: bytes.Repeat([]byte{9}, 64)}},
			Creds: []Credential{{Origin: "aaaa", Raw: []byte("cred")}}, Ranges: []Range{{Origin: "aaaa", From: 1, To: 1}}}},
		{Ack: &Ack{N: 3, VV: map[string]uint64{"aaaa": 1}}},
		{Error: &Error{Reason: "refused: credential of another deployment"}},
		{Receipts: &Receipts{List: []Receipt{{Body: []byte{0xa0}, Sig: bytes.Repeat([]byte{1}, 64), Credential: []byte("hub cred")}}}},
		{Hello: &Hello{VV: map[string]uint64{"aaaa": 1}, Revocation: 4}},
		{Revocation: &Revocation{Raw: []byte{0xa2, 0x01, 0x40, 0x02, 0x40}}},
		{Hello: &Hello{VV: map[string]uint64{"aaaa": 1}, Chunks: true}},
		{Want: &Want{Hashes: [][]byte{bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 32)}}},
		{Chunk: &Chunk{Hash: bytes.Repeat([]byte{7}, 32), Data: []byte("chunk bytes")}},
		{Chunk: &Chunk{Hash: bytes.Repeat([]byte{8}, 32)}},
	}
}

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, m := range sample() {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, want := range sample() {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		a, _ := Encode(got)
		b, _ := Encode(want)
		if !bytes.Equal(a, b) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if r.Bytes() != w.Bytes() {
		t.Fatalf("read %d bytes, wrote %d", r.Bytes(), w.Bytes())
	}
}

func TestDecodeRefusesBadMessages(t *testing.T) {
	cases := map[string]*Message{
		"empty":      {},
		"two parts":  {Hello: &Hello{}, Ack: &Ack{}},
		"bad vv":     {Hello: &Hello{VV: map[string]uint64{"": 1}}},
		"bad cred":   {Batch: &Batch{Creds: []Credential{{Origin: "a"}}}},
		"empty want": {Want: &Want{}},
		"long want":  {Want: &Want{Hashes: make([][]byte, MaxWant+1)}},
		"short hash": {Want: &Want{Hashes: [][]byte{{1, 2}}}},
		"chunk hash": {Chunk: &Chunk{Hash: []byte{1}, Data: []byte{1}}},
		"big chunk":  {Chunk: &Chunk{Hash: make([]byte, 32), Data: make([]byte, MaxChunkData+1)}},
	}
	for name, m := range cases {
		data, err := crdt.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A frame header announcing more than MaxFrame is refused before reading.
	r := NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}))
	if _, err := r.Read(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge frame: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	for _, m := range sample() {
		var buf bytes.Buffer
		NewWriter(&buf).Write(m)
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 1, 0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for i := 0; i < 8; i++ {
			m, err := r.Read()
			if err != nil {
				return
			}
			if _, err := Encode(m); err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
		}
	})
}

func TestRevocationMessageLimits(t *testing.T) {
	for _, m := range []*Message{
		{Revocation: &Revocation{}},
		{Revocation: &Revocation{Raw: make([]byte, MaxRevocation+1)}},
	} {
		data, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(data); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d-byte list accepted: %v", len(m.Revocation.Raw), err)
		}
	}
}
