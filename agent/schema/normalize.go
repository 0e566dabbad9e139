package schema

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns s in the form every stored value takes: whitespace runs
// (any Unicode white space, including tabs, line breaks and no-break spaces)
// collapsed to one ASCII space, leading and trailing whitespace removed, and
// the result in Unicode NFC, so that "Nguyễn" typed with combining marks and
// typed precomposed compare equal.
//
// Normalize never fails: invalid UTF-8 sequences become U+FFFD. Validation
// refuses invalid UTF-8 before normalising, so stored values never contain
// such replacements; the replacement only keeps comparison helpers total.
// Normalize is idempotent.
func Normalize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	// Folding before NFC is safe: no canonical decomposition or composition
	// involves white space, so NFC neither creates nor removes spaces (a test
	// checks this over every code point).
	return norm.NFC.String(foldSpace(s))
}

// foldSpace trims s and collapses internal whitespace runs to one space,
// returning s itself when nothing changes (the common case for clean input).
func foldSpace(s string) string {
	clean := true
	prevSpace := true // a leading space is not clean
	for _, r := range s {
		sp := unicode.IsSpace(r)
		if sp && (prevSpace || r != ' ') {
			clean = false
			break
		}
		prevSpace = sp
	}
	if clean && !prevSpace {
		return s
	}
	if clean && s == "" {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	pending := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FoldName returns the form of a name used to find possible duplicates:
// [Normalize]d, then lower-cased (Unicode simple case mapping) and put back
// into NFC. "  NGUYỄN   văn An " and "Nguyễn Văn An" fold to the same string.
func FoldName(s string) string {
	return norm.NFC.String(strings.ToLower(Normalize(s)))
}

// FoldNameNoDiacritics is [FoldName] with every diacritic removed as well, for
// the looser duplicate check that catches a name typed without Vietnamese
// input: "Mý" folds to "my", "Mí" to "mi", "Đặng" to "dang". It strips all
// non-spacing combining marks after canonical decomposition (so tone and vowel
// marks of any Latin-script language go) and maps đ to d, which is a letter of
// its own in Unicode rather than d with a mark.
func FoldNameNoDiacritics(s string) string {
	d := norm.NFD.String(FoldName(s))
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'đ' || r == 'Đ':
			r = 'd'
		}
		b.WriteRune(r)
	}
	// Removing a lone mark that stood between two spaces can leave a double
	// space; Normalize folds it and restores NFC.
	return Normalize(b.String())
}
