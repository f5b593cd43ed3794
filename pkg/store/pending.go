package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// ChatState is the watermark of one chat of one lead: what the last summary
// covered.
type ChatState struct {
	LeadID    int64
	ChatID    string
	LastMsgID string
	LastMsgAt time.Time
	Total     int
	// Head and Tail are opaque JSON owned by the sweep (the cached oldest
	// and newest messages).
	Head, Tail []byte
	InputHash  string
	UpdatedAt  time.Time
}

// ChatStates returns the watermarks of a lead's chats, by chat id.
func (db *DB) ChatStates(ctx context.Context, leadID int64) ([]ChatState, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT lead_id, chat_id, last_msg_id, last_msg_at, total, head, tail, input_hash, updated_at
		FROM chat_states WHERE lead_id = ? ORDER BY chat_id`, leadID)
	if err != nil {
		return nil, fmt.Errorf("store: read the chat states of lead %d: %w", leadID, err)
	}
	defer rows.Close()
	var out []ChatState
	for rows.Next() {
		var s ChatState
		var at, upd int64
		if err := rows.Scan(&s.LeadID, &s.ChatID, &s.LastMsgID, &at, &s.Total, &s.Head, &s.Tail, &s.InputHash, &upd); err != nil {
			return nil, fmt.Errorf("store: read the chat states of lead %d: %w", leadID, err)
		}
		s.LastMsgAt, s.UpdatedAt = fromMS(at), fromMS(upd)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the chat states of lead %d: %w", leadID, err)
	}
	return out, nil
}

// Pending states.
const (
	// StatePending: the note is not confirmed in Kommo yet.
	StatePending = "pending"
	// StateNoted: the note is confirmed; the field and the watermark are not
	// written yet.
	StateNoted = "noted"
)

// Pending is a summary that was made but whose write-back is not confirmed
// yet. It is saved before the note is sent, with the request_id the note
// carries, so that after a crash the next run can look for that note instead
// of writing a second one.
type Pending struct {
	RequestID string
	LeadID    int64
	RunID     string
	CreatedAt time.Time
	State     string // StatePending or StateNoted
	NoteText  string
	FieldText string
	NoteID    int64
	Model     string

	PromptTokens, CompletionTokens int64

	InputHash string
	Chats     []ChatState // the watermarks to apply when done

	// BaseVersion is the lead's version (LeadVersion) that the summary was
	// made from. AddPending refuses it with ErrStale when another summary of
	// the lead completed since.
	BaseVersion int64

	// Digest, when set, becomes the lead's digest (LeadDigest) when the
	// summary completes.
	Digest *Digest
}

var (
	// ErrPendingExists: AddPending for a lead that already has a pending
	// summary. Finish or drop that one first.
	ErrPendingExists = errors.New("store: the lead already has a pending summary")
	// ErrNoPending: no pending summary has that request id.
	ErrNoPending = errors.New("store: no pending summary with that request id")
	// ErrStale: AddPending for a summary made from an older version of the
	// lead: another process summarised the same change first.
	ErrStale = errors.New("store: the lead was summarised since this summary's messages were read")
	// ErrNotOwner: the pending summary belongs to another run now (this
	// run was taken for dead and its work was taken over).
	ErrNotOwner = errors.New("store: the pending summary belongs to another run")
)

// LeadVersion returns the lead's summary version: 0 before its first
// summary, one more with each completed summary.
func (db *DB) LeadVersion(ctx context.Context, leadID int64) (int64, error) {
	return leadVersion(ctx, db.db, leadID)
}

func leadVersion(ctx context.Context, q queryRower, leadID int64) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT version FROM lead_versions WHERE lead_id = ?`, leadID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read the version of lead %d: %w", leadID, err)
	}
	return v, nil
}

// chatJSON is a ChatState inside pending.chats; times in unix milliseconds
// like everywhere else in the file.
type chatJSON struct {
	ChatID    string `json:"chat_id"`
	LastMsgID string `json:"last_msg_id"`
	LastMsgAt int64  `json:"last_msg_at"`
	Total     int    `json:"total"`
	Head      []byte `json:"head,omitempty"`
	Tail      []byte `json:"tail,omitempty"`
	InputHash string `json:"input_hash"`
	UpdatedAt int64  `json:"updated_at"`
}

