package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrInvalid reports a batch holding data PostgreSQL cannot store as given:
// text that is not UTF-8 or holds a NUL byte, an empty id, or a number beyond
// bigint. Nothing of such a batch is written, and retrying it cannot succeed.
var ErrInvalid = errors.New("export: invalid data")

// ErrClosed reports a call on an Exporter after Close.
var ErrClosed = errors.New("export: closed")

// Op is one op as the hub stored it.
type Op struct {
	Origin string    // device id of the op's author
	Seq    uint64    // position in the origin's log, from 1
	Signed []byte    // the op exactly as signed and stored (CBOR envelope bytes), for audit
	Record string    // record id the op touches
	At     time.Time // the op's own (HLC wall) time; zero is stored as NULL
}

// Value is one live value of a field in conflict.
type Value struct {
	Value    string    `json:"value"`
	Device   string    `json:"device"`
	DeviceID string    `json:"device_id"`
	At       time.Time `json:"at"`
	Op       string    `json:"op"`
}

// Record is one record's merged state at the exporting hub.
type Record struct {
	ID        string
	Fields    map[string]string  // shown values
	Conflicts map[string][]Value // fields with >1 live value; empty map when none
	Origin    string             // device id that created it ("" if the create op is not known yet)
	CreatedBy string             // device name
	UpdatedAt time.Time
	// Version orders states of one record: the number of ops applied to it
	// at the exporting hub. A row is only overwritten by a state with a
	// Version >= the stored one, so two hubs writing the same record at
	// different stages never move it backwards.
	Version uint64
}

// Config configures Open. Zero values of the optional fields take the
// defaults of DefaultConfig, so Config{URL: u} is a complete configuration.
type Config struct {
	// URL is the database to export into, as a postgres:// URL or a
	// keyword/value string (libpq syntax). It may hold a password; the
	// Exporter never logs it.
	URL string
	// Logger receives connection and migration events; nil discards them.
	Logger *slog.Logger
	// ConnectTimeout bounds establishing one connection, and Open's first
	// connection and migrations are bounded by a few of these.
	ConnectTimeout time.Duration
	// MaxConns is the size of the connection pool. One hub writes one batch
	// at a time, so a few connections suffice; every hub sharing a database
	// holds this many, which matters under a server's max_connections.
	MaxConns int32
	// Retries is how many times Export retries a batch after a
	// serialization failure (SQLSTATE 40001) or a deadlock (40P01).
	// Negative means never retry.
	Retries int
}

// DefaultConfig returns the defaults, without a URL.
func DefaultConfig() Config {
	return Config{
		// 10 s: a hub across a WAN from its database, but failing fast
		// enough for an operator to see a wrong address at start.
		ConnectTimeout: 10 * time.Second,
		// 4: one batch in flight plus status queries and migrations.
		MaxConns: 4,
		// 1: the brief's contract; CockroachDB's serialization failures
		// under contention usually pass on the next attempt, and a batch
		// that fails again is retried whole by the hub, receipt-less.
		Retries: 1,
	}
}

// validate fills defaults into the zero fields and checks the rest.
func (c *Config) validate() error {
	d := DefaultConfig()
	if strings.TrimSpace(c.URL) == "" {
		return errors.New("config: empty database url")
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("config: negative connect timeout %v", c.ConnectTimeout)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("config: negative max conns %d", c.MaxConns)
	}
	if c.MaxConns == 0 {
		c.MaxConns = d.MaxConns
	}
	if c.Retries == 0 {
		c.Retries = d.Retries
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Exporter writes batches into one database. Its methods may be called from
// several goroutines; each Export runs in its own transaction.
type Exporter struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	retries int
	// isClosed turns calls after Close into ErrClosed rather than the
	// pool's own error.
	isClosed atomic.Bool
	// afterOps, when set (by tests), runs inside the transaction between
	// writing the ops and writing the records.
	afterOps func(ctx context.Context)
}

// Open connects to the database and applies pending migrations. It is safe
// for several hubs to Open one database at the same moment. The password in
// cfg.URL is never logged, nor part of a returned error.
func Open(ctx context.Context, cfg Config) (*Exporter, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open export: %w", err)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgconn's ParseConfigError redacts the password itself.
		return nil, fmt.Errorf("open export: parse url: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	if pc.MinConns > pc.MaxConns {
		pc.MinConns = pc.MaxConns
	}
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "fieldsync-hub"
	}
	where := slog.Group("db",
		"host", pc.ConnConfig.Host, "port", pc.ConnConfig.Port,
		"database", pc.ConnConfig.Database, "user", pc.ConnConfig.User)

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open export: %w", err)
	}
	e := &Exporter{pool: pool, log: cfg.Logger, retries: cfg.Retries}
	// Migrations wait on other hubs' migrations; bound the whole start.
	mctx, cancel := context.WithTimeout(ctx, 6*cfg.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(mctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open export: connect: %w", err)
	}
	version, err := e.migrate(mctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open export: %w", err)
	}
	e.log.Info("postgres export ready", where, "schema_version", version)
	return e, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (e *Exporter) Close() {
	e.isClosed.Store(true)
	e.pool.Close()
}

// Counts returns how many op rows and record rows the database holds (from
// every hub exporting into it).
func (e *Exporter) Counts(ctx context.Context) (ops, records int64, err error) {
	if e.closed() {
		return 0, 0, ErrClosed
	}
	err = e.pool.QueryRow(ctx,
		"SELECT (SELECT count(*) FROM fieldsync_ops), (SELECT count(*) FROM fieldsync_records)",
	).Scan(&ops, &records)
	if err != nil {
		return 0, 0, fmt.Errorf("count rows: %w", err)
	}
	return ops, records, nil
}

func (e *Exporter) closed() bool { return e.isClosed.Load() }
