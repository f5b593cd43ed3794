-- The message log: chat messages that Kommo's account webhooks delivered
-- (add_message, add_outgoing_message), for the chats the Chats API cannot
-- read (WhatsApp, Telegram, Instagram of other integrations), and the bot's
-- own replies. Deduplicated by Kommo's message id: Kommo retries deliveries.
CREATE TABLE messages (
    id              TEXT    PRIMARY KEY,
    chat_id         TEXT    NOT NULL,
    talk_id         INTEGER NOT NULL,
    contact_id      INTEGER NOT NULL,
    lead_id         INTEGER NOT NULL, -- 0 until a message or talk of the chat names the lead
    direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    author_name     TEXT    NOT NULL,
    author_type     TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    attachment_type TEXT    NOT NULL,
    attachment_name TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    origin          TEXT    NOT NULL,
    received_at     INTEGER NOT NULL
);
CREATE INDEX messages_by_lead ON messages (lead_id, chat_id, created_at, id);
CREATE INDEX messages_by_chat ON messages (chat_id, lead_id);
CREATE INDEX messages_by_received ON messages (received_at);

-- Which lead a chat belongs to, as the latest message or talk event said:
-- outgoing messages often come without the lead's id.
CREATE TABLE chat_leads (
    chat_id    TEXT    PRIMARY KEY,
    lead_id    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Leads whose chat closed, waiting for their summary. due_at moves with
-- every event of the lead (the debounce).
CREATE TABLE close_queue (
    lead_id   INTEGER PRIMARY KEY,
    due_at    INTEGER NOT NULL,
    queued_at INTEGER NOT NULL
);

-- Small facts: the last webhook delivery, and the like.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Runs that are alive say so here, so that pending summaries are settled
-- only by the run that made them or after that run died (serve and a cron
-- sweep run side by side).
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER NOT NULL DEFAULT 0;

-- A lead's summary version: it moves with every completed summary, so a
-- summary made from an older version is not written (two processes
-- summarising the same change write one note).
CREATE TABLE lead_versions (
    lead_id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);

-- New outcomes: chats with nothing but media, leads another process was
-- already summarising.
CREATE TABLE lead_results_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            TEXT    NOT NULL,
    lead_id           INTEGER NOT NULL,
    messages          INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('summarized', 'recovered', 'skipped_unchanged', 'skipped_no_chats',
                                                          'skipped_no_text', 'skipped_busy', 'failed', 'dry_run')),
    error             TEXT    NOT NULL,
    at                INTEGER NOT NULL
);
INSERT INTO lead_results_new SELECT * FROM lead_results;
DROP TABLE lead_results;
ALTER TABLE lead_results_new RENAME TO lead_results;
CREATE INDEX lead_results_by_run ON lead_results (run_id);
CREATE INDEX lead_results_by_outcome ON lead_results (outcome, at DESC);
