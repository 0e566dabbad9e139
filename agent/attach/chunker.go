package attach

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Chunker cuts a file read from a stream into ChunkSize chunks, hashing each
// and the whole, and checks it as it goes: not empty, not over the limit,
// magic bytes of a type its kind accepts (checked on the first chunk, before
// the caller stores anything), no chunk twice. It holds one chunk and the
// hash list, never the file.
type Chunker struct {
	r      io.Reader
	kind   Kind
	finger string
	max    int64

	buf    []byte
	whole  hash.Hash
	size   int64
	media  string
	chunks []Hash
	seen   map[Hash]struct{}
	done   bool
}

// NewChunker reads an attachment of kind and finger (which must pass
// CheckKind) from r, refusing files over max bytes (at most MaxSize).
func NewChunker(r io.Reader, kind Kind, finger string, max int64) *Chunker {
	return &Chunker{r: r, kind: kind, finger: finger, max: min(max, MaxSize),
		buf: make([]byte, ChunkSize), whole: sha256.New(), seen: map[Hash]struct{}{}}
}

// Next returns the next chunk and its SHA-256. The slice is the Chunker's and
// valid until the next call. After the last chunk it returns io.EOF. A
// refused file gives an *Error; a read error is returned wrapped.
func (c *Chunker) Next() ([]byte, Hash, error) {
	if c.done {
		return nil, Hash{}, io.EOF
	}
	n, err := io.ReadFull(c.r, c.buf)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		c.done = true
	case err != nil:
		return nil, Hash{}, fmt.Errorf("read attachment: %w", err)
	}
	if n == 0 {
		if c.size == 0 {
			return nil, Hash{}, Empty()
		}
		return nil, Hash{}, io.EOF
	}
	if c.size+int64(n) > c.max {
		return nil, Hash{}, TooLarge(c.max)
	}
	chunk := c.buf[:n]
	if c.size == 0 {
		c.media = Detect(chunk)
		if !Accepts(c.kind, c.media) {
			return nil, Hash{}, newError(CodeMediaType,
				fmt.Sprintf("a %s must be %s (checked by its first bytes)", c.kind, acceptedText(c.kind)),
				fmt.Sprintf("tệp loại %s phải là %s (kiểm tra theo các byte đầu tệp)", c.kind, acceptedText(c.kind)))
		}
	}
	h := sha256.Sum256(chunk)
	if _, dup := c.seen[h]; dup {
		return nil, Hash{}, newError(CodeRepeated,
			"the file repeats a whole 64 KiB block, which no compressed image, template or PDF does",
			"tệp lặp lại nguyên một khối 64 KiB, điều mà ảnh nén, mẫu vân tay hay PDF không có")
	}
	c.seen[h] = struct{}{}
	c.whole.Write(chunk)
	c.size += int64(n)
	c.chunks = append(c.chunks, h)
	return chunk, h, nil
}

// Manifest returns the file's manifest, once Next has returned io.EOF.
func (c *Chunker) Manifest() (Manifest, error) {
	if !c.done || c.size == 0 {
		return Manifest{}, errors.New("attach: manifest asked before the whole file was read")
	}
	m := Manifest{Kind: c.kind, Finger: c.finger, MediaType: c.media, Size: c.size,
		ChunkSize: ChunkSize, Chunks: c.chunks}
	copy(m.SHA256[:], c.whole.Sum(nil))
	return m, m.Validate()
}

// Empty is the refusal of an empty file.
func Empty() *Error { return newError(CodeEmpty, "the file is empty", "tệp rỗng") }

// TooLarge is the refusal of a file over max bytes.
func TooLarge(max int64) *Error {
	return newError(CodeTooLarge,
		fmt.Sprintf("the file is larger than the limit of %d bytes", max),
		fmt.Sprintf("tệp lớn hơn giới hạn %d byte", max))
}
