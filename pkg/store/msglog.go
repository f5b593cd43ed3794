package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Message directions in the log.
const (
	DirectionIn  = "in"  // from the client
	DirectionOut = "out" // from a manager, a bot or our own replies
)

// LogMessage is one chat message in the message log.
type LogMessage struct {
	ID                     string // Kommo's message id (a UUID); the dedupe key
	ChatID                 string
	TalkID                 int64
	ContactID              int64
	LeadID                 int64 // 0: not known yet; attached when a later event names it
	Direction              string
	AuthorName, AuthorType string
	Type                   string // text, picture, voice, file, location, ...
	Text                   string
	AttachmentType         string
	AttachmentName         string
	CreatedAt              time.Time
	Origin                 string // waba, telegram, instagram_business, ...; "kommo-summarizer" for our bot's replies
	ReceivedAt             time.Time
}

// LogTalk is a talk (a conversation session of a chat) as a webhook told it.
type LogTalk struct {
	TalkID    int64
	ChatID    string
	ContactID int64
	LeadID    int64 // 0 when the talk belongs to a contact only
	Closed    bool  // is_in_work went to 0: the chat closed
}

// Delivery is what one webhook body brought.
type Delivery struct {
	Messages []LogMessage
	Talks    []LogTalk
}

// IngestResult says what an ingest changed.
type IngestResult struct {
	Added      int // new messages (the rest were duplicates)
	Duplicates int
	Attached   int // earlier messages whose lead became known
	Queued     int // leads put in (or moved in) the close queue
}

// IngestOptions tune an ingest.
type IngestOptions struct {
	// CloseDebounce is how long after a lead's last event its close summary
	// runs.
	CloseDebounce time.Duration
	// ReceivedAt is when the deliveries arrived; zero is now.
	ReceivedAt time.Time
}

