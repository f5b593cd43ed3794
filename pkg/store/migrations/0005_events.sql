-- The change feed of `sweep` (the Events API) and the contact -> chats cache.

-- One row: where the next incremental sweep starts reading events, and when
-- the last full pass started. Both move only when the sweep that used them
-- completed.
CREATE TABLE sweep_feed (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    cursor     INTEGER NOT NULL, -- the start of the last completed sweep
    full_at    INTEGER NOT NULL, -- the start of the last completed full pass
    updated_at INTEGER NOT NULL
);

-- Leads that failed in the last completed sweep: the next incremental sweep
-- takes them again, with or without an event.
CREATE TABLE sweep_retry (
    lead_id  INTEGER PRIMARY KEY,
    run_id   TEXT    NOT NULL,
    added_at INTEGER NOT NULL
);

-- GET /api/v4/contacts/chats, cached: the chat ids of a contact.
CREATE TABLE contact_chats (
    contact_id INTEGER PRIMARY KEY,
    chat_ids   TEXT    NOT NULL, -- JSON array of chat ids, maybe empty
    fetched_at INTEGER NOT NULL
);

-- Talks named by chat message events. A talk not seen before may be a new
-- chat, so its contact's cached chats are fetched again.
CREATE TABLE seen_talks (
    talk_id    INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
