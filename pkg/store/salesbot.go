package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Bot job states.
const (
	BotJobPending = "pending" // the continue call is still to be made (or retried)
	BotJobDone    = "done"    // Kommo took the continue call (202)
	BotJobDropped = "dropped" // the bot no longer waited (404): nothing left to do
	BotJobFailed  = "failed"  // gave up; Error says why
)

// BotJob is a Salesbot widget_request waiting for, or done with, its
// continue call.
type BotJob struct {
	ID                int64
	ReturnURL         string
	LeadID, ContactID int64
	Message           string
	Data              string // the request's data object, as JSON
	State             string
	Status            string // success, handoff or fail once built
	Reply             string
	Body              string // the continue call's JSON body once built
	Attempts          int
	Error             string
	NextAt            time.Time
	CreatedAt         time.Time
	RepliedAt         time.Time
	FinishedAt        time.Time
}

const botJobColumns = `id, return_url, lead_id, contact_id, message, data, state, status, reply, body, attempts, error,
	next_at, created_at, replied_at, finished_at`

func scanBotJobs(rows *sql.Rows) ([]BotJob, error) {
	defer rows.Close()
	var out []BotJob
	for rows.Next() {
		var j BotJob
		var next, created, replied, finished int64
		if err := rows.Scan(&j.ID, &j.ReturnURL, &j.LeadID, &j.ContactID, &j.Message, &j.Data, &j.State, &j.Status,
			&j.Reply, &j.Body, &j.Attempts, &j.Error, &next, &created, &replied, &finished); err != nil {
			return nil, err
		}
		j.NextAt, j.CreatedAt, j.RepliedAt, j.FinishedAt = fromMS(next), fromMS(created), fromMS(replied), fromMS(finished)
		out = append(out, j)
	}
	return out, rows.Err()
}

// AddBotJobs stores new pending jobs, due now, in one transaction, and
// returns their ids in order. A return_url seen before (the same request
// delivered twice) adds nothing and gets the first job's id.
func (db *DB) AddBotJobs(ctx context.Context, jobs []BotJob) ([]int64, error) {
	ids := make([]int64, len(jobs))
	now := ms64(db.now())
	err := db.write(ctx, func(tx *sql.Tx) error {
		for i, j := range jobs {
			err := tx.QueryRowContext(ctx, `INSERT INTO bot_jobs (return_url, lead_id, contact_id, message, data, state, status, reply,
					body, attempts, next_at, lease_until, error, created_at, replied_at, finished_at)
				VALUES (?, ?, ?, ?, ?, 'pending', '', '', '', 0, ?, 0, '', ?, 0, 0)
				ON CONFLICT (return_url) DO UPDATE SET return_url = excluded.return_url RETURNING id`,
				j.ReturnURL, j.LeadID, j.ContactID, j.Message, j.Data, now, now).Scan(&ids[i])
			if err != nil {
				return fmt.Errorf("store: add a bot job for lead %d: %w", j.LeadID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// ClaimBotJobs leases up to limit due pending jobs to the caller for lease,
// counting an attempt on each, oldest first. A job whose lease ran out (its
// worker died) is due again.
func (db *DB) ClaimBotJobs(ctx context.Context, lease time.Duration, limit int) ([]BotJob, error) {
	var out []BotJob
	err := db.write(ctx, func(tx *sql.Tx) error {
		now := db.now()
		rows, err := tx.QueryContext(ctx, `UPDATE bot_jobs SET lease_until = ?, attempts = attempts + 1
			WHERE id IN (SELECT id FROM bot_jobs WHERE state = 'pending' AND next_at <= ? AND lease_until <= ? ORDER BY next_at, id LIMIT ?)
			RETURNING `+botJobColumns, ms64(now.Add(lease)), ms64(now), ms64(now), limitArg(limit))
		if err != nil {
			return err
		}
		out, err = scanBotJobs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim bot jobs: %w", err)
	}
	return out, nil
}

// ReleaseBotLeases makes every pending job due to be claimed again: a
// worker that starts takes over the jobs of the process it replaces.
func (db *DB) ReleaseBotLeases(ctx context.Context) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE bot_jobs SET lease_until = 0 WHERE state = 'pending'`); err != nil {
			return fmt.Errorf("store: release bot job leases: %w", err)
		}
		return nil
	})
}

// NextBotJobDue is the earliest time a pending job can be claimed; ok is
// false when none is pending.
func (db *DB) NextBotJobDue(ctx context.Context) (due time.Time, ok bool, err error) {
	var next sql.NullInt64
	if err := db.db.QueryRowContext(ctx, `SELECT MIN(MAX(next_at, lease_until)) FROM bot_jobs WHERE state = 'pending'`).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("store: read the bot job queue: %w", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(next.Int64), true, nil
}

// BotHandoff is a lead handed to a manager.
type BotHandoff struct {
	LeadID     int64
	At         time.Time
	QuietUntil time.Time
	Reason     string
}

// BotReply is a built reply to save with SaveBotReply.
type BotReply struct {
	Status, Reply string
	Body          []byte
	// Messages go to the message log (the client's message and the reply).
	Messages []LogMessage
	// Handoff, when not nil, hands the lead to a manager.
	Handoff *BotHandoff
}

// SaveBotReply stores the job's built reply, logs its messages and records
// a handoff, in one transaction: the job is then only a continue call away.
func (db *DB) SaveBotReply(ctx context.Context, jobID int64, r BotReply) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		now := db.now()
		if _, err := tx.ExecContext(ctx, `UPDATE bot_jobs SET status = ?, reply = ?, body = ?, replied_at = ? WHERE id = ?`,
			r.Status, r.Reply, string(r.Body), ms64(now), jobID); err != nil {
			return err
		}
		for _, m := range r.Messages {
			if _, err := insertMessage(ctx, tx, m, now); err != nil {
				return err
			}
		}
		if h := r.Handoff; h != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO bot_handoffs (lead_id, at, quiet_until, reason) VALUES (?, ?, ?, ?)
				ON CONFLICT (lead_id) DO UPDATE SET at = excluded.at, quiet_until = excluded.quiet_until, reason = excluded.reason`,
				h.LeadID, ms64(h.At), ms64(h.QuietUntil), h.Reason); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save the reply of bot job %d: %w", jobID, err)
	}
	return nil
}

// FinishBotJob ends a job in state (done, dropped or failed), with errText
// saying why when it failed or was dropped.
func (db *DB) FinishBotJob(ctx context.Context, jobID int64, state, errText string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE bot_jobs SET state = ?, error = ?, finished_at = ?, lease_until = 0 WHERE id = ?`,
			state, errText, ms64(db.now()), jobID); err != nil {
			return fmt.Errorf("store: finish bot job %d: %w", jobID, err)
		}
		return nil
	})
}

// RetryBotJob puts a job back in the queue, due at next.
func (db *DB) RetryBotJob(ctx context.Context, jobID int64, next time.Time, errText string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE bot_jobs SET next_at = ?, lease_until = 0, error = ? WHERE id = ?`,
			ms64(next), errText, jobID); err != nil {
			return fmt.Errorf("store: requeue bot job %d: %w", jobID, err)
		}
		return nil
	})
}

// BotJobs returns the latest limit jobs, newest first.
func (db *DB) BotJobs(ctx context.Context, limit int) ([]BotJob, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+botJobColumns+` FROM bot_jobs ORDER BY created_at DESC, id DESC LIMIT ?`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read the bot jobs: %w", err)
	}
	out, err := scanBotJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("store: read the bot jobs: %w", err)
	}
	return out, nil
}

