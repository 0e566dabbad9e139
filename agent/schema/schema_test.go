package schema

import (
	"encoding/json"
	"errors"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestDossierIsValidAndFresh(t *testing.T) {
	if err := Dossier().Check(); err != nil {
		t.Fatalf("Dossier().Check(): %v", err)
	}
	d := Dossier()
	d.Fields["extra"] = FieldSpec{Kind: KindText, Max: 1}
	d.Fields[FieldSex].Enum[0] = "changed"
	if _, ok := Dossier().Fields["extra"]; ok {
		t.Fatalf("Dossier shares its Fields map between calls")
	}
	if Dossier().Fields[FieldSex].Enum[0] != "nam" {
		t.Fatalf("Dossier shares its enum slice between calls")
	}
}

func TestLoadSchemaRoundTrip(t *testing.T) {
	data, err := json.Marshal(Dossier())
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadSchema(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("LoadSchema(%s): %v", data, err)
	}
	if !reflect.DeepEqual(got, Dossier()) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", got, Dossier())
	}
	again, err := json.Marshal(got)
	if err != nil || string(again) != string(data) {
		t.Fatalf("second encoding differs:\n%s\n%s", again, data)
	}
}

func TestLoadSchemaDescribesNewFields(t *testing.T) {
	desc := `{
	  "fields": {
	    "full_name":   {"kind": "name", "min": 1, "max": 100},
	    "boat_number": {"kind": "text", "min": 2, "max": 20},
	    "household":   {"kind": "digits", "digits": 8},
	    "visited":     {"kind": "date", "min": 2020, "no_future": true},
	    "status":      {"kind": "enum", "enum": ["Đã Cấp", "CHƯA cấp"]},
	    "contact":     {"kind": "phone", "min": 10, "max": 11},
	    "scan":        {"kind": "ref", "max": 40}
	  },
	  "required": ["full_name", "household"]
	}`
	s, err := LoadSchema(strings.NewReader(desc))
	if err != nil {
		t.Fatalf("LoadSchema: %v", err)
	}
	if got := s.Fields["status"].Enum; !reflect.DeepEqual(got, []string{"đã cấp", "chưa cấp"}) {
		t.Fatalf("enum values not normalised: %q", got)
	}
	got, err := s.ValidateNew(map[string]string{
		"full_name":   "Lò Thị Mai",
		"boat_number": "KH 90123 TS",
		"household":   "00012345",
		"visited":     "2025-06-14",
		"status":      "ĐÃ CẤP",
		"contact":     "0258 3840 123",
		"scan":        "s/1",
	}, now)
	if err != nil {
		t.Fatalf("ValidateNew: %v", err)
	}
	if got["status"] != "đã cấp" || got["contact"] != "02583840123" {
		t.Fatalf("values: %q", got)
	}
	_, err = s.ValidateNew(map[string]string{"full_name": "Lò Thị Mai", "boat_number": "K", "visited": "2019"}, now)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 ||
		errs.Field("boat_number") == nil || errs.Field("household") == nil || errs.Field("visited") == nil {
		t.Fatalf("got %v, want errors for boat_number, household and visited", err)
	}
}

