// Package pgtest starts a throwaway PostgreSQL server for tests: a fresh
// cluster in a temporary directory, listening on 127.0.0.1 only, on a free
// port, with trust authentication. It owns nothing a production binary uses;
// only tests import it (the export package's and the hub's end-to-end tests),
// and the demo and the benchmark, which stand it in for a province's database.
//
// The server binaries are taken from /usr/lib/postgresql/<version>/bin, the
// highest version present (Debian's layout; `make deps` installs them). When
// the process runs as root, initdb refuses to run, so initdb and pg_ctl run
// as the `postgres` user through runuser, in a directory that user owns.
//
// Require stops the cluster through t.Cleanup, which runs even when the test
// fails. A test binary that dies without cleanup (killed by -timeout, a
// panic, a signal) would leave the server running: a small watchdog process
// stops it and removes its directory within about a second of that.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres reports that no PostgreSQL server binaries were found, so no
// server can be started; tests skip, unless FIELDSYNC_REQUIRE_POSTGRES=1.
var ErrNoPostgres = errors.New("pgtest: no PostgreSQL server binaries in " + binGlob)

// RequireEnv is the environment variable that turns a missing PostgreSQL into
// a test failure instead of a skip (`make test` sets it in CI, where the
// binaries are installed first, so a skip there would hide a broken setup).
const RequireEnv = "FIELDSYNC_REQUIRE_POSTGRES"

// DatabaseName is the database Start creates and returns a URL to.
const DatabaseName = "fieldsync"

const (
	binGlob = "/usr/lib/postgresql/*/bin"
	// serverUser runs the server when the test process is root: initdb
	// refuses root, and Debian's postgresql package creates this user.
	serverUser = "postgres"
	// startTimeout bounds pg_ctl start/stop (a cold start takes about 1 s).
	startTimeout = 60 * time.Second
	// startAttempts covers losing the free port to another process between
	// picking it and the server binding it.
	startAttempts = 3
)

// Start starts a throwaway PostgreSQL cluster on 127.0.0.1 with a free port,
// in a new temporary directory, and returns a URL to a fresh database named
// DatabaseName and a stop function. stop stops the server and removes the
// directory; it is safe to call more than once and from any goroutine. When no
// server binaries exist it returns ErrNoPostgres.
func Start() (dbURL string, stop func(), err error) {
	bin, err := findBin()
	if err != nil {
		return "", nil, err
	}
	return start(bin)
}

