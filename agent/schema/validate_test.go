package schema

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

// ict is Vietnam's time zone; now is a fixed instant so every run is the same.
var (
	ict = time.FixedZone("ICT", 7*3600)
	now = time.Date(2025, time.June, 15, 10, 0, 0, 0, ict)
)

func validDossier() map[string]string {
	return map[string]string{
		"full_name":     "Nguyễn Văn An",
		"date_of_birth": "1985-03-07",
		"sex":           "nam",
	}
}

func TestValidateNewDossier(t *testing.T) {
	in := map[string]string{
		"full_name":         "  Nguye\u0302\u0303n   Văn\tAn ",
		"date_of_birth":     "1985-03-07",
		"sex":               "Nữ",
		"personal_id":       "001085012345",
		"ethnicity":         "Kinh",
		"commune":           "Vạn  Thạnh",
		"permanent_address": "Thôn Điệp Sơn,\nxã Vạn Thạnh",
		"hometown":          "Khánh Hòa",
		"phone":             "+84 912.345-678",
		"notes":             "",
		"photo_ref":         "sha256:9f86d081884c7d659a2feaa0c55ad015",
		"fingerprint_ref":   "fp/2025/000123",
	}
	before := maps.Clone(in)
	got, err := Dossier().ValidateNew(in, now)
	if err != nil {
		t.Fatalf("ValidateNew: %v", err)
	}
	want := map[string]string{
		"full_name":         "Nguyễn Văn An",
		"date_of_birth":     "1985-03-07",
		"sex":               "nữ",
		"personal_id":       "001085012345",
		"ethnicity":         "Kinh",
		"commune":           "Vạn Thạnh",
		"permanent_address": "Thôn Điệp Sơn, xã Vạn Thạnh",
		"hometown":          "Khánh Hòa",
		"phone":             "+84912345678",
		"photo_ref":         "sha256:9f86d081884c7d659a2feaa0c55ad015",
		"fingerprint_ref":   "fp/2025/000123",
		// notes was empty: a new record leaves it out.
	}
	if !maps.Equal(got, want) {
		t.Fatalf("ValidateNew =\n%q\nwant\n%q", got, want)
	}
	if !maps.Equal(in, before) {
		t.Fatalf("ValidateNew modified its input")
	}
	again, err := Dossier().ValidateNew(got, now)
	if err != nil || !maps.Equal(again, got) {
		t.Fatalf("re-validating the output: %q, %v; want it unchanged", again, err)
	}
}

// fieldCase is one value for one field: want is the stored form, or problem
// a substring of the English problem when the value is refused.
type fieldCase struct {
	field, in, want, problem string
}

// checkField validates one field alone, as an update, so each case tests that
// field's rules and nothing else.
func checkField(t *testing.T, s Schema, c fieldCase) {
	t.Helper()
	got, err := s.ValidateUpdate(map[string]string{c.field: c.in}, now)
	if c.problem == "" {
		if err != nil {
			t.Fatalf("%s=%q refused: %v", c.field, c.in, err)
		}
		if got[c.field] != c.want {
			t.Fatalf("%s=%q stored as %q, want %q", c.field, c.in, got[c.field], c.want)
		}
		return
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("%s=%q: got %q, %v; want Errors", c.field, c.in, got, err)
	}
	fe := errs.Field(c.field)
	if len(errs) != 1 || fe == nil {
		t.Fatalf("%s=%q: errors %v, want one for the field", c.field, c.in, err)
	}
	if !strings.Contains(fe.Problem, c.problem) || fe.ProblemVI == "" {
		t.Fatalf("%s=%q: problem %q / %q, want it to say %q and have a Vietnamese text", c.field, c.in, fe.Problem, fe.ProblemVI, c.problem)
	}
}

