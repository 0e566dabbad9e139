package export

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrationFiles are the schema's versions, applied in order: NNNN_name.sql,
// numbered from 0001 without gaps. A released file is never edited; a change
// is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey names fieldsync's migrations among the database's
// advisory locks ("fieldsyn" in ASCII), so two hubs starting at once migrate
// one after the other.
const migrationLockKey int64 = 0x6669656c6473796e

// migrateAttempts covers the races a server without advisory locks leaves
// open (two hubs creating the tracking table at once).
const migrateAttempts = 3

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations, checking their numbering.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, en := range entries {
		name := en.Name()
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || len(num) != 4 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(migrationFiles, path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: rest, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: want version %d (no gaps, no repeats)", m.version, m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies pending migrations and returns the database's schema
// version afterwards.
func (e *Exporter) migrate(ctx context.Context) (int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	for attempt := 1; ; attempt++ {
		v, err := e.migrateOnce(ctx, ms)
		if err == nil {
			return v, nil
		}
		if attempt == migrateAttempts || !migrationRace(err) || ctx.Err() != nil {
			return 0, fmt.Errorf("migrate: %w", err)
		}
		e.log.Warn("postgres migration raced another hub, retrying", "err", err)
	}
}

func (e *Exporter) migrateOnce(ctx context.Context, ms []migration) (int, error) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	// A session-level advisory lock makes a second hub wait until the first
	// has migrated. CockroachDB accepts the call but does not lock, and some
	// servers lack the function: the version claims below still make every
	// migration run once.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		if !lockUnsupported(err) {
			return 0, fmt.Errorf("take migration lock: %w", err)
		}
		e.log.Warn("postgres has no advisory locks; migrating without one", "err", err)
	} else {
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
				// The lock lives as long as the session: end it, so the
				// pool does not hand out a connection still holding it.
				_ = conn.Conn().Close(uctx)
			}
		}()
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS fieldsync_schema_migrations (
		version    int PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return 0, fmt.Errorf("create migrations table: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM fieldsync_schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	highest := 0
	for _, v := range versions {
		applied[int(v)] = true
		highest = max(highest, int(v))
	}

	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		ran, err := e.apply(ctx, conn.Conn(), m)
		if err != nil {
			return 0, err
		}
		if ran {
			e.log.Info("postgres migration applied", "version", m.version, "name", m.name)
		}
		highest = max(highest, m.version)
	}
	if highest > len(ms) {
		// A newer hub migrated this database. Migrations only add, so this
		// hub's statements still work; say so, in case one day they do not.
		e.log.Warn("postgres schema is newer than this hub knows",
			"schema_version", highest, "known_version", len(ms))
	}
	return highest, nil
}

// apply runs one migration in a transaction that first claims its version
// row. A hub that finds the row claimed (another hub's committed migration,
// or one it waited on) skips it: ran is false.
func (e *Exporter) apply(ctx context.Context, conn *pgx.Conn, m migration) (ran bool, err error) {
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			"INSERT INTO fieldsync_schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING",
			m.version, m.name)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		// Without arguments pgx sends this over the simple protocol, which
		// runs a file of several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		ran = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	return ran, nil
}

// lockUnsupported tells whether the server lacks advisory locks.
func lockUnsupported(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "42883" || pe.Code == "0A000" // undefined_function, feature_not_supported
}

// migrationRace tells whether err is a concurrent migration's doing, which a
// new attempt resolves: two CREATE TABLE IF NOT EXISTS at once collide on
// the catalog (23505, 42P07), or a distributed database aborted one of them.
func migrationRace(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "42P07", "40001", "40P01":
		return true
	}
	return false
}
