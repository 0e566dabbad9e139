package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// narrator prints the story: steps, explanations in Vietnamese with English
// beside, the command lines a newcomer can repeat by hand, and results.
type narrator struct {
	w io.Writer
	// shown rewrites what is printed: the temporary directory becomes
	// $DEMO and the binary's path becomes "fieldsync", so command lines
	// read the same on every machine.
	shown *strings.Replacer
}

const (
	indent    = "    "
	resIndent = "      "
	rule      = "────────────────────────────────────────────────────────────────────────"
)

// step opens a step: "▶ Bước n / Step n: vi / en".
func (n *narrator) step(num int, vi, en string) {
	fmt.Fprintf(n.w, "\n%s\n▶ Bước %d / Step %d: %s / %s\n", rule, num, num, vi, en)
}

// explain prints a Vietnamese sentence with its English beside (below),
// each wrapped to a readable width.
func (n *narrator) explain(vi, en string) {
	for _, text := range []string{vi, en} {
		for i, l := range wrap(text, wrapWidth) {
			lead := indent
			if i > 0 {
				lead += "  "
			}
			fmt.Fprintf(n.w, "%s%s\n", lead, l)
		}
	}
}

// wrapWidth is the width explanations wrap at, in characters.
const wrapWidth = 96

// wrap breaks text into lines of at most width characters at spaces; a
// longer word stays whole.
func wrap(text string, width int) []string {
	var lines []string
	var cur []string
	n := 0
	for _, w := range strings.Fields(text) {
		k := utf8.RuneCountInString(w)
		if n > 0 && n+1+k > width {
			lines = append(lines, strings.Join(cur, " "))
			cur, n = nil, 0
		}
		if n > 0 {
			n++
		}
		cur = append(cur, w)
		n += k
	}
	if len(cur) > 0 {
		lines = append(lines, strings.Join(cur, " "))
	}
	return lines
}

// command prints a command line as a person would type it.
func (n *narrator) command(args ...string) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(n.shown.Replace(a))
	}
	fmt.Fprintf(n.w, "%s$ %s\n", indent, strings.Join(quoted, " "))
}

// script prints a shell command of several lines (a loop, a here-document)
// as typed: the first after "$ ", the others under it. The lines are shown
// as given, only $DEMO and the binary's path rewritten; the caller quotes.
func (n *narrator) script(lines ...string) {
	for i, l := range lines {
		lead := "$ "
		if i > 0 {
			lead = "  "
		}
		fmt.Fprintf(n.w, "%s%s%s\n", indent, lead, n.shown.Replace(l))
	}
}

// result prints an outcome under a command.
func (n *narrator) result(format string, args ...any) {
	fmt.Fprintf(n.w, "%s✓ %s\n", resIndent, fmt.Sprintf(format, args...))
}

// line prints an indented line.
func (n *narrator) line(format string, args ...any) {
	fmt.Fprintf(n.w, "%s%s\n", resIndent, fmt.Sprintf(format, args...))
}

// block prints text (a command's output), indented and framed.
func (n *narrator) block(text string) {
	for _, l := range strings.Split(strings.TrimRight(n.shown.Replace(text), "\n"), "\n") {
		fmt.Fprintf(n.w, "%s│ %s\n", resIndent, l)
	}
}

// shellQuote quotes s for a POSIX shell when it needs it, leaving $DEMO
// expandable.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+$", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return `"` + strings.NewReplacer(`"`, `\"`, `\`, `\\`, "`", "\\`").Replace(s) + `"`
}

// seconds shows a duration: milliseconds under a second, else seconds with
// two decimals.
func seconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// syncWriter serialises writes from the narrator and the agents' log
// prefixers, so lines do not interleave mid-line.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
