package attach

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Kind is what an attachment is of.
type Kind string

// The attachment kinds.
const (
	KindPhoto       Kind = "photo"       // the citizen's face
	KindFingerprint Kind = "fingerprint" // one finger's template or image
	KindDocument    Kind = "document"    // a scanned paper (birth certificate, household book)
)

// Kinds lists the kinds in the order they are shown.
var Kinds = []Kind{KindPhoto, KindFingerprint, KindDocument}

// Fingers are the ten finger names of a fingerprint attachment, right hand
// first, thumb to little finger (the order of a ten-print card).
var Fingers = []string{
	"right_thumb", "right_index", "right_middle", "right_ring", "right_little",
	"left_thumb", "left_index", "left_middle", "left_ring", "left_little",
}

// FieldPrefix starts the name of every attachment field.
const FieldPrefix = "attachment."

// CheckKind checks a kind and finger pair: a known kind; a finger, one of
// Fingers, for a fingerprint and none for the other kinds. The error is a
// *Error whose Code says which.
func CheckKind(kind Kind, finger string) error {
	if !slices.Contains(Kinds, kind) {
		return newError(CodeKind, fmt.Sprintf("unknown attachment kind %q: want photo, fingerprint or document", clip(string(kind))),
			fmt.Sprintf("loại tệp đính kèm %q không hợp lệ: phải là photo (ảnh), fingerprint (vân tay) hoặc document (giấy tờ)", clip(string(kind))))
	}
	switch {
	case kind == KindFingerprint && finger == "":
		return newError(CodeFinger, "a fingerprint needs --finger (finger=…): one of "+strings.Join(Fingers, ", "),
			"vân tay cần chỉ rõ ngón (finger=…): một trong "+strings.Join(Fingers, ", "))
	case kind == KindFingerprint && !slices.Contains(Fingers, finger):
		return newError(CodeFinger, fmt.Sprintf("unknown finger %q: want one of %s", clip(finger), strings.Join(Fingers, ", ")),
			fmt.Sprintf("ngón tay %q không hợp lệ: phải là một trong %s", clip(finger), strings.Join(Fingers, ", ")))
	case kind != KindFingerprint && finger != "":
		return newError(CodeFinger, fmt.Sprintf("a finger is given only for a fingerprint, not for a %s", kind),
			fmt.Sprintf("chỉ vân tay mới có ngón tay, loại %s thì không", kind))
	}
	return nil
}

// FieldName is the dossier field an attachment of this kind and finger is
// stored under: attachment.photo, attachment.document or
// attachment.fingerprint.<finger>. The pair must pass CheckKind.
func FieldName(kind Kind, finger string) string {
	if kind == KindFingerprint {
		return FieldPrefix + string(kind) + "." + finger
	}
	return FieldPrefix + string(kind)
}

// ParseField reports whether name is exactly one of the attachment fields,
// and which kind and finger it holds. Any other name, including other names
// under FieldPrefix, gives ok false.
func ParseField(name string) (kind Kind, finger string, ok bool) {
	rest, found := strings.CutPrefix(name, FieldPrefix)
	if !found {
		return "", "", false
	}
	k, f, _ := strings.Cut(rest, ".")
	kind = Kind(k)
	if CheckKind(kind, f) != nil || FieldName(kind, f) != name {
		return "", "", false
	}
	return kind, f, true
}

// Media types, as answered in Content-Type and kept in manifests.
const (
	MediaJPEG    = "image/jpeg"
	MediaPNG     = "image/png"
	MediaJP2     = "image/jp2" // JPEG 2000 file (RFC 3745)
	MediaJ2C     = "image/j2c" // JPEG 2000 codestream without the file box
	MediaFMR     = "application/x-fmr"
	MediaWSQ     = "image/x-wsq"
	MediaPDF     = "application/pdf"
	mediaUnknown = ""
)

// magic is a media type and the bytes a file of it starts with.
type magic struct {
	media  string
	prefix []byte
}

var magics = []magic{
	{MediaJPEG, []byte{0xFF, 0xD8, 0xFF}},
	{MediaPNG, []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}},
	{MediaJP2, []byte{0x00, 0x00, 0x00, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}},
	{MediaJ2C, []byte{0xFF, 0x4F, 0xFF, 0x51}},
	// ISO/IEC 19794-2 and ANSI/INCITS 378 finger minutiae records both
	// begin with the format identifier "FMR\0".
	{MediaFMR, []byte{'F', 'M', 'R', 0x00}},
	// WSQ (FBI's wavelet scalar quantization): the SOI marker FF A0.
	{MediaWSQ, []byte{0xFF, 0xA0}},
	{MediaPDF, []byte("%PDF-")},
}

// MagicBytes is how many leading bytes Detect needs to tell every type.
const MagicBytes = 12

// accepted lists the media types each kind may be.
var accepted = map[Kind][]string{
	KindPhoto:       {MediaJPEG, MediaPNG, MediaJP2, MediaJ2C},
	KindFingerprint: {MediaFMR, MediaWSQ, MediaPNG, MediaJPEG},
	KindDocument:    {MediaPDF, MediaJPEG, MediaPNG},
}

// Detect returns the media type the leading bytes of a file show, or "" when
// they show none fieldsync knows.
func Detect(head []byte) string {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.prefix) {
			return m.media
		}
	}
	return mediaUnknown
}

// Accepts reports whether kind may be of media type media.
func Accepts(kind Kind, media string) bool {
	return media != "" && slices.Contains(accepted[kind], media)
}

// acceptedText names what a kind accepts, for error messages.
func acceptedText(kind Kind) string {
	switch kind {
	case KindPhoto:
		return "JPEG, PNG or JPEG 2000"
	case KindFingerprint:
		return "an ISO/IEC 19794-2 or ANSI 378 template (FMR), a WSQ image, PNG or JPEG"
	}
	return "PDF, JPEG or PNG"
}

// clip bounds untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
