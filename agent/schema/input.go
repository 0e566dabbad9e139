package schema

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxInputBytes bounds the JSON input ParseInput accepts: 1 MiB is far more than
// any dossier (photos and fingerprints travel as references, not inline).
const MaxInputBytes = 1 << 20

// ParseInput decodes untrusted JSON strictly: exactly one object whose values
// are all JSON strings, no duplicate keys (after unescaping), no data after the
// object, valid UTF-8 with no unpaired surrogate escapes, and at most
// [MaxInputBytes] bytes. Anything else is refused with an error wrapping
// [ErrNotObject] that says what and where.
//
// It returns the raw map, neither normalised nor checked against a schema;
// pass it to [Schema.ValidateNew] or [Schema.ValidateUpdate]. The caller owns
// the map.
//
// encoding/json is not used because it accepts duplicate keys (last wins) and
// silently turns invalid UTF-8 and lone surrogates into U+FFFD, which would
// store something other than what the client sent.
func ParseInput(data []byte) (map[string]string, error) {
	if len(data) > MaxInputBytes {
		return nil, fmt.Errorf("parse input: %w: larger than %d bytes", ErrNotObject, MaxInputBytes)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("parse input: %w: not valid UTF-8", ErrNotObject)
	}
	p := parser{data: data}
	m, err := p.object()
	if err != nil {
		return nil, fmt.Errorf("parse input: %w: %w", ErrNotObject, err)
	}
	return m, nil
}

// parser reads one flat JSON object of strings from data.
type parser struct {
	data []byte
	pos  int
}

// parseError is a problem at a byte offset of the input.
type parseError struct {
	pos int
	msg string
}

func (e *parseError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.pos) }

func (p *parser) fail(format string, args ...any) error {
	return &parseError{pos: p.pos, msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// next returns the byte at the current position, or 0 at the end.
func (p *parser) next() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

// what describes the byte at the current position for an error message.
func (p *parser) what() string {
	if p.pos >= len(p.data) {
		return "end of input"
	}
	switch c := p.data[p.pos]; c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	default:
		return fmt.Sprintf("%q", rune(c))
	}
}

func (p *parser) object() (map[string]string, error) {
	p.skipSpace()
	if p.next() != '{' {
		return nil, p.fail("expected an object, found %s", p.what())
	}
	p.pos++
	m := make(map[string]string)
	p.skipSpace()
	if p.next() == '}' {
		p.pos++
		return m, p.end()
	}
	for {
		p.skipSpace()
		if p.next() != '"' {
			return nil, p.fail("expected a string key, found %s", p.what())
		}
		keyPos := p.pos
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, &parseError{pos: keyPos, msg: "duplicate key " + displayName(key)}
		}
		p.skipSpace()
		if p.next() != ':' {
			return nil, p.fail("expected ':' after key %s", displayName(key))
		}
		p.pos++
		p.skipSpace()
		if p.next() != '"' {
			return nil, p.fail("value of %s must be a JSON string, found %s", displayName(key), p.what())
		}
		val, err := p.str()
		if err != nil {
			return nil, err
		}
		m[key] = val
		p.skipSpace()
		switch p.next() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, p.end()
		default:
			return nil, p.fail("expected ',' or '}', found %s", p.what())
		}
	}
}

// end checks that nothing but whitespace follows the object.
func (p *parser) end() error {
	p.skipSpace()
	if p.pos != len(p.data) {
		return p.fail("data after the object")
	}
	return nil
}

// str reads a JSON string starting at the opening quote.
func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := string(p.data[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.fail("control character in string")
		}
		p.pos++
	}
	var b strings.Builder
	b.Write(p.data[start:p.pos])
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c != '\\':
			b.WriteByte(c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.data) {
			break
		}
		esc := p.data[p.pos+1]
		switch esc {
		case '"', '\\', '/':
			b.WriteByte(esc)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, err := p.unicodeEscape()
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
			continue
		default:
			return "", p.fail("invalid escape \\%c", rune(esc))
		}
		p.pos += 2
	}
	return "", p.fail("unterminated string")
}

// unicodeEscape reads \uXXXX, or a surrogate pair \uD8XX\uDCXX, at the current
// position and returns the code point. Unpaired surrogates are refused.
func (p *parser) unicodeEscape() (rune, error) {
	hi, ok := p.hex4(p.pos + 2)
	if !ok {
		return 0, p.fail("invalid \\u escape")
	}
	switch {
	case utf16.IsSurrogate(hi) && hi < 0xDC00:
		lo, ok := rune(0), false
		if p.pos+7 < len(p.data) && p.data[p.pos+6] == '\\' && p.data[p.pos+7] == 'u' {
			lo, ok = p.hex4(p.pos + 8)
		}
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, p.fail("unpaired surrogate escape")
		}
		p.pos += 12
		return utf16.DecodeRune(hi, lo), nil
	case utf16.IsSurrogate(hi):
		return 0, p.fail("unpaired surrogate escape")
	}
	p.pos += 6
	return hi, nil
}

// hex4 decodes four hex digits at data[at:].
func (p *parser) hex4(at int) (rune, bool) {
	if at+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[at : at+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}
