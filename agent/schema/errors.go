package schema

import (
	"errors"
	"strings"
)

// ErrNotObject is returned (wrapped, with detail) by [ParseInput] when the input
// is not a single JSON object mapping field names to JSON strings: malformed
// JSON, a value that is not a string (numbers, null, booleans, arrays, nested
// objects are all refused), a duplicate key, invalid UTF-8 or an unpaired
// surrogate escape, data after the object, or more than [MaxInputBytes] bytes.
var ErrNotObject = errors.New("input is not a JSON object of string fields")

// ErrNoFields is returned by [Schema.ValidateUpdate] when the update sets no
// field at all: an empty update is almost certainly a client bug, and storing
// it would write an op that changes nothing.
var ErrNoFields = errors.New("update sets no fields")

// ErrSchema is returned (wrapped, with detail) when a schema description is
// unusable: by [LoadSchema], by [Schema.Check], and by the Validate methods of a
// schema built in code that does not pass Check.
var ErrSchema = errors.New("invalid schema")

// FieldError names the field and says what is wrong with its value, in English
// (Problem) with a Vietnamese translation beside it (ProblemVI).
//
// Field is the field name as given when it is a well-formed name; a malformed
// name from untrusted input is shown quoted and cut to a bounded length, so an
// error message never carries control characters or megabytes of junk.
type FieldError struct {
	Field     string
	Problem   string
	ProblemVI string
}

// Error renders the error as `field: problem (vấn đề)`.
func (e *FieldError) Error() string {
	return e.Field + ": " + e.Problem + " (" + e.ProblemVI + ")"
}

// Errors collects all field errors of one input, sorted by field name, so a
// form can mark every bad field at once.
type Errors []*FieldError

// Error joins the field errors with "; ".
func (es Errors) Error() string {
	if len(es) == 0 {
		return "no field errors"
	}
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap exposes the individual field errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Field returns the error for the named field, or nil if that field is fine.
func (es Errors) Field(name string) *FieldError {
	for _, e := range es {
		if e.Field == name {
			return e
		}
	}
	return nil
}