// Ingest stores deliveries in one transaction, so that a caller that
// answers Kommo only after Ingest returned never acknowledges a message it
// could lose. Messages are deduplicated by id; a message without a lead gets
// it from the chat's known lead, and earlier messages of a chat get the lead
// when it becomes known; a closed talk queues its lead for a summary, and a
// later event of a queued lead moves its due time.
func (db *DB) Ingest(ctx context.Context, ds []Delivery, o IngestOptions) (IngestResult, error) {
	var res IngestResult
	now := o.ReceivedAt
	if now.IsZero() {
		now = db.now()
	}
	due := ms64(now.Add(o.CloseDebounce))
	err := db.write(ctx, func(tx *sql.Tx) error {
		res = IngestResult{}
		touched := map[int64]bool{}
		mapChat := func(chatID string, leadID int64) error {
			if chatID == "" || leadID == 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO chat_leads (chat_id, lead_id, updated_at) VALUES (?, ?, ?)
				ON CONFLICT (chat_id) DO UPDATE SET lead_id = excluded.lead_id, updated_at = excluded.updated_at`,
				chatID, leadID, ms64(now)); err != nil {
				return err
			}
			r, err := tx.ExecContext(ctx, `UPDATE messages SET lead_id = ? WHERE chat_id = ? AND lead_id = 0`, leadID, chatID)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			res.Attached += int(n)
			return nil
		}
		chatLead := func(chatID string) (int64, error) {
			var id int64
			err := tx.QueryRowContext(ctx, `SELECT lead_id FROM chat_leads WHERE chat_id = ?`, chatID).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				return 0, nil
			}
			return id, err
		}
		for _, d := range ds {
			for _, m := range d.Messages {
				if m.LeadID != 0 {
					if err := mapChat(m.ChatID, m.LeadID); err != nil {
						return fmt.Errorf("store: map chat %s to lead %d: %w", m.ChatID, m.LeadID, err)
					}
				} else {
					id, err := chatLead(m.ChatID)
					if err != nil {
						return fmt.Errorf("store: find the lead of chat %s: %w", m.ChatID, err)
					}
					m.LeadID = id
				}
				echo, err := echoOfOurs(ctx, tx, m)
				if err != nil {
					return err
				}
				added := false
				if !echo {
					if added, err = insertMessage(ctx, tx, m, now); err != nil {
						return err
					}
				}
				if !added {
					res.Duplicates++
					continue
				}
				res.Added++
				if m.LeadID != 0 {
					touched[m.LeadID] = true
				}
			}
			for _, t := range d.Talks {
				lead := t.LeadID
				if lead != 0 {
					if err := mapChat(t.ChatID, lead); err != nil {
						return fmt.Errorf("store: map chat %s to lead %d: %w", t.ChatID, lead, err)
					}
				} else if t.ChatID != "" {
					id, err := chatLead(t.ChatID)
					if err != nil {
						return fmt.Errorf("store: find the lead of chat %s: %w", t.ChatID, err)
					}
					lead = id
				}
				if lead == 0 {
					continue
				}
				if t.Closed {
					if _, err := tx.ExecContext(ctx, `INSERT INTO close_queue (lead_id, due_at, queued_at) VALUES (?, ?, ?)
						ON CONFLICT (lead_id) DO UPDATE SET due_at = excluded.due_at`, lead, due, ms64(now)); err != nil {
						return fmt.Errorf("store: queue lead %d: %w", lead, err)
					}
					res.Queued++
				} else {
					touched[lead] = true
				}
			}
		}
		// The debounce: a queued lead waits for quiet.
		for lead := range touched {
			r, err := tx.ExecContext(ctx, `UPDATE close_queue SET due_at = ? WHERE lead_id = ? AND due_at < ?`, due, lead, due)
			if err != nil {
				return fmt.Errorf("store: move lead %d in the close queue: %w", lead, err)
			}
			if n, _ := r.RowsAffected(); n > 0 {
				res.Queued++
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('last_webhook_at', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.FormatInt(ms64(now), 10))
		return err
	})
	return res, err
}

// OwnOrigin marks the messages that kommo-summarizer itself logs (the
// Salesbot reply and the client message it answered).
const OwnOrigin = "kommo-summarizer"

// echoWindow is how far apart in time a webhook's message and our own
// logged copy of it may be.
const echoWindow = 10 * time.Minute

// echoOfOurs reports whether a webhook's message is one we logged already:
// the client's message the bot answered, or one bubble of the bot's reply
// (Kommo sends each bubble back as an outgoing message, under its own id).
func echoOfOurs(ctx context.Context, tx *sql.Tx, m LogMessage) (bool, error) {
	text := strings.Join(strings.Fields(m.Text), " ")
	if m.LeadID == 0 || text == "" {
		return false, nil
	}
	// The origin is written out, not bound: SQLite uses the partial index
	// messages_own only when the query's WHERE names its condition.
	rows, err := tx.QueryContext(ctx, `SELECT text FROM messages WHERE lead_id = ? AND origin = '`+OwnOrigin+`' AND direction = ?
		AND created_at BETWEEN ? AND ?`, m.LeadID, m.Direction,
		ms64(m.CreatedAt.Add(-echoWindow)), ms64(m.CreatedAt.Add(echoWindow)))
	if err != nil {
		return false, fmt.Errorf("store: look for our copy of message %s: %w", m.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ours string
		if err := rows.Scan(&ours); err != nil {
			return false, fmt.Errorf("store: look for our copy of message %s: %w", m.ID, err)
		}
		if strings.Contains(strings.Join(strings.Fields(ours), " "), text) {
			return true, nil
		}
	}
	return false, rows.Err()
}

// AddMessages logs messages that did not come from a webhook (the bot's own
// replies), deduplicated by id like webhook messages. It returns how many
// were new.
func (db *DB) AddMessages(ctx context.Context, msgs []LogMessage) (int, error) {
	var added int
	err := db.write(ctx, func(tx *sql.Tx) error {
		added = 0
		now := db.now()
		for _, m := range msgs {
			ok, err := insertMessage(ctx, tx, m, now)
			if err != nil {
				return err
			}
			if ok {
				added++
			}
		}
		return nil
	})
	return added, err
}

// insertMessage adds m unless a message with its id is logged already.
func insertMessage(ctx context.Context, tx *sql.Tx, m LogMessage, now time.Time) (bool, error) {
	if m.ID == "" || m.ChatID == "" {
		return false, fmt.Errorf("store: a logged message needs an id and a chat id (message %q, chat %q)", m.ID, m.ChatID)
	}
	if m.Direction != DirectionIn && m.Direction != DirectionOut {
		return false, fmt.Errorf("store: message %s: direction %q is not %q or %q", m.ID, m.Direction, DirectionIn, DirectionOut)
	}
	recv := m.ReceivedAt
	if recv.IsZero() {
		recv = now
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO messages (id, chat_id, talk_id, contact_id, lead_id, direction, author_name,
			author_type, type, text, attachment_type, attachment_name, created_at, origin, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		m.ID, m.ChatID, m.TalkID, m.ContactID, m.LeadID, m.Direction, m.AuthorName, m.AuthorType, m.Type, m.Text,
		m.AttachmentType, m.AttachmentName, ms64(m.CreatedAt), m.Origin, ms64(recv))
	if err != nil {
		return false, fmt.Errorf("store: log message %s: %w", m.ID, err)
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}

const logColumns = `id, chat_id, talk_id, contact_id, lead_id, direction, author_name, author_type, type, text,
	attachment_type, attachment_name, created_at, origin, received_at`

func scanLogMessages(rows *sql.Rows) ([]LogMessage, error) {
	defer rows.Close()
	var out []LogMessage
	for rows.Next() {
		var m LogMessage
		var created, recv int64
		if err := rows.Scan(&m.ID, &m.ChatID, &m.TalkID, &m.ContactID, &m.LeadID, &m.Direction, &m.AuthorName, &m.AuthorType,
			&m.Type, &m.Text, &m.AttachmentType, &m.AttachmentName, &created, &m.Origin, &recv); err != nil {
			return nil, err
		}
		m.CreatedAt, m.ReceivedAt = fromMS(created), fromMS(recv)
		out = append(out, m)
	}
	return out, rows.Err()
}

// LogChat is a chat of a lead that the message log holds.
type LogChat struct {
	ChatID string
	Origin string
	// Since is the oldest logged message: the log covers the chat from
	// then on (webhooks bring only what was sent after the hook existed).
	Since    time.Time
	Messages int
}

// LogChats returns the lead's chats in the message log, oldest first.
func (db *DB) LogChats(ctx context.Context, leadID int64) ([]LogChat, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT chat_id, MAX(origin), MIN(created_at), COUNT(*) FROM messages
		WHERE lead_id = ? GROUP BY chat_id ORDER BY MIN(created_at), chat_id`, leadID)
	if err != nil {
		return nil, fmt.Errorf("store: read the logged chats of lead %d: %w", leadID, err)
	}
	defer rows.Close()
	var out []LogChat
	for rows.Next() {
		var c LogChat
		var since int64
		if err := rows.Scan(&c.ChatID, &c.Origin, &since, &c.Messages); err != nil {
			return nil, fmt.Errorf("store: read the logged chats of lead %d: %w", leadID, err)
		}
		c.Since = fromMS(since)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the logged chats of lead %d: %w", leadID, err)
	}
	return out, nil
}

// LogHistory returns up to limit logged messages of the lead's chat, newest
// first, after skipping the offset newest ones: the same paging as the Chats
// API's history. Messages of the same second (webhook times are whole
// seconds) come in the reverse order of their arrival.
func (db *DB) LogHistory(ctx context.Context, leadID int64, chatID string, offset, limit int) ([]LogMessage, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+logColumns+` FROM messages WHERE lead_id = ? AND chat_id = ?
		ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?`, leadID, chatID, limitArg(limit), offset)
	if err != nil {
		return nil, fmt.Errorf("store: read the log of chat %s: %w", chatID, err)
	}
	out, err := scanLogMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("store: read the log of chat %s: %w", chatID, err)
	}
	return out, nil
}

