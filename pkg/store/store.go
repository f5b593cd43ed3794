// Package store keeps the local state of kommo-summarizer in one SQLite file:
// the OAuth tokens, what each summary covered, summaries waiting for their
// write-back to be confirmed, the run log and the run lock.
//
// Several processes may open the same file (a cron run and an `auth`
// command, or two overlapping cron runs): every write is one IMMEDIATE
// transaction, so writers queue on SQLite's lock instead of failing halfway.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver; pure Go, no cgo
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a statement waits for another connection's write
// lock before it fails with SQLITE_BUSY. UpdateToken holds the lock during an
// HTTP call to the token endpoint, so it is well above one such call.
const busyTimeout = 10 * time.Second

// DB is the store. It is safe for concurrent use.
type DB struct {
	db   *sql.DB
	path string
	// wsem queues this process's writers in Go: SQLite's busy handler makes
	// a connection that finds the write lock taken sleep 1, 2, 5, 10, 25,
	// 50, 100 ms between tries, which is most of a burst's latency (serve's
	// handlers write before they answer). Other processes still meet the
	// busy handler.
	wsem chan struct{}

	// Now returns the current time; tests replace it. Stored times are
	// unix milliseconds, so they come back truncated to the millisecond.
	Now func() time.Time
}

// Open opens (or creates) the database at path, creating its directory, and
// brings its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: the database path is empty: set store.path")
	}
	if strings.ContainsRune(path, '?') {
		// The driver reads everything after '?' as DSN parameters.
		return nil, fmt.Errorf("store: %s: the database path must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create the directory of %s: %w", path, err)
	}
	// SQLite gives the -wal and -shm files the mode of the database file, and
	// the database holds OAuth tokens: create it private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // already names path
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	f.Close()

	dsn := path + "?_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)" +
		// Every read-write transaction starts with BEGIN IMMEDIATE: it takes
		// the write lock up front (waiting under busy_timeout) instead of
		// failing with SQLITE_BUSY when a read turns into a write.
		"&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{db: sqldb, path: path, Now: time.Now, wsem: make(chan struct{}, 1)}
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	return db.db.Close()
}

type migration struct {
	version int
	name    string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := filepath.Base(name)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a number, like 0002_", name)
		}
		out = append(out, migration{version: v, name: name})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same number", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// migrate applies the embedded migrations that the database has not seen,
// in order, each in its own transaction with its version row, so a failed
// migration leaves the schema at the previous version.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return err
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	var have int
	if err := db.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; have > latest {
		return fmt.Errorf("the database has schema version %d, this program knows up to %d: use a newer kommo-summarizer", have, latest)
	}
	for _, m := range ms {
		if m.version <= have {
			continue
		}
		err := db.write(ctx, func(tx *sql.Tx) error {
			// Another process may have applied it since we looked.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil || n > 0 {
				return err
			}
			body, err := fs.ReadFile(migrationFS, m.name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, filepath.Base(m.name), ms64(db.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(m.name), err)
		}
	}
	return nil
}

// write runs fn in one read-write transaction. The DSN makes it BEGIN
// IMMEDIATE, so the write lock is held from the first statement: what fn
// reads cannot change under it. Errors of fn come back unwrapped.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	t := time.NewTimer(busyTimeout)
	defer t.Stop()
	select {
	case db.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("store: %s is busy: another write of this process held it for %s", db.path, busyTimeout)
	}
	defer func() { <-db.wsem }()
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin a write transaction on %s: %w", db.path, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit to %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now == nil {
		return time.Now().UTC()
	}
	return db.Now().UTC()
}

// ms64 stores a time as unix milliseconds; the zero time is 0.
func ms64(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms64, in UTC.
func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// limitArg turns "0 or less = all" into SQLite's LIMIT -1.
func limitArg(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
