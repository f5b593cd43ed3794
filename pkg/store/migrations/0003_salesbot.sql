-- Salesbot widget_request jobs: a request is stored before Kommo gets its
-- 200, so a restart does not leave the bot waiting. body is the continue
-- call once built: a retry resends the same reply instead of asking the LLM
-- again.
CREATE TABLE bot_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    return_url  TEXT    NOT NULL UNIQUE, -- holds the continue_id: Kommo makes one per request
    lead_id     INTEGER NOT NULL,
    contact_id  INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    data        TEXT    NOT NULL, -- the request's data object, as JSON
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'dropped', 'failed')),
    status      TEXT    NOT NULL, -- success, handoff or fail once the reply is built; '' before
    reply       TEXT    NOT NULL,
    body        TEXT    NOT NULL, -- the continue call's JSON body; '' until built
    attempts    INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    error       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    replied_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL
);
CREATE INDEX bot_jobs_due ON bot_jobs (state, next_at);
CREATE INDEX bot_jobs_by_created ON bot_jobs (created_at DESC, id DESC);

-- Leads handed to a manager: no AI reply until quiet_until, unless cleared.
CREATE TABLE bot_handoffs (
    lead_id     INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    quiet_until INTEGER NOT NULL,
    reason      TEXT    NOT NULL
);