func TestSchemaCheckRefuses(t *testing.T) {
	text := FieldSpec{Kind: KindText, Max: 10}
	tests := []struct {
		name   string
		schema Schema
		detail string
	}{
		{"empty", Schema{}, "no fields"},
		{"reserved name", Schema{Fields: map[string]FieldSpec{"_id": text}}, "field name _id"},
		{"upper case name", Schema{Fields: map[string]FieldSpec{"Name": text}}, "field name"},
		{"long name", Schema{Fields: map[string]FieldSpec{strings.Repeat("a", 65): text}}, "field name"},
		{"no kind", Schema{Fields: map[string]FieldSpec{"a": {Max: 1}}}, `unknown kind ""`},
		{"unknown kind", Schema{Fields: map[string]FieldSpec{"a": {Kind: "number"}}}, `unknown kind "number"`},
		{"text without max", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindText}}}, "max"},
		{"min over max", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindName, Min: 5, Max: 4}}}, "min"},
		{"negative min", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindRef, Min: -1, Max: 4}}}, "min"},
		{"huge max", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindText, Max: 1 << 30}}}, "max"},
		{"phone without range", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindPhone}}}, "min"},
		{"date year bounds reversed", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindDate, Min: 2000, Max: 1900}}}, "year bounds"},
		{"date five-digit year", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindDate, Max: 10000}}}, "year bounds"},
		{"digits zero", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindDigits}}}, "digits must be"},
		{"enum empty", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindEnum}}}, "at least one value"},
		{"enum not folded", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindEnum, Enum: []string{"Nam"}}}}, "lower case NFC"},
		{"enum decomposed", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindEnum, Enum: []string{"nu\u031b\u0303"}}}}, "lower case NFC"},
		{"enum empty value", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindEnum, Enum: []string{""}}}}, "non-empty"},
		{"enum twice", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindEnum, Enum: []string{"x", "x"}}}}, "listed twice"},
		{"enum on text", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindText, Max: 1, Enum: []string{"x"}}}}, "takes no enum"},
		{"digits on text", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindText, Max: 1, Digits: 3}}}, "takes no digits"},
		{"range on digits", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindDigits, Digits: 3, Max: 3}}}, "takes no min or max"},
		{"range on enum", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindEnum, Enum: []string{"x"}, Min: 1}}}, "takes no min or max"},
		{"no_future on text", Schema{Fields: map[string]FieldSpec{"a": {Kind: KindText, Max: 1, NoFuture: true}}}, "takes no no_future"},
		{"required unknown", Schema{Fields: map[string]FieldSpec{"a": text}, Required: []string{"b"}}, "required field b"},
		{"required twice", Schema{Fields: map[string]FieldSpec{"a": text}, Required: []string{"a", "a"}}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.schema.Check()
			if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("Check() = %v, want ErrSchema saying %q", err, tt.detail)
			}
		})
	}
	// Only unknown fields, no declared ones, is a usable (if loose) schema.
	if err := (Schema{AllowUnknown: true}).Check(); err != nil {
		t.Fatalf("AllowUnknown with no fields: %v", err)
	}
}

func TestLoadSchemaRefuses(t *testing.T) {
	tests := []struct{ name, in, detail string }{
		{"not JSON", `fields`, "invalid character"},
		{"empty", ``, "EOF"},
		{"unknown key", `{"fields":{"a":{"kind":"text","max":1}},"requird":["a"]}`, `unknown field "requird"`},
		{"unknown spec key", `{"fields":{"a":{"kind":"text","maxx":1}}}`, `unknown field "maxx"`},
		{"duplicate field", `{"fields":{"a":{"kind":"text","max":1},"a":{"kind":"ref","max":1}}}`, `duplicate key "a"`},
		{"duplicate spec key", `{"fields":{"a":{"kind":"text","max":1,"max":2}}}`, `duplicate key "max"`},
		{"trailing data", `{"fields":{"a":{"kind":"text","max":1}}} {}`, "data after the description"},
		{"wrong type", `{"fields":{"a":{"kind":"text","max":"1"}}}`, "cannot unmarshal"},
		{"invalid UTF-8", "{\"fields\":{\"a\":{\"kind\":\"enum\",\"enum\":[\"\xff\"]}}}", "not valid UTF-8"},
		{"fails check", `{"fields":{"a":{"kind":"text"}}}`, "field a"},
		{"enum twice after folding", `{"fields":{"a":{"kind":"enum","enum":["Nam","nam"]}}}`, "listed twice"},
		{"too large", `{"fields":{"a":{"kind":"text","max":1}}}` + strings.Repeat(" ", MaxSchemaBytes), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSchema(strings.NewReader(tt.in))
			if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("LoadSchema = %+v, %v; want ErrSchema saying %q", s, err, tt.detail)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestLoadSchemaReadError(t *testing.T) {
	_, err := LoadSchema(failingReader{})
	if err == nil || errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v, want the read error, not ErrSchema", err)
	}
}

// The package is pure: it may import the standard library (minus anything
// that reaches disk or network), x/text's normaliser and agent/attach (for
// the attachment field names; pure itself, which its own test checks),
// nothing else.
func TestImportsStayPure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"os", "net", "syscall", "io/fs", "os/exec", "unsafe", "math/rand", "crypto/rand"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := goparser.ParseFile(token.NewFileSet(), f, src, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			third := strings.Contains(strings.Split(path, "/")[0], ".")
			if third && path != "golang.org/x/text/unicode/norm" && path != "github.com/fieldsync/fieldsync/agent/attach" {
				t.Errorf("%s imports %s: only the standard library, x/text/unicode/norm and agent/attach are allowed", f, path)
			}
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s: the package does no I/O and takes no randomness", f, path)
				}
			}
		}
	}
}
