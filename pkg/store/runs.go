package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Run is one invocation of a command that changes Kommo, for `status` and
// for finding runs that died without finishing.
type Run struct {
	ID, Command, Host, Status string
	PID, ExitCode             int
	StartedAt, FinishedAt     time.Time
	Report                    []byte
}

// Run statuses that the store sets itself.
const (
	// RunRunning: the run has not finished (or died).
	RunRunning = "running"
	// RunKilled: the run died without finishing (SIGKILL, a crash, a
	// reboot) or stopped answering: AcquireLock and ClaimPendings record it
	// when they take its lock or its work over (its next heartbeat then
	// fails), and Runs reports it for a run whose process is gone.
	RunKilled = "killed"
)

// Beat tells other processes that run runID is alive: its heartbeat in the
// runs table and, with lock, in the run lock. It fails with ErrLockLost when
// the run was taken for dead (another run took its lock or its work over):
// the run must stop writing at once.
func (db *DB) Beat(ctx context.Context, runID string, lock bool) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		now := ms64(db.now())
		res, err := tx.ExecContext(ctx, `UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = ?`, now, runID, RunRunning)
		if err != nil {
			return fmt.Errorf("store: heartbeat of run %s: %w", runID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var status string
			_ = tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, runID).Scan(&status)
			return fmt.Errorf("%w: run %s is recorded as %q", ErrLockLost, runID, status)
		}
		if lock {
			return heartbeatLock(ctx, tx, runID, now)
		}
		return nil
	})
}

// runAlive reports whether run id shows signs of life: it is running, its
// heartbeat (or start) is within staleAfter, and, on this host, its process
// exists.
func runAlive(ctx context.Context, q queryRower, id string, now time.Time, staleAfter time.Duration, thisHost string) (bool, error) {
	var status, host string
	var pid int
	var started, beat int64
	err := q.QueryRowContext(ctx, `SELECT status, host, pid, started_at, heartbeat_at FROM runs WHERE id = ?`, id).
		Scan(&status, &host, &pid, &started, &beat)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: read run %s: %w", id, err)
	}
	if status != RunRunning {
		return false, nil
	}
	h := LockHolder{RunID: id, PID: pid, Host: host, StartedAt: fromMS(started), HeartbeatAt: fromMS(max(beat, started))}
	return !looksDead(h, now, staleAfter, thisHost), nil
}

// markKilled records that run id died and run by took its work over.
func markKilled(ctx context.Context, tx *sql.Tx, id, by string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, exit_code = -1, finished_at = ? WHERE id = ? AND status = ?`,
		RunKilled, ms64(time.Now()), id, RunRunning); err != nil {
		return fmt.Errorf("store: mark run %s killed (taken over by %s): %w", id, by, err)
	}
	return nil
}

// StartRun records the start of run r with status "running". Zero StartedAt,
// Host and PID are now, this host and this process.
func (db *DB) StartRun(ctx context.Context, r Run) error {
	if r.ID == "" {
		return errors.New("store: a run needs an id")
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = db.now()
	}
	if r.Host == "" {
		r.Host, _ = os.Hostname()
	}
	if r.PID == 0 {
		r.PID = os.Getpid()
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO runs (id, command, host, pid, status, exit_code, started_at, finished_at, report, heartbeat_at)
			VALUES (?, ?, ?, ?, ?, 0, ?, 0, NULL, ?)`,
			r.ID, r.Command, r.Host, r.PID, RunRunning, ms64(r.StartedAt), ms64(db.now()))
		if err != nil {
			return fmt.Errorf("store: start run %s: %w", r.ID, err)
		}
		return nil
	})
}

