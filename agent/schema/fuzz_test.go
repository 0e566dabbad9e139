package schema

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzParseAndValidate feeds arbitrary bytes through ParseInput and both
// Validate methods of the default schema and of a schema that allows unknown
// fields. It asserts: no panic; ParseInput refuses only with ErrNotObject and
// accepts only what encoding/json decodes to the same map; validation fails
// only with sorted, fully worded Errors (or ErrNoFields); and on success every
// value is valid UTF-8, NFC, and validating the output again gives the same
// output.
//
// The seed corpus runs with every go test; explore further with
//
//	go test ./agent/schema -run '^$' -fuzz FuzzParseAndValidate -fuzztime 60s
func FuzzParseAndValidate(f *testing.F) {
	seeds := []string{
		`{"full_name":"Nguyễn Văn An","date_of_birth":"1985-03-07","sex":"nam"}`,
		`{"full_name":"Nguye\u0302\u0303n Thi\u0323 Mai","date_of_birth":"1950","sex":"NỮ"}`,
		"{\"full_name\":\"Nguye\u0302\u0303n  Thị\tHoa\",\"date_of_birth\":\"2024-02-29\",\"sex\":\"Nữ\"}",
		`{"full_name":"Hờ A Dính","date_of_birth":"1972","sex":"nam","ethnicity":"Mông","commune":"Mèo Vạc"}`,
		`{"full_name":"Giàng Seo Phử","date_of_birth":"2001-12-31","sex":"male","personal_id":"002201012345","phone":"+84 912.345-678"}`,
		`{"full_name":"Lò Văn Mý","date_of_birth":"1990-01-01","sex":"khác","hometown":"Tủa Chùa, Điện Biên","notes":"đã kiểm tra"}`,
		`{"full_name":"Đặng Thị Ánh","date_of_birth":"2023-02-29","sex":"female"}`,
		`{"full_name":"O’Neil-Smith Jr.","date_of_birth":"2026-01-01","sex":"other","photo_ref":"photo/1.jpg","fingerprint_ref":"fp 1"}`,
		`{"phone":""}`,
		`{"full_name":" "}`,
		`{"_deleted":"1","Full_Name":"x","village":"Bản Phố"}`,
		`{"notes":"a\u0000b\u202e","hometown":"\ud83d\ude00"}`,
		`{"sex":"nam","sex":"nữ"}`,
		`{"personal_id":123456789012}`,
		`{"a":"\ud800"}`,
		`{}`,
		`[]`,
		``,
		"{\"full_name\":\"\xff\"}",
		`{"full_name":"a \u0301 b","date_of_birth":"1950-02-30","sex":"nu"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dossier := Dossier()
	open := Dossier()
	open.AllowUnknown = true
	f.Fuzz(func(t *testing.T, data []byte) {
		fields, err := ParseInput(data)
		if err != nil {
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("ParseInput error %v is not ErrNotObject", err)
			}
			return
		}
		agreesWithEncodingJSON(t, data, fields)
		for _, s := range []Schema{dossier, open} {
			checkValidation(t, s, fields, false)
			checkValidation(t, s, fields, true)
		}
		// The comparison helpers are total and idempotent on any string.
		for k, v := range fields {
			for _, in := range []string{k, v} {
				for _, fold := range []func(string) string{Normalize, FoldName, FoldNameNoDiacritics} {
					out := fold(in)
					if !utf8.ValidString(out) || !norm.NFC.IsNormalString(out) || fold(out) != out {
						t.Fatalf("fold of %q gave %q, not valid NFC or not idempotent", in, out)
					}
				}
			}
		}
	})
}

func checkValidation(t *testing.T, s Schema, fields map[string]string, update bool) {
	t.Helper()
	validate := s.ValidateNew
	if update {
		validate = s.ValidateUpdate
	}
	before := maps.Clone(fields)
	out, err := validate(fields, now)
	if !maps.Equal(fields, before) {
		t.Fatalf("validation modified its input")
	}
	if err != nil {
		if out != nil {
			t.Fatalf("output %q returned with error %v", out, err)
		}
		if update && len(fields) == 0 && errors.Is(err, ErrNoFields) {
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("validation error %v is not Errors", err)
		}
		if !slices.IsSortedFunc(errs, func(a, b *FieldError) int {
			if a.Field < b.Field {
				return -1
			}
			if a.Field > b.Field {
				return 1
			}
			return 0
		}) {
			t.Fatalf("errors not sorted by field: %v", err)
		}
		for _, e := range errs {
			if e.Field == "" || e.Problem == "" || e.ProblemVI == "" || !utf8.ValidString(e.Error()) {
				t.Fatalf("badly worded field error %#v", e)
			}
		}
		return
	}
	for k, v := range out {
		if _, given := fields[k]; !given {
			t.Fatalf("output has field %q that was not given", k)
		}
		if !utf8.ValidString(v) || !norm.NFC.IsNormalString(v) || Normalize(v) != v {
			t.Fatalf("output %s=%q is not valid, NFC, folded text", k, v)
		}
		if v == "" && !update {
			t.Fatalf("new record stores empty %s", k)
		}
	}
	again, err := validate(out, now)
	if err != nil || !maps.Equal(again, out) {
		t.Fatalf("re-validating %q gave %q, %v", out, again, err)
	}
}

// FuzzValidateValue drives single field values straight into validation,
// skipping JSON, so the fuzzer spends its effort on the field rules.
func FuzzValidateValue(f *testing.F) {
	for _, c := range [][2]string{
		{"full_name", "Nguye\u0302\u0303n Văn An"},
		{"full_name", "O’Neil"},
		{"date_of_birth", "2024-02-29"},
		{"date_of_birth", "1950"},
		{"sex", "NU\u031b\u0303"},
		{"personal_id", "001085012345"},
		{"phone", "+84 912.345-678"},
		{"hometown", "Tủa Chùa\u2028Điện Biên"},
		{"photo_ref", "sha256:abc"},
		{"village", "Bản\u00a0Phố"},
		{"_x", "1"},
	} {
		f.Add(c[0], c[1])
	}
	dossier := Dossier()
	open := Dossier()
	open.AllowUnknown = true
	f.Fuzz(func(t *testing.T, name, value string) {
		in := validDossier()
		in[name] = value
		for _, s := range []Schema{dossier, open} {
			checkValidation(t, s, in, false)
			checkValidation(t, s, map[string]string{name: value}, true)
		}
	})
}
