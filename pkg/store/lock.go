package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// LockHolder is the run that holds the run lock.
type LockHolder struct {
	RunID                  string
	PID                    int
	Host                   string
	StartedAt, HeartbeatAt time.Time
}

// LockedError means another live run holds the run lock.
type LockedError struct {
	Holder LockHolder

	now time.Time // when the lock was found held, for "last seen"
}

// Error says who holds the lock and when it was last seen, so that a user can
// tell a slow run from a dead one.
func (e *LockedError) Error() string {
	h := e.Holder
	now := e.now
	if now.IsZero() {
		now = time.Now()
	}
	seen := max(now.Sub(h.HeartbeatAt).Round(time.Second), 0)
	return fmt.Sprintf("another run holds the lock: run %s (pid %d on host %s) started %s, last seen %s ago",
		h.RunID, h.PID, h.Host, h.StartedAt.UTC().Format(time.RFC3339), seen)
}

// ErrLockLost means the run lock is no longer held by the run that asks:
// another run took it over because this one looked dead.
var ErrLockLost = errors.New("store: the run lock is no longer ours")

func getLock(ctx context.Context, q queryRower) (LockHolder, bool, error) {
	var h LockHolder
	var started, beat int64
	err := q.QueryRowContext(ctx, `SELECT run_id, pid, host, started_at, heartbeat_at FROM run_lock WHERE id = 1`).
		Scan(&h.RunID, &h.PID, &h.Host, &started, &beat)
	if errors.Is(err, sql.ErrNoRows) {
		return LockHolder{}, false, nil
	}
	if err != nil {
		return LockHolder{}, false, fmt.Errorf("store: read the run lock: %w", err)
	}
	h.StartedAt, h.HeartbeatAt = fromMS(started), fromMS(beat)
	return h, true, nil
}

// AcquireLock takes the run lock for h.RunID. When another run holds it,
// AcquireLock takes it over if that run looks dead: its heartbeat is older
// than staleAfter (staleAfter <= 0: never), or it runs on this host and its
// process is gone (unix only; elsewhere the heartbeat alone decides).
// Otherwise it returns a *LockedError. A run whose lock is taken over is
// recorded as RunKilled. Zero PID, Host and StartedAt in h are
// this process, this host and now. Acquiring a lock the run already holds
// renews it.
func (db *DB) AcquireLock(ctx context.Context, h LockHolder, staleAfter time.Duration) error {
	if h.RunID == "" {
		return errors.New("store: the run lock needs a run id")
	}
	now := db.now()
	host, _ := os.Hostname()
	if h.PID == 0 {
		h.PID = os.Getpid()
	}
	if h.Host == "" {
		h.Host = host
	}
	if h.StartedAt.IsZero() {
		h.StartedAt = now
	}
	h.HeartbeatAt = now
	return db.write(ctx, func(tx *sql.Tx) error {
		cur, held, err := getLock(ctx, tx)
		if err != nil {
			return err
		}
		if held && cur.RunID != h.RunID {
			if !looksDead(cur, now, staleAfter, host) {
				return &LockedError{Holder: cur, now: now}
			}
			if err := markKilled(ctx, tx, cur.RunID, h.RunID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO run_lock (id, run_id, pid, host, started_at, heartbeat_at)
			VALUES (1, ?, ?, ?, ?, ?)`, h.RunID, h.PID, h.Host, ms64(h.StartedAt), ms64(h.HeartbeatAt))
		if err != nil {
			return fmt.Errorf("store: take the run lock: %w", err)
		}
		return nil
	})
}

func looksDead(h LockHolder, now time.Time, staleAfter time.Duration, thisHost string) bool {
	if staleAfter > 0 && now.Sub(h.HeartbeatAt) > staleAfter {
		return true
	}
	// A pid means something only on the host that owns it.
	return thisHost != "" && h.Host == thisHost && h.PID > 0 && !processAlive(h.PID)
}

// Heartbeat tells other runs that this one is alive. It fails with
// ErrLockLost when the lock was taken over (or released): the run must stop
// writing to Kommo.
func (db *DB) Heartbeat(ctx context.Context, runID string) error {
	return db.write(ctx, func(tx *sql.Tx) error { return heartbeatLock(ctx, tx, runID, ms64(db.now())) })
}

func heartbeatLock(ctx context.Context, tx *sql.Tx, runID string, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE run_lock SET heartbeat_at = ? WHERE id = 1 AND run_id = ?`, now, runID)
	if err != nil {
		return fmt.Errorf("store: heartbeat of run %s: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	cur, held, err := getLock(ctx, tx)
	switch {
	case err != nil:
		return err
	case held:
		return fmt.Errorf("%w: run %s (pid %d on host %s) took it over from run %s", ErrLockLost, cur.RunID, cur.PID, cur.Host, runID)
	default:
		return fmt.Errorf("%w: run %s does not hold it", ErrLockLost, runID)
	}
}

// ReleaseLock gives up the lock if runID holds it; otherwise it does nothing.
func (db *DB) ReleaseLock(ctx context.Context, runID string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_lock WHERE id = 1 AND run_id = ?`, runID); err != nil {
			return fmt.Errorf("store: release the run lock of run %s: %w", runID, err)
		}
		return nil
	})
}