// AddPending saves p. A lead has at most one pending summary: AddPending
// fails with ErrPendingExists when it already has one, and replaces nothing.
// An empty State is StatePending; a zero CreatedAt is now.
func (db *DB) AddPending(ctx context.Context, p Pending) error {
	if p.RequestID == "" || p.LeadID == 0 {
		return errors.New("store: a pending summary needs a request id and a lead id")
	}
	if p.State == "" {
		p.State = StatePending
	}
	if p.State != StatePending && p.State != StateNoted {
		return fmt.Errorf("store: pending state %q is not %q or %q", p.State, StatePending, StateNoted)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = db.now()
	}
	chats := make([]chatJSON, 0, len(p.Chats))
	for _, c := range p.Chats {
		if c.LeadID != 0 && c.LeadID != p.LeadID {
			return fmt.Errorf("store: pending summary %s of lead %d holds chat %s of lead %d", p.RequestID, p.LeadID, c.ChatID, c.LeadID)
		}
		chats = append(chats, chatJSON{ChatID: c.ChatID, LastMsgID: c.LastMsgID, LastMsgAt: ms64(c.LastMsgAt), Total: c.Total,
			Head: c.Head, Tail: c.Tail, InputHash: c.InputHash, UpdatedAt: ms64(c.UpdatedAt)})
	}
	chatsJSON, err := json.Marshal(chats)
	if err != nil {
		return fmt.Errorf("store: pending summary %s: %w", p.RequestID, err)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		var otherReq string
		var otherLead int64
		err := tx.QueryRowContext(ctx, `SELECT request_id, lead_id FROM pending WHERE lead_id = ? OR request_id = ?`, p.LeadID, p.RequestID).
			Scan(&otherReq, &otherLead)
		switch {
		case err == nil && otherLead == p.LeadID:
			return fmt.Errorf("%w: lead %d, request %s", ErrPendingExists, p.LeadID, otherReq)
		case err == nil:
			return fmt.Errorf("store: request id %s is already pending for lead %d", p.RequestID, otherLead)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: add pending summary %s: %w", p.RequestID, err)
		}
		v, err := leadVersion(ctx, tx, p.LeadID)
		if err != nil {
			return err
		}
		if v != p.BaseVersion {
			return fmt.Errorf("%w: lead %d is at version %d, the summary was made from %d", ErrStale, p.LeadID, v, p.BaseVersion)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO pending (request_id, lead_id, run_id, created_at, state, note_text, field_text,
				note_id, model, prompt_tokens, completion_tokens, input_hash, chats)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.RequestID, p.LeadID, p.RunID, ms64(p.CreatedAt), p.State, p.NoteText, p.FieldText,
			p.NoteID, p.Model, p.PromptTokens, p.CompletionTokens, p.InputHash, string(chatsJSON))
		if err != nil {
			return fmt.Errorf("store: add pending summary %s: %w", p.RequestID, err)
		}
		if err := setPendingDigest(ctx, tx, p.RequestID, p.Digest); err != nil {
			return fmt.Errorf("store: add pending summary %s: %w", p.RequestID, err)
		}
		return nil
	})
}

const pendingColumns = `request_id, lead_id, run_id, created_at, state, note_text, field_text, note_id, model,
	prompt_tokens, completion_tokens, input_hash, chats`

type scanner interface{ Scan(dest ...any) error }

