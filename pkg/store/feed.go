package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Feed is where the change feed of `sweep` stands.
type Feed struct {
	// Cursor is the start of the last completed sweep: the next
	// incremental sweep reads the events since then (minus a margin).
	// Zero before the first completed sweep.
	Cursor time.Time
	// FullAt is the start of the last completed full pass; zero before one.
	FullAt time.Time
	// Retry lists the leads that failed in the last completed sweep.
	Retry []int64
}

// Feed returns where the change feed stands.
func (db *DB) Feed(ctx context.Context) (Feed, error) {
	var f Feed
	var cursor, full int64
	err := db.db.QueryRowContext(ctx, `SELECT cursor, full_at FROM sweep_feed WHERE id = 1`).Scan(&cursor, &full)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("store: read the sweep's change feed: %w", err)
	}
	f.Cursor, f.FullAt = fromMS(cursor), fromMS(full)
	rows, err := db.db.QueryContext(ctx, `SELECT lead_id FROM sweep_retry ORDER BY lead_id`)
	if err != nil {
		return f, fmt.Errorf("store: read the leads to retry: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return f, fmt.Errorf("store: read the leads to retry: %w", err)
		}
		f.Retry = append(f.Retry, id)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("store: read the leads to retry: %w", err)
	}
	return f, nil
}

// seenTalksKept is how long a talk stays known: a talk silent for longer
// counts as new again (one contacts/chats call), and the table stays small.
const seenTalksKept = 90 * 24 * time.Hour

// AdvanceFeed records a completed sweep in one transaction: the cursor
// moves to its start, so does FullAt when it was a full pass, and the
// leads to retry become the ones that failed in it. Talks not seen for 90
// days are forgotten.
func (db *DB) AdvanceFeed(ctx context.Context, runID string, start time.Time, full bool, failed []int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		now := ms64(db.now())
		var fullAt int64
		err := tx.QueryRowContext(ctx, `SELECT full_at FROM sweep_feed WHERE id = 1`).Scan(&fullAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: advance the sweep's change feed: %w", err)
		}
		if full {
			fullAt = ms64(start)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sweep_feed (id, cursor, full_at, updated_at) VALUES (1, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, full_at = excluded.full_at, updated_at = excluded.updated_at`,
			ms64(start), fullAt, now); err != nil {
			return fmt.Errorf("store: advance the sweep's change feed: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sweep_retry`); err != nil {
			return fmt.Errorf("store: replace the leads to retry: %w", err)
		}
		for _, id := range failed {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO sweep_retry (lead_id, run_id, added_at) VALUES (?, ?, ?)`, id, runID, now); err != nil {
				return fmt.Errorf("store: replace the leads to retry: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM seen_talks WHERE seen_at < ?`, now-seenTalksKept.Milliseconds()); err != nil {
			return fmt.Errorf("store: forget old talks: %w", err)
		}
		return nil
	})
}

// ContactChats returns the cached chat ids of a contact, if they were
// fetched at or after notBefore.
func (db *DB) ContactChats(ctx context.Context, contactID int64, notBefore time.Time) ([]string, bool, error) {
	var raw string
	var at int64
	err := db.db.QueryRowContext(ctx, `SELECT chat_ids, fetched_at FROM contact_chats WHERE contact_id = ?`, contactID).Scan(&raw, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: read the cached chats of contact %d: %w", contactID, err)
	}
	if at < ms64(notBefore) {
		return nil, false, nil
	}
	var ids []string
	if err := json.Unmarshal([]byte(raw), &ids); err != nil {
		return nil, false, fmt.Errorf("store: the cached chats of contact %d: %w", contactID, err)
	}
	return ids, true, nil
}

// PutContactChats caches the chat ids of a contact, fetched now.
func (db *DB) PutContactChats(ctx context.Context, contactID int64, chatIDs []string) error {
	if chatIDs == nil {
		chatIDs = []string{}
	}
	raw, err := json.Marshal(chatIDs)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO contact_chats (contact_id, chat_ids, fetched_at) VALUES (?, ?, ?)
			ON CONFLICT (contact_id) DO UPDATE SET chat_ids = excluded.chat_ids, fetched_at = excluded.fetched_at`,
			contactID, string(raw), ms64(db.now())); err != nil {
			return fmt.Errorf("store: cache the chats of contact %d: %w", contactID, err)
		}
		return nil
	})
}

// Talk is a talk a chat message event named, with the contacts whose cached
// chats it may change: the event's contact, or every contact of the lead
// when the event did not say.
type Talk struct {
	ID       int64
	Contacts []int64
}

// SeeTalks records the talks the events named, in one transaction. A talk
// seen for the first time may be a new chat: the cached chats of its
// contacts are dropped, so the next lookup fetches them. It returns how
// many talks were new.
func (db *DB) SeeTalks(ctx context.Context, talks []Talk) (int, error) {
	if len(talks) == 0 {
		return 0, nil
	}
	fresh := 0
	err := db.write(ctx, func(tx *sql.Tx) error {
		fresh = 0
		now := ms64(db.now())
		for _, t := range talks {
			var contact int64
			if len(t.Contacts) > 0 {
				contact = t.Contacts[0]
			}
			res, err := tx.ExecContext(ctx, `UPDATE seen_talks SET seen_at = ? WHERE talk_id = ?`, now, t.ID)
			if err != nil {
				return fmt.Errorf("store: record talk %d: %w", t.ID, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				continue // known: its chat is in the cache already
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO seen_talks (talk_id, contact_id, seen_at) VALUES (?, ?, ?)`, t.ID, contact, now); err != nil {
				return fmt.Errorf("store: record talk %d: %w", t.ID, err)
			}
			fresh++
			for _, c := range t.Contacts {
				if _, err := tx.ExecContext(ctx, `DELETE FROM contact_chats WHERE contact_id = ?`, c); err != nil {
					return fmt.Errorf("store: drop the cached chats of contact %d: %w", c, err)
				}
			}
		}
		return nil
	})
	return fresh, err
}

// LoggedLeadsSince returns the leads whose message log changed since t:
// messages received (webhooks, including late or replayed deliveries of
// old messages, which the Events API does not show again) or a chat newly
// tied to the lead.
func (db *DB) LoggedLeadsSince(ctx context.Context, t time.Time) ([]int64, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT lead_id FROM messages WHERE received_at >= ? AND lead_id != 0
		UNION SELECT lead_id FROM chat_leads WHERE updated_at >= ? AND lead_id != 0 ORDER BY 1`, ms64(t), ms64(t))
	if err != nil {
		return nil, fmt.Errorf("store: read the leads whose message log changed: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: read the leads whose message log changed: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the leads whose message log changed: %w", err)
	}
	return out, nil
}