func TestFieldKinds(t *testing.T) {
	cases := []fieldCase{
		// name
		{"full_name", "Nguyễn Văn An", "Nguyễn Văn An", ""},
		{"full_name", "Nguye\u0302\u0303n Va\u0306n An", "Nguyễn Văn An", ""},
		{"full_name", "Hờ A Dính", "Hờ A Dính", ""},
		{"full_name", "Giàng Seo Phử", "Giàng Seo Phử", ""},
		{"full_name", "O’Neil-Smith Jr.", "O'Neil-Smith Jr.", ""},
		{"full_name", "A", "A", ""},
		{"full_name", strings.Repeat("ễ", 200), strings.Repeat("ễ", 200), ""},
		{"full_name", strings.Repeat("e\u0302\u0303", 200), strings.Repeat("ễ", 200), ""}, // counted after NFC
		{"full_name", strings.Repeat("ễ", 201), "", "at most 200 characters"},
		{"full_name", "Nguyễn Văn 2", "", "only letters"},
		{"full_name", "An <script>", "", "only letters"},
		{"full_name", "An_Bình", "", "only letters"},
		{"full_name", "An\x00Bình", "", "control characters"},
		{"full_name", "An\u202eBình", "", "control characters"},
		{"full_name", "- . '", "", "at least one letter"},
		{"full_name", "\u0301An", "", "only letters"}, // a mark with no letter before it
		// text
		{"hometown", "Xã Vạn Thạnh,\thuyện Vạn Ninh", "Xã Vạn Thạnh, huyện Vạn Ninh", ""},
		{"hometown", strings.Repeat("x", 500), strings.Repeat("x", 500), ""},
		{"hometown", strings.Repeat("x", 501), "", "at most 500 characters"},
		{"hometown", "a\x1bb", "", "control characters"},
		{"hometown", "a\u0085b", "a b", ""}, // NEL is white space, folded
		{"hometown", "a\u009fb", "", "control characters"},
		{"hometown", "abc\u2066def", "", "control characters"},
		{"ethnicity", "H'Mông", "H'Mông", ""},
		{"notes", strings.Repeat("ă", 2000), strings.Repeat("ă", 2000), ""},
		{"notes", strings.Repeat("ă", 2001), "", "at most 2000 characters"},
		{"notes", "line 1\nline 2", "line 1 line 2", ""},
		// enum
		{"sex", "nam", "nam", ""},
		{"sex", "NAM", "nam", ""},
		{"sex", "Nữ", "nữ", ""},
		{"sex", "NU\u031b\u0303", "nữ", ""}, // upper case, decomposed
		{"sex", " khác ", "khác", ""},
		{"sex", "Female", "female", ""},
		{"sex", "OTHER", "other", ""},
		{"sex", "male", "male", ""},
		{"sex", "nu", "", "must be one of: nam, nữ, khác, male, female, other"},
		{"sex", "m", "", "must be one of"},
		// digits
		{"personal_id", "001085012345", "001085012345", ""},
		{"personal_id", " 001085012345 ", "001085012345", ""},
		{"personal_id", "00108501234", "", "exactly 12 digits"},
		{"personal_id", "0010850123456", "", "exactly 12 digits"},
		{"personal_id", "0010 8501 2345", "", "exactly 12 digits"},
		{"personal_id", "00108501234a", "", "exactly 12 digits"},
		{"personal_id", "００１０８５０１２３４５", "", "exactly 12 digits"}, // full-width digits
		// phone
		{"phone", "0912345678", "0912345678", ""},
		{"phone", "+84 912 345 678", "+84912345678", ""},
		{"phone", "091.234.5678", "0912345678", ""},
		{"phone", "0912-345-678", "0912345678", ""},
		{"phone", "912345678", "912345678", ""},             // 9 digits
		{"phone", "123456789012345", "123456789012345", ""}, // 15 digits
		{"phone", "12345678", "", "9 to 15 digits"},         // 8 digits
		{"phone", "1234567890123456", "", "9 to 15 digits"}, // 16 digits
		{"phone", "+ 84 912 345 678", "+84912345678", ""},   // separators after +
		{"phone", "84+912345678", "", "optionally starting with +"},
		{"phone", "++84912345678", "", "9 to 15 digits"},
		{"phone", "(028) 3829 1234", "", "9 to 15 digits"},
		{"phone", "0912345678 ext 2", "", "9 to 15 digits"},
		// ref
		{"photo_ref", "photo/2025-06-15/abc.jpg", "photo/2025-06-15/abc.jpg", ""},
		{"photo_ref", strings.Repeat("r", 200), strings.Repeat("r", 200), ""},
		{"photo_ref", strings.Repeat("r", 201), "", "at most 200 characters"},
		{"photo_ref", "photo 1.jpg", "", "printable ASCII without spaces"},
		{"fingerprint_ref", "ảnh.jpg", "", "printable ASCII"},
		{"fingerprint_ref", "a\x7fb", "", "printable ASCII"},
	}
	for _, c := range cases {
		t.Run(c.field+"="+c.in, func(t *testing.T) { checkField(t, Dossier(), c) })
	}
}

