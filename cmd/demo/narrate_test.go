package main

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWrapKeepsWordsAndWidth(t *testing.T) {
	text := "Khóa gốc (authority) của đợt triển khai chỉ nằm trên máy quản trị; nó ký danh tính của từng máy."
	lines := wrap(text, 30)
	for _, l := range lines {
		if utf8.RuneCountInString(l) > 30 {
			t.Fatalf("line %q longer than 30", l)
		}
	}
	if got := strings.Join(lines, " "); got != text {
		t.Fatalf("wrapped text lost words: %q", got)
	}
	if got := wrap("một-từ-rất-dài-không-thể-ngắt", 5); !slices.Equal(got, []string{"một-từ-rất-dài-không-thể-ngắt"}) {
		t.Fatalf("long word: %q", got)
	}
	if got := wrap("", 10); len(got) != 0 {
		t.Fatalf("empty: %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"--join":             "--join",
		"127.0.0.1:4001":     "127.0.0.1:4001",
		"$DEMO/laptop-a":     "$DEMO/laptop-a",
		"":                   "''",
		"Vừ Mí Chứ":          `"Vừ Mí Chứ"`,
		`a"b`:                `"a\"b"`,
		"$DEMO/with space/x": `"$DEMO/with space/x"`,
		"`rm -rf`":           "\"\\`rm -rf\\`\"",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