// Psql returns the path of the psql client: the one beside the server
// binaries Start uses (Debian installs it there with the server), else the
// first on PATH. It is for showing the exported rows as an operator would
// query them (the demo).
func Psql() (string, error) {
	if bin, err := findBin(); err == nil {
		p := filepath.Join(bin, "psql")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("psql")
	if err != nil {
		return "", fmt.Errorf("pgtest: no psql client beside the server binaries or on PATH: %w", err)
	}
	return p, nil
}

// Require starts a server with Start, stops it when the test ends, and
// returns the URL of its fresh database. Without PostgreSQL binaries it skips
// the test, or fails it when FIELDSYNC_REQUIRE_POSTGRES=1; any other failure
// to start fails the test.
func Require(t testing.TB) string {
	t.Helper()
	dbURL, stop, err := Start()
	Check(t, err)
	t.Cleanup(stop)
	return dbURL
}

// Check handles an error from Start in a test: nil passes; ErrNoPostgres
// skips the test, or fails it when FIELDSYNC_REQUIRE_POSTGRES=1; any other
// error fails it. It is for tests that share one server (started once,
// stopped in TestMain) instead of calling Require.
func Check(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	switch {
	case errors.Is(err, ErrNoPostgres) && os.Getenv(RequireEnv) == "1":
		t.Fatalf("%v, and %s=1 (install the postgresql package: make deps)", err, RequireEnv)
	case errors.Is(err, ErrNoPostgres):
		t.Skipf("%v (install the postgresql package to run this test)", err)
	default:
		t.Fatalf("start postgres: %v", err)
	}
}

// CreateDatabase creates the database name on the server of dbURL and
// returns dbURL pointing at it. It runs outside any transaction, as CREATE
// DATABASE requires.
func CreateDatabase(dbURL, name string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("parse url: %w", err)
	}
	if name == "" {
		return "", errors.New("create database: empty name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// findBin returns the bin directory of the highest PostgreSQL version.
func findBin() (string, error) {
	dirs, _ := filepath.Glob(binGlob) // the pattern is constant and valid
	type cand struct {
		dir string
		ver []int
	}
	var cands []cand
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err != nil {
			continue
		}
		cands = append(cands, cand{d, parseVersion(filepath.Base(filepath.Dir(d)))})
	}
	if len(cands) == 0 {
		return "", ErrNoPostgres
	}
	sort.Slice(cands, func(i, j int) bool { return lessVersion(cands[i].ver, cands[j].ver) })
	return cands[len(cands)-1].dir, nil
}

// parseVersion reads "15" or "9.6" as numbers; anything else sorts first.
func parseVersion(s string) []int {
	var v []int
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

func lessVersion(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// runner runs the server binaries, as the postgres user when we are root.
type runner struct {
	bin  string
	asPG bool
}

func (r runner) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	prog := filepath.Join(r.bin, name)
	var c *exec.Cmd
	if r.asPG {
		c = exec.CommandContext(ctx, "runuser", append([]string{"-u", serverUser, "--", prog}, args...)...)
	} else {
		c = exec.CommandContext(ctx, prog, args...)
	}
	// A fixed, minimal locale environment: the cluster must not depend on
	// the caller's LANG, and the postgres user cannot use root's HOME.
	c.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if r.asPG {
		c.Env = append(c.Env, "HOME=/tmp")
	}
	return c
}

func (r runner) run(ctx context.Context, name string, args ...string) error {
	out, err := r.cmd(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func start(bin string) (string, func(), error) {
	r := runner{bin: bin, asPG: os.Geteuid() == 0}
	dir, err := makeDir(r.asPG)
	if err != nil {
		return "", nil, err
	}
	data := filepath.Join(dir, "data")
	logFile := filepath.Join(dir, "server.log")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	fail := func(err error) (string, func(), error) {
		os.RemoveAll(dir)
		return "", nil, err
	}
	// --no-sync: the cluster is thrown away, no need to fsync its creation.
	// The server itself keeps its default durability (fsync on), so the
	// export benchmark measures real commits.
	if err := r.run(ctx, "initdb", "-D", data, "-A", "trust", "-U", serverUser,
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return fail(fmt.Errorf("initdb: %w", err))
	}
	var port int
	for attempt := 1; ; attempt++ {
		if port, err = freePort(); err != nil {
			return fail(err)
		}
		// pg_ctl hands -o to a shell: quote the directory.
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, shellQuote(dir))
		err = r.run(ctx, "pg_ctl", "-D", data, "-o", opts, "-l", logFile, "-w", "-t", "60", "start")
		if err == nil {
			break
		}
		r.stopServer(data) // pg_ctl may time out with the server half up
		if attempt == startAttempts {
			log, _ := os.ReadFile(logFile)
			return fail(fmt.Errorf("start server: %w\n%s", err, tail(string(log), 2000)))
		}
	}
	watchdog := r.watch(data, dir)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if watchdog != nil {
				_ = watchdog.Process.Kill()
				_ = watchdog.Wait()
			}
			r.stopServer(data)
			os.RemoveAll(dir)
		})
	}
	base := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", serverUser, port)
	dbURL, err := CreateDatabase(base, DatabaseName)
	if err != nil {
		stop()
		return "", nil, err
	}
	return dbURL, stop, nil
}

func (r runner) stopServer(data string) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := r.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"); err != nil {
		// Fast shutdown waits for nothing but a checkpoint; if even that
		// fails, do not leave a server running on the machine.
		_ = r.run(ctx, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
	}
}

// watch starts a watchdog that stops the server and removes its directory
// once this process is gone without calling stop: a test binary killed by
// -timeout, a panic or a signal runs no cleanup, and the server would
// otherwise outlive it. setsid keeps the watchdog out of the test's process
// group, so an interrupt that kills the test does not kill the watchdog.
// Without setsid or sh there is no watchdog (nil), and stop still works.
func (r runner) watch(data, dir string) *exec.Cmd {
	pgctl := shellQuote(filepath.Join(r.bin, "pg_ctl"))
	if r.asPG {
		pgctl = "runuser -u " + serverUser + " -- " + pgctl
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s -D %s -m immediate -w stop >/dev/null 2>&1; rm -rf %s",
		os.Getpid(), pgctl, shellQuote(data), shellQuote(dir))
	c := exec.Command("setsid", "sh", "-c", script)
	if err := c.Start(); err != nil {
		return nil
	}
	return c
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// makeDir creates the cluster's directory; as root it is handed to the
// postgres user, under a parent that user can reach.
func makeDir(asPG bool) (string, error) {
	parent := ""
	if asPG && !worldSearchable(os.TempDir()) {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "fieldsync-pg-")
	if err != nil {
		return "", fmt.Errorf("make cluster dir: %w", err)
	}
	if asPG {
		u, err := user.Lookup(serverUser)
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("running as root needs the %s user: %w", serverUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("chown cluster dir: %w", err)
		}
	}
	return dir, nil
}

func worldSearchable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// freePort asks the kernel for a free port on loopback. Another process may
// take it before the server binds it; Start retries for that.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
