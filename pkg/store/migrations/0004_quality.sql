-- Summary quality: rolling structured summaries, human edits of the field,
-- and the cost ledger.

-- The latest structured summary of each lead, as confirmed in Kommo: what
-- the next rolling update starts from; and the hash of the text last
-- written to the lead's summary field, to tell a person's edit from ours.
CREATE TABLE lead_digests (
    lead_id    INTEGER PRIMARY KEY,
    summary    TEXT    NOT NULL, -- JSON owned by the sweep; '' after a plain-text fallback (the next summary is a full build)
    made_at    INTEGER NOT NULL,
    updates    INTEGER NOT NULL, -- rolling updates since the last full build
    field_hash TEXT    NOT NULL  -- hex SHA-256 of the field text we last wrote; '' when none
);

-- A pending summary's digest, applied to lead_digests when it completes.
ALTER TABLE pending ADD COLUMN digest TEXT NOT NULL DEFAULT '';

-- What the LLM calls cost, per UTC day.
CREATE TABLE spend (
    day               TEXT    PRIMARY KEY, -- YYYY-MM-DD, UTC
    usd               REAL    NOT NULL,
    calls             INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
);

-- A new outcome: leads left for the next run because the budget ran out.
CREATE TABLE lead_results_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            TEXT    NOT NULL,
    lead_id           INTEGER NOT NULL,
    messages          INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('summarized', 'recovered', 'skipped_unchanged', 'skipped_no_chats',
                                                          'skipped_no_text', 'skipped_busy', 'skipped_budget', 'failed', 'dry_run')),
    error             TEXT    NOT NULL,
    at                INTEGER NOT NULL
);
INSERT INTO lead_results_new SELECT * FROM lead_results;
DROP TABLE lead_results;
ALTER TABLE lead_results_new RENAME TO lead_results;
CREATE INDEX lead_results_by_run ON lead_results (run_id);
CREATE INDEX lead_results_by_outcome ON lead_results (outcome, at DESC);
