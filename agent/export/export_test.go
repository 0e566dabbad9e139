package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

func TestLoadMigrationsNumbering(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 || ms[0].name != "init" {
		t.Fatalf("migrations %+v", ms)
	}
}

func TestMigrateCreatesTablesAndIsIdempotent(t *testing.T) {
	u := freshDB(t)
	ms, _ := loadMigrations()
	e := open(t, u)
	c := connect(t, u)
	ctx := testCtx(t)

	for _, table := range []string{"fieldsync_ops", "fieldsync_records", "fieldsync_schema_migrations"} {
		var ok bool
		if err := c.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Fatalf("table %s missing (%v)", table, err)
		}
	}
	var idx bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('fieldsync_ops_record_id') IS NOT NULL").Scan(&idx); err != nil || !idx {
		t.Fatalf("index on fieldsync_ops(record_id) missing (%v)", err)
	}
	var n, maxV int
	var applied time.Time
	if err := c.QueryRow(ctx, "SELECT count(*), max(version), max(applied_at) FROM fieldsync_schema_migrations").Scan(&n, &maxV, &applied); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || maxV != len(ms) {
		t.Fatalf("%d migration rows up to %d, want %d", n, maxV, len(ms))
	}

	if err := e.Export(ctx, []Op{mkOp("dev-a", 1, "r1")}, []Record{mkRecord("r1", 1)}); err != nil {
		t.Fatal(err)
	}
	e.Close()

	// Reopening applies nothing again and keeps the data.
	e2 := open(t, u)
	var n2 int
	var applied2 time.Time
	if err := c.QueryRow(ctx, "SELECT count(*), max(applied_at) FROM fieldsync_schema_migrations").Scan(&n2, &applied2); err != nil {
		t.Fatal(err)
	}
	if n2 != n || !applied2.Equal(applied) {
		t.Fatalf("reopen changed the migration rows: %d at %v, was %d at %v", n2, applied2, n, applied)
	}
	if ops, recs := counts(t, e2); ops != 1 || recs != 1 {
		t.Fatalf("after reopen: %d ops, %d records", ops, recs)
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	u := freshDB(t)
	const hubs = 4
	var wg sync.WaitGroup
	errs := make([]error, hubs)
	exps := make([]*Exporter, hubs)
	for i := range hubs {
		wg.Go(func() {
			exps[i], errs[i] = Open(testCtx(t), Config{URL: u})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("hub %d: %v", i, err)
		}
		t.Cleanup(exps[i].Close)
	}
	var n, distinct int
	c := connect(t, u)
	if err := c.QueryRow(testCtx(t), "SELECT count(*), count(DISTINCT version) FROM fieldsync_schema_migrations").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	ms, _ := loadMigrations()
	if n != len(ms) || distinct != len(ms) {
		t.Fatalf("%d migration rows (%d distinct), want %d", n, distinct, len(ms))
	}
	// Every hub can write.
	for i, e := range exps {
		if err := e.Export(testCtx(t), []Op{mkOp("dev-a", uint64(i+1), "r1")}, nil); err != nil {
			t.Fatalf("hub %d export: %v", i, err)
		}
	}
}

func TestExportTwiceIsOneRowPerOp(t *testing.T) {
	u := freshDB(t)
	e := open(t, u)
	ctx := testCtx(t)
	var ops []Op
	var recs []Record
	for i := range 50 {
		id := fmt.Sprintf("rec-%02d", i%10)
		ops = append(ops, mkOp("dev-a", uint64(i+1), id))
	}
	for i := range 10 {
		recs = append(recs, mkRecord(fmt.Sprintf("rec-%02d", i), 5))
	}
	for range 2 {
		if err := e.Export(ctx, ops, recs); err != nil {
			t.Fatal(err)
		}
	}
	if n, r := counts(t, e); n != 50 || r != 10 {
		t.Fatalf("%d op rows, %d record rows; want 50, 10", n, r)
	}
	// The signed bytes are kept byte for byte, NUL and 0xff included.
	c := connect(t, u)
	var signed []byte
	var rec string
	var at time.Time
	if err := c.QueryRow(ctx, "SELECT signed, record_id, at FROM fieldsync_ops WHERE origin = 'dev-a' AND seq = 7").Scan(&signed, &rec, &at); err != nil {
		t.Fatal(err)
	}
	want := mkOp("dev-a", 7, "rec-06")
	if !bytes.Equal(signed, want.Signed) || rec != want.Record || !at.Equal(want.At) {
		t.Fatalf("op row (%q, %q, %v), want (%q, %q, %v)", signed, rec, at, want.Signed, want.Record, want.At)
	}
}

func TestDuplicatesWithinOneBatch(t *testing.T) {
	u := freshDB(t)
	e := open(t, u)
	ops := []Op{mkOp("dev-b", 2, "r"), mkOp("dev-a", 1, "r"), mkOp("dev-b", 2, "r"), mkOp("dev-b", 1, "r")}
	recs := []Record{mkRecord("r", 2), mkRecord("r", 7), mkRecord("r", 3)}
	if err := e.Export(testCtx(t), ops, recs); err != nil {
		t.Fatal(err)
	}
	if n, r := counts(t, e); n != 3 || r != 1 {
		t.Fatalf("%d ops, %d records; want 3, 1", n, r)
	}
	if row, _ := readRecord(t, connect(t, u), "r"); row.version != 7 {
		t.Fatalf("record at version %d, want the batch's highest, 7", row.version)
	}
}

func TestVersionGuard(t *testing.T) {
	u := freshDB(t)
	e := open(t, u)
	c := connect(t, u)
	ctx := testCtx(t)
	export := func(r Record) {
		t.Helper()
		if err := e.Export(ctx, nil, []Record{r}); err != nil {
			t.Fatal(err)
		}
	}

	// A state that does not know the create op yet: no origin.
	v3 := mkRecord("r", 3)
	v3.Origin, v3.CreatedBy = "", ""
	export(v3)
	row, _ := readRecord(t, c, "r")
	if row.version != 3 || row.origin != nil || row.createdBy != nil {
		t.Fatalf("v3 row: version %d origin %v created_by %v", row.version, row.origin, row.createdBy)
	}

	// An older state never moves the row back.
	v2 := mkRecord("r", 2)
	v2.Fields["name"] = "older"
	export(v2)
	if row, _ := readRecord(t, c, "r"); row.version != 3 || strings.Contains(row.fields, "older") {
		t.Fatalf("older state overwrote the row: %+v", row)
	}

	// An equal version replaces it (another hub, same count, other ops)
	// and fills in the origin once known.
	v3b := mkRecord("r", 3)
	v3b.Fields["name"] = "same version, other hub"
	export(v3b)
	row, _ = readRecord(t, c, "r")
	if !strings.Contains(row.fields, "other hub") || row.origin == nil || *row.origin != "dev-a" {
		t.Fatalf("equal version not applied: %+v", row)
	}

	// A newer state that lacks the origin keeps the known one.
	v9 := mkRecord("r", 9)
	v9.Origin, v9.CreatedBy = "", ""
	export(v9)
	row, _ = readRecord(t, c, "r")
	if row.version != 9 || row.origin == nil || *row.origin != "dev-a" || row.createdBy == nil || *row.createdBy != "laptop A" {
		t.Fatalf("v9 row: %+v", row)
	}
}

// TestTwoHubsOverlapping is two hubs on one database receiving the same ops
// through different relays, in different orders and batches, at the same
// time: each op must be one row and each record end at its highest version.
// Hub 1 hears only some origins, so its record versions lag hub 0's; after
// the concurrent phase it exports its whole stream again (a restart that
// lost its receipts), which the version guard must not let move any record
// back.
func TestTwoHubsOverlapping(t *testing.T) {
	u := freshDB(t)
	hubs := []*Exporter{open(t, u), open(t, u)}
	const seed = 20261122
	const origins, perOrigin, nrec = 5, 200, 120

	// Every op of the province; a record's full state counts all its ops.
	var all []Op
	for o := range origins {
		for s := 1; s <= perOrigin; s++ {
			all = append(all, mkOp(fmt.Sprintf("dev-%d", o), uint64(s), fmt.Sprintf("rec-%03d", (o*perOrigin+s)%nrec)))
		}
	}
	highest := map[string]uint64{}
	for _, op := range all {
		highest[op.Record]++
	}
	heard := [][]Op{all, nil}
	for _, op := range all {
		if op.Origin <= "dev-2" {
			heard[1] = append(heard[1], op)
		}
	}

	// stream turns what a hub heard, in its own order, into batches of
	// its own sizes, each record at the count of its ops the hub has seen.
	type batch struct {
		ops  []Op
		recs []Record
	}
	stream := func(h int) []batch {
		rng := rand.New(rand.NewPCG(seed, uint64(h)))
		ops := heard[h]
		order := rng.Perm(len(ops))
		seen := map[string]uint64{}
		var out []batch
		for start := 0; start < len(order); {
			end := min(start+1+rng.IntN(97), len(order))
			var b batch
			for _, i := range order[start:end] {
				op := ops[i]
				seen[op.Record]++
				b.ops = append(b.ops, op)
				b.recs = append(b.recs, mkRecord(op.Record, seen[op.Record]))
			}
			out = append(out, b)
			start = end
		}
		return out
	}
	streams := [][]batch{stream(0), stream(1)}

	var wg sync.WaitGroup
	errs := make([]error, len(hubs))
	for h, e := range hubs {
		wg.Go(func() {
			for _, b := range streams[h] {
				if err := e.Export(testCtx(t), b.ops, b.recs); err != nil {
					errs[h] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for h, err := range errs {
		if err != nil {
			t.Fatalf("hub %d (seed %d): %v", h, seed, err)
		}
	}
	for _, b := range streams[1] {
		if err := hubs[1].Export(testCtx(t), b.ops, b.recs); err != nil {
			t.Fatalf("hub 1 replay: %v", err)
		}
	}

	c := connect(t, u)
	ctx := testCtx(t)
	var n, distinct int64
	if err := c.QueryRow(ctx, "SELECT count(*), count(DISTINCT (origin, seq)) FROM fieldsync_ops").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != int64(len(all)) || distinct != n {
		t.Fatalf("%d op rows (%d distinct), want %d (seed %d)", n, distinct, len(all), seed)
	}
	rows, err := c.Query(ctx, "SELECT id, version FROM fieldsync_records")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got[id] = uint64(v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(highest) {
		t.Fatalf("%d record rows, want %d", len(got), len(highest))
	}
	for id, v := range highest {
		if got[id] != v {
			t.Errorf("record %s at version %d, want %d (seed %d)", id, got[id], v, seed)
		}
	}
}

func TestJSONBKeepsVietnameseByteForByte(t *testing.T) {
	u := freshDB(t)
	e := open(t, u)
	c := connect(t, u)
	ctx := testCtx(t)

	name := norm.NFC.String("Trần Thị Hồng Nhung")
	commune := norm.NFC.String("Xã Đắk Nông, Huyện Ứng Hòa")
	decomposed := norm.NFD.String("Lê Văn Tám") // stored as given too: no normalisation in the export
	if name == norm.NFD.String(name) {
		t.Fatal("test text must differ between NFC and NFD")
	}
	r := mkRecord("vn", 1)
	r.Fields = map[string]string{"name": name, "commune": commune, "alias": decomposed, "note": `<tag> & "quotes" \ end`}
	r.Conflicts = map[string][]Value{"name": {
		{Value: name, Device: "Máy của Đội 1", DeviceID: "dev-a", At: wall, Op: "dev-a/3"},
		{Value: "Trần Thị Hồng Nhụng", Device: "Máy B", DeviceID: "dev-b", At: wall.Add(time.Second), Op: "dev-b/9"},
	}}
	if err := e.Export(ctx, nil, []Record{r}); err != nil {
		t.Fatal(err)
	}

	for field, want := range r.Fields {
		var got []byte
		if err := c.QueryRow(ctx, "SELECT convert_to(fields->>$1, 'UTF8') FROM fieldsync_records WHERE id = 'vn'", field).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, []byte(want)) {
			t.Errorf("field %s: got % x, want % x", field, got, want)
		}
	}
	row, _ := readRecord(t, c, "vn")
	var conflicts map[string][]Value
	if err := json.Unmarshal([]byte(row.conflicts), &conflicts); err != nil {
		t.Fatal(err)
	}
	got := conflicts["name"]
	if len(got) != 2 || got[0].Value != name || got[0].Device != "Máy của Đội 1" || !got[1].At.Equal(wall.Add(time.Second)) || got[1].Op != "dev-b/9" {
		t.Fatalf("conflicts round trip: %+v", conflicts)
	}
	// A record without conflicts stores {} rather than null.
	plain := mkRecord("plain", 1)
	plain.Conflicts = nil
	if err := e.Export(ctx, nil, []Record{plain}); err != nil {
		t.Fatal(err)
	}
	if row, _ := readRecord(t, c, "plain"); row.conflicts != "{}" {
		t.Fatalf("empty conflicts stored as %q", row.conflicts)
	}
}

// TestFailedBatchLeavesNothing checks atomicity three ways: data refused
// before the transaction, a statement the server refuses after the ops were
// written, and the caller's context cancelled between the two statements.
func TestFailedBatchLeavesNothing(t *testing.T) {
	u := freshDB(t)
	e := open(t, u)
	c := connect(t, u)
	ctx := testCtx(t)
	if err := e.Export(ctx, []Op{mkOp("dev-a", 1, "r0")}, []Record{mkRecord("r0", 1)}); err != nil {
		t.Fatal(err)
	}
	batch := func(tag string) ([]Op, []Record) {
		var ops []Op
		var recs []Record
		for i := range 20 {
			ops = append(ops, mkOp("dev-"+tag, uint64(i+1), fmt.Sprintf("%s-%d", tag, i)))
			recs = append(recs, mkRecord(fmt.Sprintf("%s-%d", tag, i), 1))
		}
		return ops, recs
	}
	unchanged := func(what string) {
		t.Helper()
		if n, r := counts(t, e); n != 1 || r != 1 {
			t.Fatalf("%s: %d ops, %d records remain; want the 1 and 1 before", what, n, r)
		}
	}

	t.Run("nul byte", func(t *testing.T) {
		ops, recs := batch("nul")
		recs[len(recs)-1].Fields["name"] = "Nguyễn\x00"
		err := e.Export(ctx, ops, recs)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		unchanged("nul byte")
		ops, _ = batch("nul")
		ops[3].Record = "bad\xff"
		if err := e.Export(ctx, ops, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("invalid UTF-8: err = %v, want ErrInvalid", err)
		}
		unchanged("invalid utf-8")
	})

	t.Run("server refuses the records", func(t *testing.T) {
		// A constraint the records break: the ops statement has already
		// run when the server refuses the second one.
		if _, err := c.Exec(ctx, "ALTER TABLE fieldsync_records ADD CONSTRAINT no_poison CHECK (id <> 'poison')"); err != nil {
			t.Fatal(err)
		}
		defer c.Exec(ctx, "ALTER TABLE fieldsync_records DROP CONSTRAINT no_poison")
		ops, recs := batch("srv")
		recs = append(recs, mkRecord("poison", 1))
		if err := e.Export(ctx, ops, recs); err == nil || errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want the server's refusal", err)
		}
		unchanged("server refusal")
	})

	t.Run("context cancelled mid-batch", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		e.afterOps = func(context.Context) { cancel() }
		defer func() { e.afterOps = nil }()
		ops, recs := batch("cancel")
		if err := e.Export(cctx, ops, recs); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		unchanged("cancel")
	})

	// The exporter is still usable, and the refused batch goes in whole.
	ops, recs := batch("srv")
	if err := e.Export(ctx, ops, recs); err != nil {
		t.Fatal(err)
	}
	if n, r := counts(t, e); n != 21 || r != 21 {
		t.Fatalf("after the failures: %d ops, %d records; want 21, 21", n, r)
	}
}

func TestCountsAndClosed(t *testing.T) {
	u := freshDB(t)
	e := open(t, u)
	if n, r := counts(t, e); n != 0 || r != 0 {
		t.Fatalf("fresh database: %d, %d", n, r)
	}
	if err := e.Export(testCtx(t), nil, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	ops := []Op{mkOp("a", 1, "x"), mkOp("a", 2, "x"), mkOp("b", 1, "y")}
	if err := e.Export(testCtx(t), ops, []Record{mkRecord("x", 2)}); err != nil {
		t.Fatal(err)
	}
	if n, r := counts(t, e); n != 3 || r != 1 {
		t.Fatalf("%d, %d; want 3, 1", n, r)
	}
	e.Close()
	if err := e.Export(testCtx(t), ops, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("export after close: %v", err)
	}
	if _, _, err := e.Counts(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("counts after close: %v", err)
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	u := freshDB(t)
	const secret = "s3cret-Pa55"
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.User = url.UserPassword(pu.User.Username(), secret) // trust auth ignores it
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	e, err := Open(testCtx(t), Config{URL: pu.String(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if !strings.Contains(logs.String(), "postgres export ready") {
		t.Fatalf("no ready line logged: %q", logs.String())
	}

	// A server that is not there: the error names the place, not the secret.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	pu.Host = dead
	_, err = Open(testCtx(t), Config{URL: pu.String(), Logger: logger, ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("open of a closed port succeeded")
	}
	kv := fmt.Sprintf("host=127.0.0.1 port=1 user=postgres password=%s dbname=x connect_timeout=1 =bad", secret)
	_, err2 := Open(testCtx(t), Config{URL: kv, Logger: logger})
	if err2 == nil {
		t.Fatal("open of a malformed url succeeded")
	}
	for _, s := range []string{logs.String(), err.Error(), err2.Error()} {
		if strings.Contains(s, secret) {
			t.Fatalf("password leaked: %q", s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{URL: "postgres://x"}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.ConnectTimeout != d.ConnectTimeout || c.MaxConns != d.MaxConns || c.Retries != d.Retries || c.Logger == nil {
		t.Fatalf("defaults not filled: %+v", c)
	}
	for _, bad := range []Config{{}, {URL: "x", ConnectTimeout: -1}, {URL: "x", MaxConns: -1}} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Fatal("Open without a URL succeeded")
	}
}
