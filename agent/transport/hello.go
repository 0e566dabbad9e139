package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// The hello frames (see doc.go):
//
//	request:  u16 big-endian length, credential
//	reply:    verdict byte, u16 big-endian length, reason (UTF-8)

// Verdicts in the hello reply.
const (
	verdictAccepted byte = 0
	verdictRefused  byte = 1
)

// maxReasonLen bounds the refusal reason sent back to a peer (bytes).
const maxReasonLen = 200

var errFrameTooLarge = errors.New("frame too large")

// writeFrame writes a 2-byte big-endian length and b in one Write, so that
// the frame leaves in one yamux frame.
func writeFrame(w io.Writer, b []byte) error {
	if len(b) > 0xffff {
		return errFrameTooLarge
	}
	buf := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	copy(buf[2:], b)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame of at most max bytes; a longer one is
// errFrameTooLarge, and its body is not read.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > max {
		return nil, errFrameTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// writeVerdict writes the verdict byte and the reason frame.
func writeVerdict(w io.Writer, verdict byte, reason string) error {
	reason = truncateReason(reason)
	buf := make([]byte, 0, 3+len(reason))
	buf = append(buf, verdict)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(reason)))
	buf = append(buf, reason...)
	_, err := w.Write(buf)
	return err
}

// readVerdict reads a reply. The reason is cut to maxReasonLen; one that is
// not UTF-8 is replaced, since it ends up in our log.
func readVerdict(r io.Reader) (byte, string, error) {
	var v [1]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return 0, "", err
	}
	if v[0] != verdictAccepted && v[0] != verdictRefused {
		return 0, "", fmt.Errorf("unknown verdict %d", v[0])
	}
	// Read more than we send, and cut: a peer's long reason is still a
	// reason.
	reason, err := readFrame(r, 4*maxReasonLen)
	if err != nil {
		return 0, "", err
	}
	if !utf8.Valid(reason) {
		return v[0], "(reason not UTF-8)", nil
	}
	return v[0], truncateReason(string(reason)), nil
}

// truncateReason cuts reason to maxReasonLen bytes on a rune boundary.
func truncateReason(reason string) string {
	if len(reason) <= maxReasonLen {
		return reason
	}
	cut := maxReasonLen
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