func TestDates(t *testing.T) {
	cases := []fieldCase{
		{"date_of_birth", "2024-02-29", "2024-02-29", ""},
		{"date_of_birth", "2000-02-29", "2000-02-29", ""},
		{"date_of_birth", "2023-02-29", "", "not a real calendar date"},
		{"date_of_birth", "1900-02-29", "", "not a real calendar date"}, // 1900 is not a leap year
		{"date_of_birth", "1985-04-31", "", "not a real calendar date"},
		{"date_of_birth", "1985-13-01", "", "not a real calendar date"},
		{"date_of_birth", "1985-00-10", "", "not a real calendar date"},
		{"date_of_birth", "1985-01-00", "", "not a real calendar date"},
		{"date_of_birth", "1950", "1950", ""},
		{"date_of_birth", " 1950 ", "1950", ""},
		{"date_of_birth", "1900", "1900", ""},
		{"date_of_birth", "1900-01-01", "1900-01-01", ""},
		{"date_of_birth", "1899", "", "year must be between 1900 and 2100"},
		{"date_of_birth", "1899-12-31", "", "year must be between 1900 and 2100"},
		{"date_of_birth", "2025-06-15", "2025-06-15", ""}, // born today
		{"date_of_birth", "2025", "2025", ""},             // this year
		{"date_of_birth", "2025-06-16", "", "must not be in the future"},
		{"date_of_birth", "2025-07-01", "", "must not be in the future"},
		{"date_of_birth", "2026", "", "must not be in the future"},
		{"date_of_birth", "2100-01-01", "", "must not be in the future"},
		{"date_of_birth", "2101", "", "year must be between 1900 and 2100"},
		{"date_of_birth", "1985-3-7", "", "YYYY-MM-DD"},
		{"date_of_birth", "07/03/1985", "", "YYYY-MM-DD"},
		{"date_of_birth", "1985-03", "", "YYYY-MM-DD"},
		{"date_of_birth", "85", "", "YYYY-MM-DD"},
		{"date_of_birth", "1985-03-07T00:00", "", "YYYY-MM-DD"},
		{"date_of_birth", "1985/03/07", "", "YYYY-MM-DD"},
		{"date_of_birth", "+985-03-07", "", "YYYY-MM-DD"},
		{"date_of_birth", "１９５０", "", "YYYY-MM-DD"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) { checkField(t, Dossier(), c) })
	}
}

// "Not in the future" is judged by the calendar date in now's own location: at
// 02:00 in Vietnam on 15 June it is still 14 June in UTC.
func TestDateFutureUsesNowsLocation(t *testing.T) {
	early := time.Date(2025, time.June, 15, 2, 0, 0, 0, ict)
	in := map[string]string{"date_of_birth": "2025-06-15"}
	if _, err := Dossier().ValidateUpdate(in, early); err != nil {
		t.Fatalf("born today, Vietnam time: %v", err)
	}
	_, err := Dossier().ValidateUpdate(in, early.UTC())
	var errs Errors
	if !errors.As(err, &errs) || errs.Field("date_of_birth") == nil {
		t.Fatalf("judged in UTC (still 14 June): got %v, want a future-date error", err)
	}
}

func TestDateYearBoundsOptional(t *testing.T) {
	s := Schema{Fields: map[string]FieldSpec{
		"from":  {Kind: KindDate, Min: 2000},
		"until": {Kind: KindDate, Max: 1999},
		"any":   {Kind: KindDate},
	}}
	for _, c := range []fieldCase{
		{"from", "3000-01-01", "3000-01-01", ""}, // no upper bound, no NoFuture
		{"from", "1999", "", "year must be 2000 or later"},
		{"until", "0001-01-01", "0001-01-01", ""},
		{"until", "2000", "", "year must be 1999 or earlier"},
		{"any", "0000", "0000", ""},
		{"any", "9999-12-31", "9999-12-31", ""},
	} {
		t.Run(c.field+"="+c.in, func(t *testing.T) { checkField(t, s, c) })
	}
}

func TestRequiredMissing(t *testing.T) {
	_, err := Dossier().ValidateNew(map[string]string{"full_name": "An", "sex": "  "}, now)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := "date_of_birth: is required (bắt buộc phải có); sex: is required (bắt buộc phải có)"
	if err.Error() != want {
		t.Fatalf("error\n%s\nwant\n%s", err, want)
	}
	_, err = Dossier().ValidateNew(nil, now)
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("nil input: got %v, want three required-field errors", err)
	}
}

