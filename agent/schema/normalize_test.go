package schema

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"clean", "Nguyễn Văn An", "Nguyễn Văn An"},
		{"decomposed to NFC", "Nguye\u0302\u0303n", "Nguyễn"},
		{"decomposed, marks reordered by class", "Le\u0302\u0323", "Lệ"},
		{"trim", "  \tAn\n", "An"},
		{"collapse runs", "Lò   Văn\t\tMý", "Lò Văn Mý"},
		{"no-break and ideographic spaces", "Lò\u00a0Văn\u3000Mý", "Lò Văn Mý"},
		{"line breaks fold", "line one\r\nline two\u2028three", "line one line two three"},
		{"only whitespace", " \t\n\u00a0 ", ""},
		{"invalid UTF-8 replaced", "a\xffb", "a\uFFFDb"},
		{"leading combining mark kept", " \u0301a", "\u0301a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Normalize(tt.in)
			if got != tt.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := Normalize(got); again != got {
				t.Fatalf("not idempotent: %q -> %q", got, again)
			}
			if !norm.NFC.IsNormalString(got) {
				t.Fatalf("%q is not NFC", got)
			}
		})
	}
}

// Normalize folds whitespace before NFC, and FoldNameNoDiacritics removes
// marks after NFD. Both rely on normalisation never turning a non-space into
// white space, and never turning white space into anything but a space.
func TestNormalisationNeverCreatesWhitespace(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) || unicode.IsSpace(r) {
			continue
		}
		s := string(r)
		for _, f := range []norm.Form{norm.NFC, norm.NFD} {
			if out := f.String(s); strings.IndexFunc(out, unicode.IsSpace) >= 0 {
				t.Fatalf("U+%04X normalises to %q, which contains white space", r, out)
			}
		}
	}
}

func TestFoldName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Nguyễn Văn An", "nguyễn văn an"},
		{"  NGUYỄN   văn An ", "nguyễn văn an"},
		{"NGUYE\u0302\u0303N", "nguyễn"},
		{"ĐẶNG THỊ HỒNG", "đặng thị hồng"},
		{"Giàng Seo Phử", "giàng seo phử"},
	}
	for _, tt := range tests {
		if got := FoldName(tt.in); got != tt.want {
			t.Errorf("FoldName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFoldNameNoDiacritics(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Mý", "my"},
		{"Mí", "mi"},
		{"Đặng Thị Ánh", "dang thi anh"},
		{"đinh", "dinh"},
		{"Nguye\u0302\u0303n Văn An", "nguyen van an"},
		{"Hờ A Dính", "ho a dinh"},
		{"Trương Thị Mỹ Lệ", "truong thi my le"},
		{"a \u0301 b", "a b"}, // a lone mark between spaces must not leave a double space
		{"O'Neil-Smith Jr.", "o'neil-smith jr."},
	}
	for _, tt := range tests {
		if got := FoldNameNoDiacritics(tt.in); got != tt.want {
			t.Errorf("FoldNameNoDiacritics(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Every Vietnamese vowel with every tone, upper and lower case, folds to
	// its base letter.
	vowels := map[string]string{
		"a": "aàáảãạăằắẳẵặâầấẩẫậAÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ",
		"e": "eèéẻẽẹêềếểễệEÈÉẺẼẸÊỀẾỂỄỆ",
		"i": "iìíỉĩịIÌÍỈĨỊ",
		"o": "oòóỏõọôồốổỗộơờớởỡợOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ",
		"u": "uùúủũụưừứửữựUÙÚỦŨỤƯỪỨỬỮỰ",
		"y": "yỳýỷỹỵYỲÝỶỸỴ",
		"d": "dđDĐ",
	}
	for base, all := range vowels {
		for _, r := range all {
			for _, form := range []norm.Form{norm.NFC, norm.NFD} {
				in := form.String(string(r))
				if got := FoldNameNoDiacritics(in); got != base {
					t.Errorf("FoldNameNoDiacritics(%q) = %q, want %q", in, got, base)
				}
			}
		}
	}
}
