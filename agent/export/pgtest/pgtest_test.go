package pgtest

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartCreateStop(t *testing.T) {
	dbURL, stop, err := Start()
	if errors.Is(err, ErrNoPostgres) && os.Getenv(RequireEnv) != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Path != "/"+DatabaseName {
		t.Fatalf("url %s: want 127.0.0.1 and database %s", dbURL, DatabaseName)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var db, listen string
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('listen_addresses')").Scan(&db, &listen); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if db != DatabaseName || listen != "127.0.0.1" {
		t.Fatalf("database %q listening on %q", db, listen)
	}

	other, err := CreateDatabase(dbURL, "second db")
	if err != nil {
		t.Fatal(err)
	}
	conn2, err := pgx.Connect(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn2.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	conn2.Close(ctx)
	if db != "second db" {
		t.Fatalf("second database is %q", db)
	}

	stop()
	stop() // idempotent
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Fatalf("server still listening on %s after stop", u.Host)
	}
}

func TestRequire(t *testing.T) {
	dbURL := Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestVersionOrder(t *testing.T) {
	if !lessVersion(parseVersion("9.6"), parseVersion("15")) || lessVersion(parseVersion("16"), parseVersion("15")) {
		t.Fatal("version order wrong")
	}
	if !lessVersion(parseVersion("x"), parseVersion("13")) {
		t.Fatal("unparsable version must sort first")
	}
}

// TestWatchdogStopsOrphan runs this test binary as a child that starts a
// server and exits without stopping it; the watchdog must stop it.
func TestWatchdogStopsOrphan(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN") == "1" {
		dbURL, _, err := Start()
		if err != nil {
			os.Exit(3)
		}
		u, _ := url.Parse(dbURL)
		os.Stdout.WriteString(u.Host + "\n")
		os.Exit(0) // no stop: the orphan the watchdog is for
	}
	if _, err := findBin(); err != nil {
		Check(t, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdogStopsOrphan$")
	cmd.Env = append(os.Environ(), "PGTEST_ORPHAN=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	host := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	if _, _, err := net.SplitHostPort(host); err != nil {
		t.Fatalf("child printed %q", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			return // stopped
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("orphaned server on %s still up after 20 s", host)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outcomeTB records how Check ended a test instead of ending it.
type outcomeTB struct {
	testing.TB
	outcome string
}

func (o *outcomeTB) Helper()               {}
func (o *outcomeTB) Skipf(string, ...any)  { o.outcome = "skip" }
func (o *outcomeTB) Fatalf(string, ...any) { o.outcome = "fatal" }

func TestCheckSkipsOrFails(t *testing.T) {
	for _, tc := range []struct {
		err     error
		require string
		want    string
	}{
		{nil, "", ""},
		{ErrNoPostgres, "", "skip"},
		{ErrNoPostgres, "1", "fatal"},
		{errors.New("initdb: boom"), "", "fatal"},
	} {
		t.Setenv(RequireEnv, tc.require)
		o := &outcomeTB{TB: t}
		Check(o, tc.err)
		if o.outcome != tc.want {
			t.Errorf("Check(%v) with %s=%q: %q, want %q", tc.err, RequireEnv, tc.require, o.outcome, tc.want)
		}
	}
}