func scanPending(s scanner) (*Pending, error) {
	var p Pending
	var created int64
	var chats string
	if err := s.Scan(&p.RequestID, &p.LeadID, &p.RunID, &created, &p.State, &p.NoteText, &p.FieldText, &p.NoteID, &p.Model,
		&p.PromptTokens, &p.CompletionTokens, &p.InputHash, &chats); err != nil {
		return nil, err
	}
	p.CreatedAt = fromMS(created)
	var cs []chatJSON
	if err := json.Unmarshal([]byte(chats), &cs); err != nil {
		return nil, fmt.Errorf("pending summary %s: chats: %w", p.RequestID, err)
	}
	for _, c := range cs {
		p.Chats = append(p.Chats, ChatState{LeadID: p.LeadID, ChatID: c.ChatID, LastMsgID: c.LastMsgID, LastMsgAt: fromMS(c.LastMsgAt),
			Total: c.Total, Head: c.Head, Tail: c.Tail, InputHash: c.InputHash, UpdatedAt: fromMS(c.UpdatedAt)})
	}
	return &p, nil
}

// Pendings returns every pending summary, oldest first.
func (db *DB) Pendings(ctx context.Context) ([]Pending, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+pendingColumns+` FROM pending ORDER BY created_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("store: read pending summaries: %w", err)
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		p, err := scanPending(rows)
		if err != nil {
			return nil, fmt.Errorf("store: read pending summaries: %w", err)
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read pending summaries: %w", err)
	}
	return out, nil
}

// MarkNoted records that the note of run runID's pending summary is
// confirmed in Kommo, with its id. It fails with ErrNotOwner when another run
// took the summary over.
func (db *DB) MarkNoted(ctx context.Context, runID, requestID string, noteID int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := checkOwner(ctx, tx, runID, requestID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pending SET state = ?, note_id = ? WHERE request_id = ?`, StateNoted, noteID, requestID); err != nil {
			return fmt.Errorf("store: mark %s noted: %w", requestID, err)
		}
		return nil
	})
}

func checkOwner(ctx context.Context, tx *sql.Tx, runID, requestID string) error {
	var owner string
	err := tx.QueryRowContext(ctx, `SELECT run_id FROM pending WHERE request_id = ?`, requestID).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNoPending, requestID)
	}
	if err != nil {
		return fmt.Errorf("store: read pending summary %s: %w", requestID, err)
	}
	if owner != runID {
		return fmt.Errorf("%w: %s is run %s's, not run %s's", ErrNotOwner, requestID, owner, runID)
	}
	return nil
}

