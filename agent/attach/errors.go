package attach

import "errors"

// Code says why a file or a manifest is refused. The API maps each code to
// an HTTP status and the CLI to an exit code, in one place each.
type Code string

// The refusal codes.
const (
	CodeKind      Code = "kind"       // an unknown kind
	CodeFinger    Code = "finger"     // an unknown finger, or a finger missing or not wanted
	CodeEmpty     Code = "empty"      // an empty file
	CodeTooLarge  Code = "too_large"  // over the size limit
	CodeMediaType Code = "media_type" // magic bytes not of a type this kind accepts
	CodeRepeated  Code = "repeated"   // the file repeats a whole 64 KiB chunk
	CodeManifest  Code = "manifest"   // a manifest that is not well formed
)

// Error is a refusal, in English and Vietnamese, ready to show to an
// officer. It never quotes file contents.
type Error struct {
	Code Code
	En   string
	Vi   string
}

func newError(code Code, en, vi string) *Error { return &Error{Code: code, En: en, Vi: vi} }

// Error renders the English text with the Vietnamese beside it.
func (e *Error) Error() string { return e.En + " (" + e.Vi + ")" }

// Unwrap lets errors.Is match ErrRefused for every refusal, and ErrMalformed
// for a manifest that is not well formed.
func (e *Error) Unwrap() []error {
	if e.Code == CodeManifest {
		return []error{ErrRefused, ErrMalformed}
	}
	return []error{ErrRefused}
}

// ErrRefused is matched by every *Error: the input is refused, nothing is
// wrong with the agent.
var ErrRefused = errors.New("attachment refused")

// ErrMalformed is matched by an *Error of CodeManifest: the bytes are not a
// well-formed manifest.
var ErrMalformed = errors.New("malformed attachment manifest")

// Refusal returns the *Error err wraps, or nil.
func Refusal(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
