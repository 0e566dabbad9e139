package export

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/agent/export/pgtest"
	"github.com/jackc/pgx/v5"
)

// One server for the package's tests (initdb costs about a second), one
// fresh database per test. The watchdog in pgtest stops the server should
// this binary die before TestMain's stop.
var shared struct {
	once sync.Once
	url  string
	stop func()
	err  error
	n    atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// freshDB returns the URL of a new, empty database on the shared server.
func freshDB(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() { shared.url, shared.stop, shared.err = pgtest.Start() })
	pgtest.Check(t, shared.err)
	name := fmt.Sprintf("t%d_%s", shared.n.Add(1), nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(name) > 60 {
		name = name[:60]
	}
	u, err := pgtest.CreateDatabase(shared.url, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a log sink safe for the pool's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func open(t testing.TB, url string) *Exporter {
	t.Helper()
	e, err := Open(testCtx(t), Config{URL: url, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// testWriter sends log lines to t.Log (shown for failed tests and -v).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// wall is a fixed instant; tests never read the clock for data.
var wall = time.Date(2026, 11, 22, 8, 30, 0, 0, time.UTC)

func mkOp(origin string, seq uint64, record string) Op {
	return Op{
		Origin: origin,
		Seq:    seq,
		// Bytes a text column would refuse (0x00, invalid UTF-8): bytea
		// must keep them exactly.
		Signed: []byte(fmt.Sprintf("\x00\xff signed %s/%d", origin, seq)),
		Record: record,
		At:     wall.Add(time.Duration(seq) * time.Second),
	}
}

func mkRecord(id string, version uint64) Record {
	return Record{
		ID:        id,
		Fields:    map[string]string{"name": "Nguyễn Văn An", "commune": "Phường Bến Nghé", "v": fmt.Sprint(version)},
		Conflicts: map[string][]Value{},
		Origin:    "dev-a",
		CreatedBy: "laptop A",
		UpdatedAt: wall.Add(time.Duration(version) * time.Minute),
		Version:   version,
	}
}

type recordRow struct {
	fields    string
	conflicts string
	origin    *string
	createdBy *string
	version   int64
}

func readRecord(t testing.TB, c *pgx.Conn, id string) (recordRow, bool) {
	t.Helper()
	var r recordRow
	err := c.QueryRow(testCtx(t),
		"SELECT fields::text, conflicts::text, origin, created_by, version FROM fieldsync_records WHERE id = $1", id,
	).Scan(&r.fields, &r.conflicts, &r.origin, &r.createdBy, &r.version)
	if err == pgx.ErrNoRows {
		return r, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

func counts(t testing.TB, e *Exporter) (int64, int64) {
	t.Helper()
	ops, recs, err := e.Counts(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return ops, recs
}
