package membership

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{DeviceID: "dev-a", PeerID: "12D3KooWabc", DataPort: 4001},
		{DeviceID: "dev-b", PeerID: "12D3KooWxyz", DataPort: 65535, Digest: math.MaxUint64},
		{DeviceID: strings.Repeat("d", maxIDLen), PeerID: strings.Repeat("p", maxIDLen), DataPort: 1, Digest: 42},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		if len(b) > memberlist.MetaMaxSize {
			t.Fatalf("encoded %d bytes, over memberlist's %d", len(b), memberlist.MetaMaxSize)
		}
		got, err := decodeMeta(m.DeviceID, b)
		if err != nil || got != m {
			t.Fatalf("decode = %+v, %v; want %+v", got, err, m)
		}
	}
	// The device id travels as the node name only, and an empty digest
	// costs nothing: the metadata of a fresh node stays tiny.
	b, err := encodeMeta(Meta{DeviceID: "dev-a", PeerID: "12D3KooWabc", DataPort: 4001})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("dev-a")) || len(b) > 20 {
		t.Fatalf("metadata %x: want no device id and at most 20 bytes", b)
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := enc(map[int]any{1: "12D3KooWabc", 2: 4001})
	if _, err := decodeMeta("dev", good); err != nil {
		t.Fatalf("good meta rejected: %v", err)
	}
	// Unknown keys are ignored, so a later version may add some.
	if _, err := decodeMeta("dev", enc(map[int]any{1: "12D3KooWabc", 2: 4001, 9: "new"})); err != nil {
		t.Fatalf("meta with an unknown key rejected: %v", err)
	}
	for name, tc := range map[string]struct {
		node string
		b    []byte
	}{
		"empty":              {"dev", nil},
		"not cbor":           {"dev", []byte("hello, memberlist")},
		"truncated":          {"dev", good[:len(good)-1]},
		"trailing bytes":     {"dev", append(bytes.Clone(good), 0x00)},
		"array":              {"dev", enc([]any{"12D3KooWabc", 4001})},
		"no peer id":         {"dev", enc(map[int]any{2: 4001})},
		"peer id not text":   {"dev", enc(map[int]any{1: 7, 2: 4001})},
		"peer id too long":   {"dev", enc(map[int]any{1: strings.Repeat("p", maxIDLen+1), 2: 4001})},
		"no data port":       {"dev", enc(map[int]any{1: "12D3KooWabc"})},
		"data port too big":  {"dev", enc(map[int]any{1: "12D3KooWabc", 2: 70000})},
		"negative data port": {"dev", enc(map[int]any{1: "12D3KooWabc", 2: -1})},
		"negative digest":    {"dev", enc(map[int]any{1: "12D3KooWabc", 2: 4001, 3: -5})},
		"duplicate key":      {"dev", []byte{0xa3, 0x01, 0x61, 'p', 0x02, 0x19, 0x0f, 0xa1, 0x01, 0x61, 'q'}},
		"deep nesting":       {"dev", bytes.Repeat([]byte{0x81}, 100)},
		"huge length":        {"dev", []byte{0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		"empty node name":    {"", good},
		"node name not utf8": {"\xfe", good},
	} {
		if m, err := decodeMeta(tc.node, tc.b); !errors.Is(err, errBadMeta) {
			t.Errorf("%s: decodeMeta = %+v, %v; want errBadMeta", name, m, err)
		}
	}
}

// TestDecodeMetaRandomBytes feeds seeded random and mutated inputs: decoding
// untrusted metadata must never panic.
func TestDecodeMetaRandomBytes(t *testing.T) {
	const seed = 20261123
	rng := rand.New(rand.NewPCG(seed, seed))
	good, err := encodeMeta(Meta{DeviceID: "d", PeerID: "12D3KooWabc", DataPort: 4001, Digest: 99})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic with seed %d: %v", seed, r)
		}
	}()
	for range 3000 {
		var b []byte
		if rng.IntN(2) == 0 {
			b = make([]byte, rng.IntN(64))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		} else {
			b = bytes.Clone(good)
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
		}
		m, err := decodeMeta("d", b)
		if err == nil && (m.PeerID == "" || m.DataPort == 0) {
			t.Fatalf("seed %d: accepted %x as %+v", seed, b, m)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, err := encodeMeta(Meta{DeviceID: "d", PeerID: "12D3KooWabc", DataPort: 4001, Digest: 7})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("d", good)
	f.Add("d", []byte{})
	f.Add("", []byte{0xa0})
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		m, err := decodeMeta(name, b)
		if err != nil {
			return
		}
		if m.DeviceID != name || m.PeerID == "" || m.DataPort < 1 || m.DataPort > 65535 {
			t.Fatalf("accepted %q %x as %+v", name, b, m)
		}
	})
}