func TestEveryBadFieldReportedSorted(t *testing.T) {
	in := validDossier()
	in["sex"] = "x"
	in["personal_id"] = "123"
	in["date_of_birth"] = "2023-02-29"
	in["zzz"] = "unknown"
	in["_deleted"] = "1"
	in["Bad Name"] = "v"
	_, err := Dossier().ValidateNew(in, now)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	want := []string{`"Bad Name"`, "_deleted", "date_of_birth", "personal_id", "sex", "zzz"}
	if strings.Join(fields, ",") != strings.Join(want, ",") {
		t.Fatalf("fields %q, want %q", fields, want)
	}
	if got := errs.Field("personal_id").Error(); got != "personal_id: must be exactly 12 digits (phải gồm đúng 12 chữ số)" {
		t.Fatalf("personal_id error reads %q", got)
	}
	if errs.Field("_deleted").Problem != "is reserved for system use" {
		t.Fatalf("_deleted: %q", errs.Field("_deleted").Problem)
	}
	if errs.Field("zzz").Problem != "is not a field of this schema" {
		t.Fatalf("zzz: %q", errs.Field("zzz").Problem)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != `"Bad Name"` {
		t.Fatalf("errors.As(*FieldError) = %v, want the first field error", fe)
	}
}

func TestUnknownAndReservedFields(t *testing.T) {
	in := validDossier()
	in["village"] = "Bản Phố"
	if _, err := Dossier().ValidateNew(in, now); err == nil {
		t.Fatalf("Dossier accepted unknown field village")
	}
	open := Dossier()
	open.AllowUnknown = true
	in["village"] = "  Bản\tPhố "
	got, err := open.ValidateNew(in, now)
	if err != nil || got["village"] != "Bản Phố" {
		t.Fatalf("AllowUnknown: village=%q, %v", got["village"], err)
	}
	in["village"] = strings.Repeat("x", 501)
	if _, err := open.ValidateNew(in, now); err == nil {
		t.Fatalf("unknown field over 500 characters accepted")
	}
	delete(in, "village")
	for _, name := range []string{"_x", "_", "_id", "_deleted_at", "Full_name", "1abc", "a-b", "full name", strings.Repeat("a", 65), "", "tên"} {
		in := validDossier()
		in[name] = "v"
		_, err := open.ValidateNew(in, now)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 {
			t.Errorf("field name %q: got %v, want one error", name, err)
		}
	}
	in = validDossier()
	in[strings.Repeat("a", 64)] = "v"
	if _, err := open.ValidateNew(in, now); err != nil {
		t.Errorf("64-character field name refused: %v", err)
	}
}

func TestValidateUpdate(t *testing.T) {
	s := Dossier()
	if _, err := s.ValidateUpdate(map[string]string{}, now); !errors.Is(err, ErrNoFields) {
		t.Fatalf("empty update: %v, want ErrNoFields", err)
	}
	if _, err := s.ValidateUpdate(nil, now); !errors.Is(err, ErrNoFields) {
		t.Fatalf("nil update: %v, want ErrNoFields", err)
	}
	got, err := s.ValidateUpdate(map[string]string{"phone": "  ", "commune": "Vạn Thạnh"}, now)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if want := map[string]string{"phone": "", "commune": "Vạn Thạnh"}; !maps.Equal(got, want) {
		t.Fatalf("update = %q, want %q (empty clears)", got, want)
	}
	_, err = s.ValidateUpdate(map[string]string{"full_name": " "}, now)
	var errs Errors
	if !errors.As(err, &errs) || errs.Field("full_name") == nil ||
		errs.Field("full_name").Problem != "is required and cannot be cleared" {
		t.Fatalf("clearing full_name: %v", err)
	}
	// An update need not carry the required fields.
	if _, err := s.ValidateUpdate(map[string]string{"notes": "đã kiểm tra"}, now); err != nil {
		t.Fatalf("update without required fields: %v", err)
	}
}

func TestInvalidUTF8Refused(t *testing.T) {
	for _, field := range []string{"full_name", "hometown", "sex", "personal_id", "phone", "photo_ref", "date_of_birth"} {
		_, err := Dossier().ValidateUpdate(map[string]string{field: "ab\xffc"}, now)
		var errs Errors
		if !errors.As(err, &errs) || errs.Field(field) == nil || errs.Field(field).Problem != "must be valid UTF-8 text" {
			t.Errorf("%s with invalid UTF-8: %v", field, err)
		}
	}
	// An invalid UTF-8 field name is shown escaped, never raw.
	_, err := Dossier().ValidateUpdate(map[string]string{"a\xff\x1b": "v"}, now)
	if err == nil || !strings.Contains(err.Error(), `"a\xff\x1b"`) {
		t.Fatalf("got %v, want the name quoted", err)
	}
}

func TestInvalidSchemaRefusedByValidate(t *testing.T) {
	s := Schema{Fields: map[string]FieldSpec{"a": {Kind: "colour"}}}
	if _, err := s.ValidateNew(map[string]string{"a": "b"}, now); !errors.Is(err, ErrSchema) {
		t.Fatalf("ValidateNew with a bad schema: %v, want ErrSchema", err)
	}
	if _, err := s.ValidateUpdate(map[string]string{"a": "b"}, now); !errors.Is(err, ErrSchema) {
		t.Fatalf("ValidateUpdate with a bad schema: %v, want ErrSchema", err)
	}
}

func TestErrorsRendering(t *testing.T) {
	if got := (Errors{}).Error(); got != "no field errors" {
		t.Fatalf("empty Errors: %q", got)
	}
	e := &FieldError{Field: "sex", Problem: "p", ProblemVI: "v"}
	if got := (Errors{e, e}).Error(); got != "sex: p (v); sex: p (v)" {
		t.Fatalf("Errors: %q", got)
	}
}
