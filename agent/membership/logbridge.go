package membership

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"net"
	"sync"
	"time"
)

// logBridge is the io.Writer behind the *log.Logger memberlist writes to. It
// turns lines like "[DEBUG] memberlist: Stream connection from=..." into
// records of l at the matching level, without the "[LEVEL] memberlist: "
// prefix. log.Logger hands it one whole line per Write and serialises the
// calls.
type logBridge struct {
	l *slog.Logger

	mu      sync.Mutex
	refused map[string]time.Time // remote address -> last "refused" line
}

// newStdLogger returns the logger to give memberlist.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(&logBridge{l: l.With("lib", "memberlist"), refused: map[string]time.Time{}}, "", 0)
}

// refusals are memberlist's words for gossip from outside the deployment:
// another deployment's label, or a key that does not decrypt. They become one
// clear line per remote address a minute instead of an error per packet.
var refusals = [][]byte{[]byte("unacceptable label"), []byte("decrypt")}

func (b *logBridge) refusal(msg []byte) bool {
	hit := false
	for _, r := range refusals {
		if bytes.Contains(msg, r) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	from := ""
	if i := bytes.Index(msg, []byte("from=")); i >= 0 {
		from = string(bytes.Fields(msg[i+len("from="):])[0])
		if host, _, err := net.SplitHostPort(from); err == nil {
			from = host
		}
	}
	b.mu.Lock()
	last, seen := b.refused[from]
	now := time.Now()
	if seen && now.Sub(last) < time.Minute {
		b.mu.Unlock()
		return true
	}
	if len(b.refused) > 1024 {
		clear(b.refused)
	}
	b.refused[from] = now
	b.mu.Unlock()
	b.l.Warn("refused peer: gossip not of this deployment (a device of another deployment, or a wrong key)",
		"from", from, "detail", string(msg))
	return true
}

// conflictLine starts memberlist's line about a name claimed from a second
// address (conflict.go).
var conflictLine = []byte("Conflicting address for ")

// levels maps memberlist's prefixes to slog levels; [DEBUG] stays Debug
// because memberlist logs every stream connection at that level.
var levels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[TRACE]"), slog.LevelDebug},
}

func (b *logBridge) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo // a line without a known prefix
	for _, lv := range levels {
		if rest, ok := bytes.CutPrefix(msg, lv.prefix); ok {
			msg, level = bytes.TrimSpace(rest), lv.level
			break
		}
	}
	if rest, ok := bytes.CutPrefix(msg, []byte("memberlist:")); ok {
		msg = bytes.TrimSpace(rest)
	}
	if level >= slog.LevelWarn && b.refusal(msg) {
		return len(p), nil
	}
	if bytes.HasPrefix(msg, conflictLine) {
		// memberlist says this at every gossip about the device, several
		// times a second; the conflict delegate records it and the agent
		// logs each occurrence once.
		level = slog.LevelDebug
	}
	// Checked first so that idle debug chatter costs no allocation.
	if !b.l.Enabled(context.Background(), level) {
		return len(p), nil
	}
	b.l.Log(context.Background(), level, string(msg))
	return len(p), nil
}
