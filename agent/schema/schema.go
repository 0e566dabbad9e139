package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// Kind says which format a field's values take; see the package documentation
// for the rules of each. Kinds are strings so that a JSON schema description
// reads naturally ("kind": "date").
type Kind string

// The field kinds.
const (
	KindText   Kind = "text"   // free text, Min..Max characters, no control characters
	KindName   Kind = "name"   // a person's name, Min..Max characters
	KindDate   Kind = "date"   // YYYY-MM-DD or YYYY; Min..Max bound the year when non-zero
	KindEnum   Kind = "enum"   // one of Enum, lower case NFC
	KindDigits Kind = "digits" // exactly Digits ASCII digits
	KindPhone  Kind = "phone"  // optional "+" then Min..Max digits, stored compact
	KindRef    Kind = "ref"    // opaque printable ASCII reference, Min..Max characters
)

// FieldSpec describes one field. Which parameters apply depends on Kind:
// Min and Max (text, name, ref: characters; phone: digits; date: years),
// Enum (enum), Digits (digits), NoFuture (date). Parameters that do not apply
// to the kind must be zero, so a misplaced parameter in a description is
// reported rather than silently ignored.
type FieldSpec struct {
	Kind     Kind     `json:"kind"`
	Min      int      `json:"min,omitempty"`
	Max      int      `json:"max,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	Digits   int      `json:"digits,omitempty"`
	NoFuture bool     `json:"no_future,omitempty"`
}

// Schema says which fields a record may have and which it must have. It is a
// plain value: build it in code or load it from JSON with [LoadSchema]; the
// JSON shape is the one encoding/json produces from it.
//
// A Schema is not modified by its methods and may be shared between
// goroutines as long as nobody modifies it.
type Schema struct {
	// Fields maps each field name to its spec.
	Fields map[string]FieldSpec `json:"fields"`
	// Required lists the fields a new record must have with a non-empty value.
	Required []string `json:"required,omitempty"`
	// AllowUnknown accepts fields not in Fields (with well-formed, unreserved
	// names), validated as free text of 1..500 characters like the dossier's
	// optional text fields.
	AllowUnknown bool `json:"allow_unknown,omitempty"`
}

// unknownField is the spec applied to fields a schema does not name when it
// allows unknown fields.
var unknownField = FieldSpec{Kind: KindText, Min: 1, Max: 500}

// Field names of the default dossier schema, for packages that index or compare
// particular fields (personal ID, name and birth date for duplicates, commune
// for counts).
const (
	FieldFullName         = "full_name"
	FieldDateOfBirth      = "date_of_birth"
	FieldSex              = "sex"
	FieldPersonalID       = "personal_id"
	FieldEthnicity        = "ethnicity"
	FieldCommune          = "commune"
	FieldPermanentAddress = "permanent_address"
	FieldHometown         = "hometown"
	FieldPhone            = "phone"
	FieldNotes            = "notes"
	FieldPhotoRef         = "photo_ref"
	FieldFingerprintRef   = "fingerprint_ref"
)

// Dossier returns the default schema, the Vietnamese citizen enrollment
// dossier ("hồ sơ"); the package documentation lists its fields. Each call
// returns a fresh value the caller may modify.
func Dossier() Schema {
	text := FieldSpec{Kind: KindText, Min: 1, Max: 500}
	ref := FieldSpec{Kind: KindRef, Min: 1, Max: 200}
	return Schema{
		Fields: map[string]FieldSpec{
			FieldFullName:    {Kind: KindName, Min: 1, Max: 200},
			FieldDateOfBirth: {Kind: KindDate, Min: 1900, Max: 2100, NoFuture: true},
			// Vietnamese first, then English: both are in use on capture forms.
			FieldSex:              {Kind: KindEnum, Enum: []string{"nam", "nữ", "khác", "male", "female", "other"}},
			FieldPersonalID:       {Kind: KindDigits, Digits: 12},
			FieldEthnicity:        text,
			FieldCommune:          text,
			FieldPermanentAddress: text,
			FieldHometown:         text,
			// 9 digits is the shortest Vietnamese number without its leading 0;
			// 15 is the E.164 maximum.
			FieldPhone:          {Kind: KindPhone, Min: 9, Max: 15},
			FieldNotes:          {Kind: KindText, Max: 2000},
			FieldPhotoRef:       ref,
			FieldFingerprintRef: ref,
		},
		Required:     []string{FieldFullName, FieldDateOfBirth, FieldSex},
		AllowUnknown: false,
	}
}

// MaxSchemaBytes bounds a schema description read by LoadSchema.
const MaxSchemaBytes = 1 << 20

// LoadSchema reads a JSON schema description such as
//
//	{"fields": {"full_name": {"kind": "name", "min": 1, "max": 200},
//	            "sex": {"kind": "enum", "enum": ["nam", "nữ"]}},
//	 "required": ["full_name"], "allow_unknown": false}
//
// and checks it with [Schema.Check]. Unknown keys, duplicate keys, data after
// the description and descriptions over [MaxSchemaBytes] are refused. Enum
// values are normalised (NFC, lower case) before the check, so a description
// may write "Nữ". Errors wrap [ErrSchema].
func LoadSchema(r io.Reader) (Schema, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSchemaBytes+1))
	if err != nil {
		return Schema{}, fmt.Errorf("load schema: read: %w", err)
	}
	if len(data) > MaxSchemaBytes {
		return Schema{}, fmt.Errorf("load schema: %w: larger than %d bytes", ErrSchema, MaxSchemaBytes)
	}
	if !utf8.Valid(data) {
		return Schema{}, fmt.Errorf("load schema: %w: not valid UTF-8", ErrSchema)
	}
	if err := noDuplicateKeys(data); err != nil {
		return Schema{}, fmt.Errorf("load schema: %w: %w", ErrSchema, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Schema
	if err := dec.Decode(&s); err != nil {
		return Schema{}, fmt.Errorf("load schema: %w: %w", ErrSchema, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Schema{}, fmt.Errorf("load schema: %w: data after the description", ErrSchema)
	}
	for name, spec := range s.Fields {
		if spec.Enum != nil {
			enum := make([]string, len(spec.Enum))
			for i, v := range spec.Enum {
				enum[i] = FoldName(v)
			}
			spec.Enum = enum
			s.Fields[name] = spec
		}
	}
	if err := s.Check(); err != nil {
		return Schema{}, fmt.Errorf("load schema: %w", err)
	}
	return s, nil
}

// noDuplicateKeys walks a JSON document and refuses any object that repeats a
// key, which encoding/json would otherwise resolve silently (last one wins).
func noDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if seen[key] {
					return fmt.Errorf("duplicate key %q", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	return walk()
}

// maxParam bounds numeric parameters so that a description cannot ask for
// something no input could ever satisfy or that would overflow arithmetic.
const maxParam = MaxInputBytes

// Check reports whether s is a usable schema: valid, unreserved field names;
// parameters that fit each kind; required fields that exist, each once; enum
// values non-empty, distinct and already in normalised lower case. Errors wrap
// [ErrSchema].
func (s Schema) Check() error {
	if len(s.Fields) == 0 && !s.AllowUnknown {
		return fmt.Errorf("%w: no fields, and unknown fields not allowed", ErrSchema)
	}
	// Check in name order so the error reported is the same every time.
	names := make([]string, 0, len(s.Fields))
	for name := range s.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !validName(name) {
			return fmt.Errorf("%w: field name %s must match ^[a-z][a-z0-9_]{0,63}$", ErrSchema, displayName(name))
		}
		if err := s.Fields[name].check(); err != nil {
			return fmt.Errorf("%w: field %s: %w", ErrSchema, name, err)
		}
	}
	seen := make(map[string]bool, len(s.Required))
	for _, name := range s.Required {
		if _, ok := s.Fields[name]; !ok {
			return fmt.Errorf("%w: required field %s is not among the fields", ErrSchema, displayName(name))
		}
		if seen[name] {
			return fmt.Errorf("%w: required field %s listed twice", ErrSchema, name)
		}
		seen[name] = true
	}
	return nil
}

// check validates one spec's parameters against its kind.
func (f FieldSpec) check() error {
	var (
		usesRange, usesEnum, usesDigits, usesNoFuture bool
	)
	switch f.Kind {
	case KindText, KindName, KindRef:
		usesRange = true
		if f.Min < 0 || f.Max < 1 || f.Min > f.Max || f.Max > maxParam {
			return fmt.Errorf("needs 0 <= min <= max, 1 <= max <= %d (got min %d, max %d)", maxParam, f.Min, f.Max)
		}
	case KindPhone:
		usesRange = true
		if f.Min < 1 || f.Min > f.Max || f.Max > 64 {
			return fmt.Errorf("needs 1 <= min <= max <= 64 digits (got min %d, max %d)", f.Min, f.Max)
		}
	case KindDate:
		usesRange, usesNoFuture = true, true
		if f.Min < 0 || f.Max < 0 || f.Min > 9999 || f.Max > 9999 || (f.Max != 0 && f.Min > f.Max) {
			return fmt.Errorf("year bounds need 0 <= min <= max <= 9999, 0 for none (got min %d, max %d)", f.Min, f.Max)
		}
	case KindDigits:
		usesDigits = true
		if f.Digits < 1 || f.Digits > 64 {
			return fmt.Errorf("digits must be 1..64 (got %d)", f.Digits)
		}
	case KindEnum:
		usesEnum = true
		if len(f.Enum) == 0 {
			return errors.New("enum needs at least one value")
		}
		seen := make(map[string]bool, len(f.Enum))
		for _, v := range f.Enum {
			if v == "" || v != FoldName(v) || utf8.RuneCountInString(v) > 200 {
				return fmt.Errorf("enum value %q must be non-empty, at most 200 characters, lower case NFC with folded spaces", v)
			}
			if seen[v] {
				return fmt.Errorf("enum value %q listed twice", v)
			}
			seen[v] = true
		}
	default:
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	switch {
	case !usesRange && (f.Min != 0 || f.Max != 0):
		return fmt.Errorf("kind %s takes no min or max", f.Kind)
	case !usesEnum && f.Enum != nil:
		return fmt.Errorf("kind %s takes no enum", f.Kind)
	case !usesDigits && f.Digits != 0:
		return fmt.Errorf("kind %s takes no digits", f.Kind)
	case !usesNoFuture && f.NoFuture:
		return fmt.Errorf("kind %s takes no no_future", f.Kind)
	}
	return nil
}

// validName reports whether name matches ^[a-z][a-z0-9_]{0,63}$.
func validName(name string) bool {
	if len(name) < 1 || len(name) > 64 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// displayName returns name fit for an error message: as is when it is made of
// name characters and short, otherwise quoted (escaping anything unprintable)
// and cut, because it may come from untrusted input.
func displayName(name string) string {
	const maxShown = 64
	plain := len(name) > 0 && len(name) <= maxShown
	for i := 0; plain && i < len(name); i++ {
		c := name[i]
		plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
	}
	if plain {
		return name
	}
	if len(name) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", name[:cut])
	}
	return fmt.Sprintf("%q", name)
}