// LeadMessages returns the lead's latest limit logged messages, of all its
// chats, oldest first.
func (db *DB) LeadMessages(ctx context.Context, leadID int64, limit int) ([]LogMessage, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+logColumns+` FROM (SELECT rowid AS seq, * FROM messages WHERE lead_id = ?
		ORDER BY created_at DESC, rowid DESC LIMIT ?) ORDER BY created_at, seq`, leadID, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read the logged messages of lead %d: %w", leadID, err)
	}
	out, err := scanLogMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("store: read the logged messages of lead %d: %w", leadID, err)
	}
	return out, nil
}

// PurgeMessages deletes the messages logged before t (the retention) and
// returns how many.
func (db *DB) PurgeMessages(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE received_at < ?`, ms64(before))
		if err != nil {
			return fmt.Errorf("store: purge the message log: %w", err)
		}
		n, _ = r.RowsAffected()
		return nil
	})
	return n, err
}

// LastWebhookAt is when the last webhook delivery was stored; zero if none.
func (db *DB) LastWebhookAt(ctx context.Context) (time.Time, error) {
	var v string
	err := db.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'last_webhook_at'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: read the last webhook time: %w", err)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: the last webhook time %q is not a number", v)
	}
	return fromMS(ms), nil
}

// QueuedClose is a lead waiting in the close queue.
type QueuedClose struct {
	LeadID int64
	DueAt  time.Time
}

// DueCloses returns up to limit queued leads whose due time has come.
func (db *DB) DueCloses(ctx context.Context, now time.Time, limit int) ([]QueuedClose, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT lead_id, due_at FROM close_queue WHERE due_at <= ? ORDER BY due_at, lead_id LIMIT ?`,
		ms64(now), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("store: read the close queue: %w", err)
	}
	defer rows.Close()
	var out []QueuedClose
	for rows.Next() {
		var q QueuedClose
		var due int64
		if err := rows.Scan(&q.LeadID, &due); err != nil {
			return nil, fmt.Errorf("store: read the close queue: %w", err)
		}
		q.DueAt = fromMS(due)
		out = append(out, q)
	}
	return out, rows.Err()
}

// NextCloseDue is the earliest due time in the close queue; zero if empty.
func (db *DB) NextCloseDue(ctx context.Context) (time.Time, error) {
	var due sql.NullInt64
	if err := db.db.QueryRowContext(ctx, `SELECT MIN(due_at) FROM close_queue`).Scan(&due); err != nil {
		return time.Time{}, fmt.Errorf("store: read the close queue: %w", err)
	}
	return fromMS(due.Int64), nil
}

// DoneClose takes q out of the close queue, unless an event moved its due
// time since it was read: then it waits for its new time.
func (db *DB) DoneClose(ctx context.Context, q QueuedClose) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM close_queue WHERE lead_id = ? AND due_at = ?`, q.LeadID, ms64(q.DueAt)); err != nil {
			return fmt.Errorf("store: take lead %d out of the close queue: %w", q.LeadID, err)
		}
		return nil
	})
}
