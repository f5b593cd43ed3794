-- Times are unix milliseconds, UTC; 0 means "not set".

-- The OAuth pair of the account. One row: a refresh token is single-use, so
-- there is exactly one current pair.
CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    access_token  TEXT    NOT NULL,
    refresh_token TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- What the last summary of a lead covered, per chat.
CREATE TABLE chat_states (
    lead_id     INTEGER NOT NULL,
    chat_id     TEXT    NOT NULL,
    last_msg_id TEXT    NOT NULL,
    last_msg_at INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    head        BLOB,            -- JSON owned by the sweep
    tail        BLOB,            -- JSON owned by the sweep
    input_hash  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (lead_id, chat_id)
);

-- Summaries made but not yet confirmed in Kommo. At most one per lead, so a
-- retry can never write a second note for the same summary.
CREATE TABLE pending (
    request_id        TEXT    PRIMARY KEY,
    lead_id           INTEGER NOT NULL UNIQUE,
    run_id            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'noted')),
    note_text         TEXT    NOT NULL,
    field_text        TEXT    NOT NULL,
    note_id           INTEGER NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    input_hash        TEXT    NOT NULL,
    chats             TEXT    NOT NULL -- JSON array of the chat states to apply
);

CREATE TABLE summaries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id           INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    run_id            TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    text              TEXT    NOT NULL,
    input_hash        TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    note_id           INTEGER NOT NULL
);
CREATE INDEX summaries_by_lead ON summaries (lead_id, created_at DESC, id DESC);

CREATE TABLE runs (
    id          TEXT    PRIMARY KEY,
    command     TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    exit_code   INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    report      BLOB
);
CREATE INDEX runs_by_start ON runs (started_at DESC);

CREATE TABLE lead_results (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            TEXT    NOT NULL,
    lead_id           INTEGER NOT NULL,
    messages          INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('summarized', 'recovered', 'skipped_unchanged', 'skipped_no_chats', 'failed', 'dry_run')),
    error             TEXT    NOT NULL,
    at                INTEGER NOT NULL
);
CREATE INDEX lead_results_by_run ON lead_results (run_id);
CREATE INDEX lead_results_by_outcome ON lead_results (outcome, at DESC);

-- The run lock: at most one row, the run that may sweep.
CREATE TABLE run_lock (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    run_id       TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    host         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
