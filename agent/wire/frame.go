package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
)

// Writer writes length-prefixed frames. Not safe for concurrent use: the
// caller serialises writes to one stream.
type Writer struct {
	w      *bufio.Writer
	buf    [4]byte
	n      atomic.Uint64
	frames atomic.Uint64
}

// NewWriter returns a frame writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 64<<10)} }

// Write encodes m as one frame and flushes it.
func (fw *Writer) Write(m *Message) error {
	data, err := Encode(m)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if len(data) > MaxFrame {
		return fmt.Errorf("%w: frame of %d bytes", ErrMalformed, len(data))
	}
	binary.BigEndian.PutUint32(fw.buf[:], uint32(len(data)))
	if _, err := fw.w.Write(fw.buf[:]); err != nil {
		return err
	}
	if _, err := fw.w.Write(data); err != nil {
		return err
	}
	fw.n.Add(uint64(4 + len(data)))
	fw.frames.Add(1)
	return fw.w.Flush()
}

// Bytes is the number of bytes written so far. Safe to call concurrently
// with Write.
func (fw *Writer) Bytes() uint64 { return fw.n.Load() }

// Frames is the number of frames written so far.
func (fw *Writer) Frames() uint64 { return fw.frames.Load() }

// Reader reads length-prefixed frames.
type Reader struct {
	r      *bufio.Reader
	buf    []byte
	n      atomic.Uint64
	frames atomic.Uint64
}

// NewReader returns a frame reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// Read reads and decodes the next frame. io.EOF at a frame boundary means the
// peer closed the stream cleanly.
func (fr *Reader) Read() (*Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size == 0 || size > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrMalformed, size)
	}
	if cap(fr.buf) < int(size) {
		fr.buf = make([]byte, size)
	}
	buf := fr.buf[:size]
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	fr.n.Add(uint64(4 + size))
	fr.frames.Add(1)
	// Decoded byte strings are copies, so the buffer can be reused.
	return Decode(buf)
}

// Bytes is the number of bytes read so far. Safe to call concurrently with
// Read.
func (fr *Reader) Bytes() uint64 { return fr.n.Load() }

// Frames is the number of frames read so far.
func (fr *Reader) Frames() uint64 { return fr.frames.Load() }