func TestMemberFromNode(t *testing.T) {
	b, err := encodeMeta(Meta{DeviceID: "dev-6", PeerID: "12D3KooWsix", DataPort: 4001, Digest: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip   net.IP
		want string
	}{
		{net.ParseIP("192.168.1.20").To4(), "192.168.1.20:4001"},
		{net.ParseIP("fd00::20"), "[fd00::20]:4001"},
	} {
		got, err := memberFromNode(&memberlist.Node{Name: "dev-6", Addr: tc.ip, Port: 4002, Meta: b})
		if err != nil || got.Addr != tc.want || got.DeviceID != "dev-6" || got.Digest != 3 {
			t.Errorf("memberFromNode(%v) = %+v, %v; want addr %s", tc.ip, got, err, tc.want)
		}
	}
	if _, err := memberFromNode(&memberlist.Node{Name: "dev-6", Meta: b}); !errors.Is(err, errBadMeta) {
		t.Errorf("node without address: err = %v, want errBadMeta", err)
	}
}

// record is one log record kept by recorder.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder is a slog.Handler that keeps every record, so tests can assert
// on logging. It is safe to use after the test ends (memberlist's goroutines
// may still log while shutting down).
type recorder struct {
	mu      *sync.Mutex
	records *[]record
	attrs   []slog.Attr
}

func newRecorder() recorder {
	return recorder{mu: new(sync.Mutex), records: new([]record)}
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := make(map[string]string)
	for _, a := range r.attrs {
		attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.records = append(*r.records, record{level: rec.Level, msg: rec.Message, attrs: attrs})
	return nil
}

func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	return r
}

func (r recorder) WithGroup(string) slog.Handler { return r }

// find returns the records at level whose message contains substr.
func (r recorder) find(level slog.Level, substr string) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record
	for _, rec := range *r.records {
		if rec.level == level && strings.Contains(rec.msg, substr) {
			out = append(out, rec)
		}
	}
	return out
}

// Gossip from another deployment becomes one clear "refused peer" line per
// remote address a minute, not an error per packet.
func TestLogBridgeTurnsOutsidersIntoOneRefusal(t *testing.T) {
	rec := newRecorder()
	l := newStdLogger(slog.New(rec))
	for i := 0; i < 5; i++ {
		l.Printf(`[ERR] memberlist: discarding stream with unacceptable label "fieldsync/other": from=127.0.0.1:%d`, 4000+i)
	}
	l.Printf("[ERR] memberlist: Failed to decrypt packet from=10.0.0.9:7422")
	got := rec.find(slog.LevelWarn, "refused peer")
	if len(got) != 2 || got[0].attrs["from"] != "127.0.0.1" || got[1].attrs["from"] != "10.0.0.9" {
		t.Fatalf("refusals %+v", got)
	}
	if len(rec.find(slog.LevelError, "")) != 0 {
		t.Fatal("refusals still logged as errors")
	}
}

func TestLogBridgeLevels(t *testing.T) {
	rec := newRecorder()
	l := newStdLogger(slog.New(rec))
	l.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:5000")
	l.Printf("[INFO] memberlist: Marking dev-b as failed")
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: dev-c)")
	l.Printf("[ERR] memberlist: Failed to receive: boom from=127.0.0.1:5001")
	l.Printf("[ERR] Failed to shutdown transport: boom")
	l.Printf("[ERR] memberlist: Conflicting address for dev-x. Mine: 127.0.0.1:5003 Theirs: 127.0.0.1:5005 Old state: 0")
	l.Printf("no prefix at all")
	for _, tc := range []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "Stream connection from=127.0.0.1:5000"},
		{slog.LevelInfo, "Marking dev-b as failed"},
		{slog.LevelWarn, "Refuting a suspect message (from: dev-c)"},
		{slog.LevelError, "Failed to receive: boom from=127.0.0.1:5001"},
		{slog.LevelError, "Failed to shutdown transport: boom"},
		// Recorded by the conflict delegate; the agent logs it once.
		{slog.LevelDebug, "Conflicting address for dev-x. Mine: 127.0.0.1:5003 Theirs: 127.0.0.1:5005 Old state: 0"},
		{slog.LevelInfo, "no prefix at all"},
	} {
		got := rec.find(tc.level, tc.msg)
		if len(got) != 1 || got[0].msg != tc.msg || got[0].attrs["lib"] != "memberlist" {
			t.Errorf("want one %v record %q with lib=memberlist, got %+v", tc.level, tc.msg, got)
		}
	}
}

func TestLogBridgeSkipsDisabledLevels(t *testing.T) {
	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Printf("[DEBUG] memberlist: chatter")
	l.Printf("[WARN] memberlist: worth seeing")
	out := buf.String()
	if strings.Contains(out, "chatter") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, `msg="worth seeing"`) {
		t.Fatalf("log output:\n%s", out)
	}
}
