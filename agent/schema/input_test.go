package schema

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestParseInputAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"empty object", `{}`, map[string]string{}},
		{"whitespace around", " \n\t{ } \r\n", map[string]string{}},
		{"fields", `{"full_name": "Nguyễn Văn An", "sex": "nam"}`,
			map[string]string{"full_name": "Nguyễn Văn An", "sex": "nam"}},
		{"escapes", `{"a":"\"\\\/\b\f\n\r\t"}`, map[string]string{"a": "\"\\/\b\f\n\r\t"}},
		{"unicode escape", `{"a":"Nguy\u1ec5n"}`, map[string]string{"a": "Nguyễn"}},
		{"upper-case hex escape", `{"a":"\u00C0\u1EC5"}`, map[string]string{"a": "Àễ"}},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, map[string]string{"a": "😀"}},
		{"escaped key", `{"full\u005fname":"An"}`, map[string]string{"full_name": "An"}},
		{"empty key and value", `{"":""}`, map[string]string{"": ""}},
		{"NUL escape kept for validation to refuse", `{"a":"x\u0000y"}`, map[string]string{"a": "x\x00y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInput([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseInput(%q): %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("ParseInput(%q) = %q, want %q", tt.in, got, tt.want)
			}
			agreesWithEncodingJSON(t, []byte(tt.in), got)
		})
	}
}

// agreesWithEncodingJSON checks that input ParseInput accepted is valid JSON
// that encoding/json decodes to the same map: the strict parser may refuse
// more, never accept something different.
func agreesWithEncodingJSON(t testing.TB, data []byte, got map[string]string) {
	t.Helper()
	var ref map[string]string
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("ParseInput accepted %q, encoding/json refuses it: %v", data, err)
	}
	if !maps.Equal(got, ref) {
		t.Fatalf("ParseInput(%q) = %q, encoding/json gives %q", data, got, ref)
	}
}

func TestParseInputRefuses(t *testing.T) {
	tests := []struct {
		name, in, detail string
	}{
		{"empty", ``, "expected an object, found end of input"},
		{"array", `["a"]`, "found an array"},
		{"string", `"a"`, `found '"'`},
		{"number value", `{"personal_id": 1234}`, `value of personal_id must be a JSON string, found a number`},
		{"negative number", `{"phone": -1}`, "found a number"},
		{"null value", `{"phone": null}`, "found null"},
		{"bool value", `{"a": true}`, "found a boolean"},
		{"nested object", `{"a": {"b": "c"}}`, "found an object"},
		{"nested array", `{"a": ["b"]}`, "found an array"},
		{"duplicate key", `{"sex":"nam","sex":"nữ"}`, "duplicate key sex at offset 13"},
		{"duplicate after unescape", `{"sex":"nam","s\u0065x":"nữ"}`, "duplicate key sex"},
		{"trailing data", `{"a":"b"} x`, "data after the object"},
		{"two objects", `{"a":"b"}{"c":"d"}`, "data after the object"},
		{"trailing comma", `{"a":"b",}`, "expected a string key"},
		{"missing colon", `{"a" "b"}`, "expected ':'"},
		{"missing comma", `{"a":"b" "c":"d"}`, "expected ',' or '}'"},
		{"unterminated object", `{"a":"b"`, "expected ',' or '}', found end of input"},
		{"unterminated string", `{"a":"b`, "unterminated string"},
		{"unterminated after escape", `{"a":"b\`, "unterminated string"},
		{"raw control character", "{\"a\":\"b\nc\"}", "control character in string"},
		{"bad escape", `{"a":"\x41"}`, `invalid escape \x`},
		{"short unicode escape", `{"a":"\u12"}`, `invalid \u escape`},
		{"lone high surrogate", `{"a":"\ud83d"}`, "unpaired surrogate escape"},
		{"high surrogate then letter", `{"a":"\ud83dx"}`, "unpaired surrogate escape"},
		{"two high surrogates", `{"a":"\ud83d\ud83d"}`, "unpaired surrogate escape"},
		{"lone low surrogate", `{"a":"\ude00"}`, "unpaired surrogate escape"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "not valid UTF-8"},
		{"byte order mark", "\ufeff{}", "expected an object"},
		{"single quotes", `{'a':'b'}`, "expected a string key"},
		{"unquoted key", `{a:"b"}`, "expected a string key"},
		{"long bad key is cut", `{"` + strings.Repeat("Z", 1000) + `": 1}`, `"` + strings.Repeat("Z", 64) + `"…`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInput([]byte(tt.in))
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("ParseInput(%q) = %q, %v; want ErrNotObject", tt.in, got, err)
			}
			if got != nil {
				t.Fatalf("ParseInput(%q) returned a map with its error", tt.in)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("ParseInput(%q) error %q does not say %q", tt.in, err, tt.detail)
			}
		})
	}
}

func TestParseInputSizeLimit(t *testing.T) {
	// An object of exactly MaxInputBytes is accepted; one byte more is not.
	build := func(size int) []byte {
		prefix, suffix := `{"notes":"`, `"}`
		return []byte(prefix + strings.Repeat("a", size-len(prefix)-len(suffix)) + suffix)
	}
	at := build(MaxInputBytes)
	if len(at) != MaxInputBytes {
		t.Fatalf("built %d bytes", len(at))
	}
	m, err := ParseInput(at)
	if err != nil {
		t.Fatalf("input of exactly MaxInputBytes refused: %v", err)
	}
	if len(m["notes"]) != MaxInputBytes-12 {
		t.Fatalf("notes has %d bytes", len(m["notes"]))
	}
	_, err = ParseInput(build(MaxInputBytes + 1))
	if !errors.Is(err, ErrNotObject) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized input: got %v, want ErrNotObject saying larger than", err)
	}
}