// Complete finishes run runID's pending summary whose note is confirmed
// (MarkNoted), in one transaction: it upserts p.Chats as the lead's chat
// states, appends a Summary row (Text is the note text), moves the lead's
// version on and deletes the pending row. A
// pending summary whose note is not confirmed cannot be completed: its
// watermark would claim a summary Kommo may not have.
func (db *DB) Complete(ctx context.Context, runID, requestID string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := checkOwner(ctx, tx, runID, requestID); err != nil {
			return err
		}
		p, err := scanPending(tx.QueryRowContext(ctx, `SELECT `+pendingColumns+` FROM pending WHERE request_id = ?`, requestID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNoPending, requestID)
		}
		if err != nil {
			return fmt.Errorf("store: complete %s: %w", requestID, err)
		}
		if p.State != StateNoted {
			return fmt.Errorf("store: complete %s: the note of lead %d is not confirmed (MarkNoted first)", requestID, p.LeadID)
		}
		now := db.now()
		for _, c := range p.Chats {
			upd := c.UpdatedAt
			if upd.IsZero() {
				upd = now
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO chat_states (lead_id, chat_id, last_msg_id, last_msg_at, total, head, tail, input_hash, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (lead_id, chat_id) DO UPDATE SET last_msg_id = excluded.last_msg_id, last_msg_at = excluded.last_msg_at,
					total = excluded.total, head = excluded.head, tail = excluded.tail, input_hash = excluded.input_hash,
					updated_at = excluded.updated_at`,
				p.LeadID, c.ChatID, c.LastMsgID, ms64(c.LastMsgAt), c.Total, c.Head, c.Tail, c.InputHash, ms64(upd))
			if err != nil {
				return fmt.Errorf("store: complete %s: chat %s: %w", requestID, c.ChatID, err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO summaries (lead_id, created_at, run_id, model, text, input_hash, prompt_tokens, completion_tokens, note_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.LeadID, ms64(p.CreatedAt), p.RunID, p.Model, p.NoteText, p.InputHash, p.PromptTokens, p.CompletionTokens, p.NoteID)
		if err != nil {
			return fmt.Errorf("store: complete %s: %w", requestID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO lead_versions (lead_id, version) VALUES (?, 1)
			ON CONFLICT (lead_id) DO UPDATE SET version = version + 1`, p.LeadID); err != nil {
			return fmt.Errorf("store: complete %s: %w", requestID, err)
		}
		if err := completeDigest(ctx, tx, requestID, p.LeadID); err != nil {
			return fmt.Errorf("store: complete %s: %w", requestID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE request_id = ?`, requestID); err != nil {
			return fmt.Errorf("store: complete %s: %w", requestID, err)
		}
		return nil
	})
}

// ClaimPendings hands run runID the pending summaries of runs that are not
// alive (finished, killed, or silent for staleAfter; on this host, also a
// run whose process is gone), and marks those runs killed. Two runs that
// claim at once get disjoint sets: the claim is one write transaction.
func (db *DB) ClaimPendings(ctx context.Context, runID string, staleAfter time.Duration) ([]Pending, error) {
	var out []Pending
	now := db.now()
	host, _ := os.Hostname()
	err := db.write(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT `+pendingColumns+` FROM pending WHERE run_id != ? ORDER BY created_at, rowid`, runID)
		if err != nil {
			return fmt.Errorf("store: read pending summaries: %w", err)
		}
		var ps []Pending
		for rows.Next() {
			p, err := scanPending(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("store: read pending summaries: %w", err)
			}
			ps = append(ps, *p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: read pending summaries: %w", err)
		}
		alive := map[string]bool{}
		for _, p := range ps {
			live, seen := alive[p.RunID]
			if !seen {
				live, err = runAlive(ctx, tx, p.RunID, now, staleAfter, host)
				if err != nil {
					return err
				}
				alive[p.RunID] = live
				if !live {
					if err := markKilled(ctx, tx, p.RunID, runID); err != nil {
						return err
					}
				}
			}
			if live {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pending SET run_id = ? WHERE request_id = ?`, runID, p.RequestID); err != nil {
				return fmt.Errorf("store: claim pending summary %s: %w", p.RequestID, err)
			}
			p.RunID = runID
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// DropPending forgets run runID's pending summary (its note is known not to
// exist and will be made again). Dropping one that is gone is not an error;
// one that another run took over fails with ErrNotOwner.
func (db *DB) DropPending(ctx context.Context, runID, requestID string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		err := checkOwner(ctx, tx, runID, requestID)
		if errors.Is(err, ErrNoPending) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE request_id = ?`, requestID); err != nil {
			return fmt.Errorf("store: drop pending summary %s: %w", requestID, err)
		}
		return nil
	})
}

// Summary is a summary whose write-back was confirmed.
type Summary struct {
	ID, LeadID int64
	CreatedAt  time.Time
	RunID      string
	Model      string
	Text       string // the note text
	InputHash  string

	PromptTokens, CompletionTokens, NoteID int64
}

// Summaries returns the lead's summaries, newest first; limit <= 0 means all.
func (db *DB) Summaries(ctx context.Context, leadID int64, limit int) ([]Summary, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT id, lead_id, created_at, run_id, model, text, input_hash, prompt_tokens, completion_tokens, note_id
		FROM summaries WHERE lead_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, leadID, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read the summaries of lead %d: %w", leadID, err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var s Summary
		var created int64
		if err := rows.Scan(&s.ID, &s.LeadID, &created, &s.RunID, &s.Model, &s.Text, &s.InputHash,
			&s.PromptTokens, &s.CompletionTokens, &s.NoteID); err != nil {
			return nil, fmt.Errorf("store: read the summaries of lead %d: %w", leadID, err)
		}
		s.CreatedAt = fromMS(created)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the summaries of lead %d: %w", leadID, err)
	}
	return out, nil
}