// FinishRun records how run id ended; FinishedAt is now.
func (db *DB) FinishRun(ctx context.Context, id, status string, exitCode int, report []byte) error {
	if status == "" || status == RunRunning {
		return fmt.Errorf("store: finish run %s: status %q is not a final status", id, status)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, exit_code = ?, report = ?, finished_at = ? WHERE id = ?`,
			status, exitCode, report, ms64(db.now()), id)
		if err != nil {
			return fmt.Errorf("store: finish run %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: finish run %s: no such run", id)
		}
		return nil
	})
}

// Runs returns the latest runs, newest first; limit <= 0 means all. A run
// recorded as running is reported as RunKilled when, on this host, its
// process is gone: a SIGKILL leaves no other trace, and a run killed after
// the last takeover would read "running" forever.
func (db *DB) Runs(ctx context.Context, limit int) ([]Run, error) {
	host, _ := os.Hostname()
	rows, err := db.db.QueryContext(ctx, `SELECT id, command, host, pid, status, exit_code, started_at, finished_at, report
		FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started, finished int64
		if err := rows.Scan(&r.ID, &r.Command, &r.Host, &r.PID, &r.Status, &r.ExitCode, &started, &finished, &r.Report); err != nil {
			return nil, fmt.Errorf("store: read runs: %w", err)
		}
		r.StartedAt, r.FinishedAt = fromMS(started), fromMS(finished)
		if r.Status == RunRunning && host != "" && r.Host == host && r.PID > 0 && !processAlive(r.PID) {
			r.Status = RunKilled
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read runs: %w", err)
	}
	return out, nil
}

// Lead outcomes.
const (
	OutcomeSummarized = "summarized"        // a new summary landed
	OutcomeRecovered  = "recovered"         // an earlier run's summary was settled
	OutcomeUnchanged  = "skipped_unchanged" // nothing new since the last summary
	OutcomeNoChats    = "skipped_no_chats"  // no chat with messages
	OutcomeNoText     = "skipped_no_text"   // chats of only pictures, voice and files
	OutcomeBusy       = "skipped_busy"      // another process summarised this change
	OutcomeFailed     = "failed"
	OutcomeDryRun     = "dry_run"
)

var outcomes = []string{OutcomeSummarized, OutcomeRecovered, OutcomeUnchanged, OutcomeNoChats, OutcomeNoText, OutcomeBusy, OutcomeFailed, OutcomeDryRun}

// LeadResult is what one run did with one lead.
type LeadResult struct {
	RunID    string
	LeadID   int64
	Messages int

	PromptTokens, CompletionTokens, DurationMS int64

	Outcome string // one of the Outcome constants
	Error   string
	At      time.Time
}

// AddLeadResult appends r; a zero At is now.
func (db *DB) AddLeadResult(ctx context.Context, r LeadResult) error {
	if !slices.Contains(outcomes, r.Outcome) {
		return fmt.Errorf("store: lead %d: outcome %q is not one of %v", r.LeadID, r.Outcome, outcomes)
	}
	if r.At.IsZero() {
		r.At = db.now()
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO lead_results (run_id, lead_id, messages, prompt_tokens, completion_tokens, duration_ms, outcome, error, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.RunID, r.LeadID, r.Messages, r.PromptTokens, r.CompletionTokens, r.DurationMS, r.Outcome, r.Error, ms64(r.At))
		if err != nil {
			return fmt.Errorf("store: add the result of lead %d: %w", r.LeadID, err)
		}
		return nil
	})
}

// Failures returns the latest failed lead results, newest first; limit <= 0
// means all.
func (db *DB) Failures(ctx context.Context, limit int) ([]LeadResult, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT run_id, lead_id, messages, prompt_tokens, completion_tokens, duration_ms, outcome, error, at
		FROM lead_results WHERE outcome = ? ORDER BY at DESC, id DESC LIMIT ?`, OutcomeFailed, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read failures: %w", err)
	}
	return scanLeadResults(rows, "failures")
}

func scanLeadResults(rows *sql.Rows, what string) ([]LeadResult, error) {
	defer rows.Close()
	var out []LeadResult
	for rows.Next() {
		var r LeadResult
		var at int64
		if err := rows.Scan(&r.RunID, &r.LeadID, &r.Messages, &r.PromptTokens, &r.CompletionTokens, &r.DurationMS, &r.Outcome, &r.Error, &at); err != nil {
			return nil, fmt.Errorf("store: read %s: %w", what, err)
		}
		r.At = fromMS(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read %s: %w", what, err)
	}
	return out, nil
}

// LeadResults returns the results of one run in the order they were added.
func (db *DB) LeadResults(ctx context.Context, runID string) ([]LeadResult, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT run_id, lead_id, messages, prompt_tokens, completion_tokens, duration_ms, outcome, error, at
		FROM lead_results WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("store: read the results of run %s: %w", runID, err)
	}
	return scanLeadResults(rows, "the results of run "+runID)
}