// BotJob returns one job; nil when there is none with that id.
func (db *DB) BotJob(ctx context.Context, id int64) (*BotJob, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+botJobColumns+` FROM bot_jobs WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("store: read bot job %d: %w", id, err)
	}
	out, err := scanBotJobs(rows)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return &out[0], nil
}

// BotHandoffOf returns the lead's handoff; nil when it has none.
func (db *DB) BotHandoffOf(ctx context.Context, leadID int64) (*BotHandoff, error) {
	h := BotHandoff{LeadID: leadID}
	var at, until int64
	err := db.db.QueryRowContext(ctx, `SELECT at, quiet_until, reason FROM bot_handoffs WHERE lead_id = ?`, leadID).Scan(&at, &until, &h.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read the handoff of lead %d: %w", leadID, err)
	}
	h.At, h.QuietUntil = fromMS(at), fromMS(until)
	return &h, nil
}

// ClearBotHandoff gives the lead back to the bot; found is false when it
// had no handoff.
func (db *DB) ClearBotHandoff(ctx context.Context, leadID int64) (found bool, err error) {
	err = db.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM bot_handoffs WHERE lead_id = ?`, leadID)
		if err != nil {
			return fmt.Errorf("store: clear the handoff of lead %d: %w", leadID, err)
		}
		n, _ := r.RowsAffected()
		found = n > 0
		return nil
	})
	return found, err
}

// RecentSummaries returns the latest limit confirmed summaries of all
// leads, newest first.
func (db *DB) RecentSummaries(ctx context.Context, limit int) ([]Summary, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT id, lead_id, created_at, run_id, model, text, input_hash, prompt_tokens, completion_tokens, note_id
		FROM summaries ORDER BY created_at DESC, id DESC LIMIT ?`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read the latest summaries: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var s Summary
		var created int64
		if err := rows.Scan(&s.ID, &s.LeadID, &created, &s.RunID, &s.Model, &s.Text, &s.InputHash,
			&s.PromptTokens, &s.CompletionTokens, &s.NoteID); err != nil {
			return nil, fmt.Errorf("store: read the latest summaries: %w", err)
		}
		s.CreatedAt = fromMS(created)
		out = append(out, s)
	}
	return out, rows.Err()
}
