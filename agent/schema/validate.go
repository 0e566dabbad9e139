package schema

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ValidateNew checks a complete new record: every field known to the schema
// (or allowed as unknown) with a valid value, and every required field present
// with a non-empty value. It returns the normalised values in a new map the
// caller owns; optional fields given empty are left out, since a new record has
// nothing to clear.
//
// now is the current time; a date field marked NoFuture refuses dates after
// now's calendar date in now's location (pass the zero Time and every date is
// in the future). On bad input the error is [Errors], every bad field at once,
// sorted by field name; if the schema itself is unusable the error wraps
// [ErrSchema]. fields is not modified.
func (s Schema) ValidateNew(fields map[string]string, now time.Time) (map[string]string, error) {
	return s.validate(fields, now, false)
}

// ValidateUpdate checks a partial update: only the given fields, each valid.
// An empty value clears an optional field and is kept in the result (as "");
// a required field cannot be cleared. An update that sets no field is refused
// with [ErrNoFields]. Otherwise as [Schema.ValidateNew].
func (s Schema) ValidateUpdate(fields map[string]string, now time.Time) (map[string]string, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("validate update: %w", ErrNoFields)
	}
	return s.validate(fields, now, true)
}

func (s Schema) validate(fields map[string]string, now time.Time, update bool) (map[string]string, error) {
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	required := make(map[string]bool, len(s.Required))
	for _, name := range s.Required {
		required[name] = true
	}
	out := make(map[string]string, len(fields))
	var errs Errors
	report := func(name string, p problem) {
		errs = append(errs, &FieldError{Field: displayName(name), Problem: p.en, ProblemVI: p.vi})
	}
	for name, raw := range fields {
		spec, p := s.spec(name)
		if p != nil {
			report(name, *p)
			continue
		}
		v, p := spec.value(raw, now)
		if p != nil {
			report(name, *p)
			continue
		}
		if v == "" {
			switch {
			case required[name] && update:
				report(name, problemCannotClear)
				continue
			case required[name]:
				report(name, problemRequired)
				continue
			case !update:
				continue
			}
		}
		out[name] = v
	}
	if !update {
		for _, name := range s.Required {
			if _, given := fields[name]; !given {
				report(name, problemRequired)
			}
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b *FieldError) int {
			return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Problem, b.Problem))
		})
		return nil, errs
	}
	return out, nil
}

// spec finds the spec for an input field name, or the problem with the name.
func (s Schema) spec(name string) (FieldSpec, *problem) {
	if strings.HasPrefix(name, "_") {
		return FieldSpec{}, &problemReserved
	}
	if p := attachmentProblem(name); p != nil {
		return FieldSpec{}, p
	}
	if !validName(name) {
		return FieldSpec{}, &problemBadName
	}
	if spec, ok := s.Fields[name]; ok {
		return spec, nil
	}
	if s.AllowUnknown {
		return unknownField, nil
	}
	return FieldSpec{}, &problemUnknown
}

// problem is what is wrong with a value, in English and Vietnamese.
type problem struct{ en, vi string }

func problemf(en, vi string, args ...any) *problem {
	return &problem{en: fmt.Sprintf(en, args...), vi: fmt.Sprintf(vi, args...)}
}

var (
	problemRequired    = problem{"is required", "bắt buộc phải có"}
	problemCannotClear = problem{"is required and cannot be cleared", "bắt buộc, không được để trống"}
	problemUnknown     = problem{"is not a field of this schema", "không phải là trường của mẫu hồ sơ này"}
	problemReserved    = problem{"is reserved for system use", "là tên dành riêng cho hệ thống"}
	problemBadName     = problem{
		"is not a valid field name (a lower-case letter, then up to 63 lower-case letters, digits or underscores)",
		"không phải là tên trường hợp lệ (một chữ cái thường, tiếp theo tối đa 63 chữ cái thường, chữ số hoặc dấu gạch dưới)",
	}
	problemUTF8    = problem{"must be valid UTF-8 text", "phải là văn bản UTF-8 hợp lệ"}
	problemControl = problem{"must not contain control characters", "không được chứa ký tự điều khiển"}
	problemNameChr = problem{
		"may contain only letters, spaces, apostrophes, hyphens and dots",
		"chỉ được gồm chữ cái, dấu cách, dấu nháy đơn, dấu gạch nối và dấu chấm",
	}
	problemNoLetter  = problem{"must contain at least one letter", "phải có ít nhất một chữ cái"}
	problemDateShape = problem{
		"must be a date YYYY-MM-DD, or a year YYYY when only the year is known",
		"phải là ngày dạng YYYY-MM-DD, hoặc năm dạng YYYY nếu chỉ biết năm",
	}
	problemNotADate = problem{"is not a real calendar date", "không phải là ngày có thật"}
	problemFuture   = problem{"must not be in the future", "không được là ngày trong tương lai"}
	problemRef      = problem{
		"must be printable ASCII without spaces",
		"chỉ được gồm ký tự ASCII in được, không có dấu cách",
	}
)

// value normalises raw and checks it against the spec. An empty result means
// the value is absent; whether that is allowed is the caller's decision.
func (f FieldSpec) value(raw string, now time.Time) (string, *problem) {
	if !utf8.ValidString(raw) {
		return "", &problemUTF8
	}
	v := Normalize(raw)
	if v == "" {
		return "", nil
	}
	switch f.Kind {
	case KindText:
		return f.text(v)
	case KindName:
		return f.name(v)
	case KindDate:
		return f.date(v, now)
	case KindEnum:
		return f.enum(v)
	case KindDigits:
		return f.digits(v)
	case KindPhone:
		return f.phone(v)
	case KindRef:
		return f.ref(v)
	}
	// Unreachable for a schema that passed Check.
	return "", problemf("has a field kind %q this version does not know", "có loại trường %q mà phiên bản này không biết", f.Kind)
}

