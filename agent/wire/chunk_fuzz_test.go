package wire

import (
	"bytes"
	"testing"
)

// FuzzChunkFrames reads a stream of frames as a session's reader does and
// checks what the attachment transfer relies on for every Want and Chunk
// that decodes: the limits hold (1 to MaxWant hashes of 32 bytes; a 32-byte
// hash and at most MaxChunkData bytes), the message encodes back to the
// same bytes it decodes from, and a chunk's bytes stay as they were while
// later frames are read: the agent hands them to its chunk sink and keeps
// reading, so they must never alias the reader's buffer.
func FuzzChunkFrames(f *testing.F) {
	frames := func(ms ...*Message) []byte {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, m := range ms {
			if err := w.Write(m); err != nil {
				f.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	// Small seeds keep the fuzzer fast; the limits themselves are checked
	// by TestDecodeRefusesBadMessages.
	data := bytes.Repeat([]byte("chunk "), 200)
	f.Add(frames(&Message{Want: &Want{Hashes: [][]byte{h(1), h(2), h(3)}}}))
	f.Add(frames(&Message{Chunk: &Chunk{Hash: h(1), Data: data}}, &Message{Chunk: &Chunk{Hash: h(2), Data: []byte("other")}}))
	f.Add(frames(&Message{Chunk: &Chunk{Hash: h(3)}}, &Message{Want: &Want{Hashes: [][]byte{h(4)}}},
		&Message{Chunk: &Chunk{Hash: h(4), Data: data[:7]}}))
	f.Add(frames(&Message{Hello: &Hello{VV: map[string]uint64{"aaaa": 1}, Chunks: true}}, &Message{Chunk: &Chunk{Hash: h(5), Data: data[:100]}}))
	// Refused shapes, encoded without the writer's checks.
	for _, m := range []*Message{
		{Want: &Want{Hashes: make([][]byte, MaxWant+1)}},
		{Want: &Want{Hashes: [][]byte{h(1)[:31]}}},
		{Chunk: &Chunk{Hash: h(1)[:31], Data: data}},
		{Chunk: &Chunk{Hash: h(1)}, Want: &Want{Hashes: [][]byte{h(2)}}},
	} {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		hdr := []byte{byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}
		f.Add(append(hdr, b...))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := NewReader(bytes.NewReader(stream))
		type held struct {
			c    *Chunk
			copy []byte
		}
		var kept []held
		for range 16 {
			m, err := r.Read()
			if err != nil {
				break
			}
			switch {
			case m.Want != nil:
				if n := len(m.Want.Hashes); n == 0 || n > MaxWant {
					t.Fatalf("want of %d hashes decoded", n)
				}
				for _, h := range m.Want.Hashes {
					if len(h) != 32 {
						t.Fatalf("want of a %d-byte hash decoded", len(h))
					}
				}
			case m.Chunk != nil:
				if len(m.Chunk.Hash) != 32 || len(m.Chunk.Data) > MaxChunkData {
					t.Fatalf("chunk of %d bytes, hash of %d, decoded", len(m.Chunk.Data), len(m.Chunk.Hash))
				}
				kept = append(kept, held{m.Chunk, bytes.Clone(m.Chunk.Data)})
			default:
				continue
			}
			enc, err := Encode(m)
			if err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
			again, err := Decode(enc)
			if err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
			if enc2, _ := Encode(again); !bytes.Equal(enc, enc2) {
				t.Fatal("a message does not encode back to the bytes it decodes from")
			}
		}
		for i, k := range kept {
			if !bytes.Equal(k.c.Data, k.copy) {
				t.Fatalf("chunk %d's bytes changed while later frames were read", i)
			}
		}
	})
}
