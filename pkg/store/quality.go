package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// OutcomeBudget: the lead was left for the next run because the run's or
// the day's LLM budget ran out.
const OutcomeBudget = "skipped_budget"

func init() { outcomes = append(outcomes, OutcomeBudget) }

// Digest is a lead's latest structured summary as the store keeps it.
type Digest struct {
	// Summary is the JSON the sweep made (summarize.Structured); empty
	// after a plain-text fallback, so the next summary is a full build.
	Summary []byte    `json:"summary,omitempty"`
	MadeAt  time.Time `json:"made_at"`
	// Updates counts the rolling updates since the last full build.
	Updates int `json:"updates"`
	// FieldHash is FieldHash of the field text last written; KeepField
	// (in a pending summary) says the field is not written this time, so
	// the hash stays what it was.
	FieldHash string `json:"field_hash,omitempty"`
	KeepField bool   `json:"keep_field,omitempty"`
}

// FieldHash is the hex SHA-256 of a field's text with every run of white
// space made one space: a field that comes back with \r\n line breaks or
// trimmed is still the text we wrote.
func FieldHash(text string) string {
	h := sha256.Sum256([]byte(strings.Join(strings.Fields(text), " ")))
	return hex.EncodeToString(h[:])
}

// LeadDigest returns the lead's latest confirmed digest, or nil, nil.
func (db *DB) LeadDigest(ctx context.Context, leadID int64) (*Digest, error) {
	var d Digest
	var summary string
	var made int64
	err := db.db.QueryRowContext(ctx, `SELECT summary, made_at, updates, field_hash FROM lead_digests WHERE lead_id = ?`, leadID).
		Scan(&summary, &made, &d.Updates, &d.FieldHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read the digest of lead %d: %w", leadID, err)
	}
	if summary != "" {
		d.Summary = []byte(summary)
	}
	d.MadeAt = fromMS(made)
	return &d, nil
}

// setPendingDigest stores a pending summary's digest beside it.
func setPendingDigest(ctx context.Context, tx *sql.Tx, requestID string, d *Digest) error {
	if d == nil {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE pending SET digest = ? WHERE request_id = ?`, string(b), requestID)
	return err
}

// completeDigest applies a completing summary's digest to lead_digests.
func completeDigest(ctx context.Context, tx *sql.Tx, requestID string, leadID int64) error {
	var raw string
	if err := tx.QueryRowContext(ctx, `SELECT digest FROM pending WHERE request_id = ?`, requestID).Scan(&raw); err != nil {
		return err
	}
	if raw == "" {
		return nil
	}
	var d Digest
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if d.KeepField {
		_, err := tx.ExecContext(ctx, `INSERT INTO lead_digests (lead_id, summary, made_at, updates, field_hash) VALUES (?, ?, ?, ?, '')
			ON CONFLICT (lead_id) DO UPDATE SET summary = excluded.summary, made_at = excluded.made_at, updates = excluded.updates`,
			leadID, string(d.Summary), ms64(d.MadeAt), d.Updates)
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO lead_digests (lead_id, summary, made_at, updates, field_hash) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (lead_id) DO UPDATE SET summary = excluded.summary, made_at = excluded.made_at, updates = excluded.updates,
			field_hash = excluded.field_hash`,
		leadID, string(d.Summary), ms64(d.MadeAt), d.Updates, d.FieldHash)
	return err
}

// DaySpend is what the LLM cost on one UTC day.
type DaySpend struct {
	Day                            string // YYYY-MM-DD
	USD                            float64
	Calls                          int
	PromptTokens, CompletionTokens int64
}

// AddSpend adds a call's cost to the ledger of the UTC day of at.
func (db *DB) AddSpend(ctx context.Context, at time.Time, usd float64, calls int, promptTokens, completionTokens int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO spend (day, usd, calls, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (day) DO UPDATE SET usd = usd + excluded.usd, calls = calls + excluded.calls,
				prompt_tokens = prompt_tokens + excluded.prompt_tokens, completion_tokens = completion_tokens + excluded.completion_tokens`,
			at.UTC().Format(time.DateOnly), usd, calls, promptTokens, completionTokens)
		if err != nil {
			return fmt.Errorf("store: add to the cost ledger: %w", err)
		}
		return nil
	})
}

// Spend returns the ledger's days, newest first; limit <= 0 means all.
func (db *DB) Spend(ctx context.Context, limit int) ([]DaySpend, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT day, usd, calls, prompt_tokens, completion_tokens FROM spend ORDER BY day DESC LIMIT ?`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read the cost ledger: %w", err)
	}
	defer rows.Close()
	var out []DaySpend
	for rows.Next() {
		var d DaySpend
		if err := rows.Scan(&d.Day, &d.USD, &d.Calls, &d.PromptTokens, &d.CompletionTokens); err != nil {
			return nil, fmt.Errorf("store: read the cost ledger: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DaySpendUSD returns what the UTC day of at cost so far.
func (db *DB) DaySpendUSD(ctx context.Context, at time.Time) (float64, error) {
	var usd float64
	err := db.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(usd), 0) FROM spend WHERE day = ?`, at.UTC().Format(time.DateOnly)).Scan(&usd)
	if err != nil {
		return 0, fmt.Errorf("store: read the cost ledger: %w", err)
	}
	return usd, nil
}