// length checks a character count against Min..Max.
func (f FieldSpec) length(n int) *problem {
	if n < f.Min {
		return problemf("must be at least %d characters", "phải có ít nhất %d ký tự", f.Min)
	}
	if n > f.Max {
		return problemf("must be at most %d characters", "chỉ được có tối đa %d ký tự", f.Max)
	}
	return nil
}

func (f FieldSpec) text(v string) (string, *problem) {
	if p := f.length(utf8.RuneCountInString(v)); p != nil {
		return "", p
	}
	for _, r := range v {
		if unicode.IsControl(r) || isBidiControl(r) {
			return "", &problemControl
		}
	}
	return v, nil
}

// isBidiControl reports the bidirectional embedding, override and isolate
// controls, which can make displayed text read differently from what is
// stored (a spoofing risk on the admin page).
func isBidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

func (f FieldSpec) name(v string) (string, *problem) {
	// Phone keyboards turn ' into ’; store one apostrophe so that the same
	// name typed on two devices compares equal.
	v = strings.ReplaceAll(v, "\u2019", "'")
	if p := f.length(utf8.RuneCountInString(v)); p != nil {
		return "", p
	}
	letters := 0
	prevLetter := false
	for _, r := range v {
		switch {
		case unicode.IsLetter(r):
			letters++
			prevLetter = true
		case unicode.IsMark(r) && prevLetter:
			// A combining mark with no precomposed form, kept with its letter.
		case r == ' ' || r == '\'' || r == '-' || r == '.':
			prevLetter = false
		case unicode.IsControl(r) || isBidiControl(r):
			return "", &problemControl
		default:
			return "", &problemNameChr
		}
	}
	if letters == 0 {
		return "", &problemNoLetter
	}
	return v, nil
}

func (f FieldSpec) date(v string, now time.Time) (string, *problem) {
	y, m, d, yearOnly, ok := parseDate(v)
	if !ok {
		return "", &problemDateShape
	}
	if !yearOnly && (m < 1 || m > 12 || d < 1 || d > daysIn(y, m)) {
		return "", &problemNotADate
	}
	if (f.Min != 0 && y < f.Min) || (f.Max != 0 && y > f.Max) {
		switch {
		case f.Max == 0:
			return "", problemf("year must be %d or later", "năm phải từ %d trở về sau", f.Min)
		case f.Min == 0:
			return "", problemf("year must be %d or earlier", "năm phải từ %d trở về trước", f.Max)
		}
		return "", problemf("year must be between %d and %d", "năm phải từ %d đến %d", f.Min, f.Max)
	}
	if f.NoFuture {
		ny, nm, nd := now.Date()
		future := y > ny
		if !yearOnly && y == ny {
			future = m > int(nm) || (m == int(nm) && d > nd)
		}
		if future {
			return "", &problemFuture
		}
	}
	return v, nil
}

// parseDate splits "YYYY-MM-DD" or "YYYY" (ASCII digits only) into numbers,
// without checking that month and day exist.
func parseDate(v string) (y, m, d int, yearOnly, ok bool) {
	num := func(s string) (int, bool) {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	switch len(v) {
	case 4:
		y, ok = num(v)
		return y, 0, 0, true, ok
	case 10:
		if v[4] != '-' || v[7] != '-' {
			return 0, 0, 0, false, false
		}
		var oky, okm, okd bool
		y, oky = num(v[:4])
		m, okm = num(v[5:7])
		d, okd = num(v[8:])
		return y, m, d, false, oky && okm && okd
	}
	return 0, 0, 0, false, false
}

// daysIn returns the number of days in month m of year y (proleptic
// Gregorian, as time.Date computes it).
func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (f FieldSpec) enum(v string) (string, *problem) {
	fv := FoldName(v)
	if slices.Contains(f.Enum, fv) {
		return fv, nil
	}
	list := strings.Join(f.Enum, ", ")
	return "", problemf("must be one of: %s", "phải là một trong các giá trị: %s", list)
}

func (f FieldSpec) digits(v string) (string, *problem) {
	ok := len(v) == f.Digits
	for i := 0; ok && i < len(v); i++ {
		ok = v[i] >= '0' && v[i] <= '9'
	}
	if !ok {
		return "", problemf("must be exactly %d digits", "phải gồm đúng %d chữ số", f.Digits)
	}
	return v, nil
}

func (f FieldSpec) phone(v string) (string, *problem) {
	var b strings.Builder
	b.Grow(len(v))
	n := 0
	ok := true
	for i := 0; ok && i < len(v); i++ {
		switch c := v[i]; {
		case c == ' ' || c == '.' || c == '-':
		case c == '+' && b.Len() == 0:
			b.WriteByte(c)
		case c >= '0' && c <= '9':
			b.WriteByte(c)
			n++
		default:
			ok = false
		}
	}
	if !ok || n < f.Min || n > f.Max {
		return "", problemf(
			"must be a phone number of %d to %d digits, optionally starting with +",
			"phải là số điện thoại gồm %d đến %d chữ số, có thể bắt đầu bằng dấu +",
			f.Min, f.Max)
	}
	return b.String(), nil
}

func (f FieldSpec) ref(v string) (string, *problem) {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7E {
			return "", &problemRef
		}
	}
	if p := f.length(len(v)); p != nil {
		return "", p
	}
	return v, nil
}
