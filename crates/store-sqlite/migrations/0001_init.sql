-- Cumulo schema v1 (SQLite). Times are microseconds since the Unix epoch.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    idem_key         TEXT,
    state            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    spec             TEXT    NOT NULL,
    pending_reason   TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    submitted_at     INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_idem ON jobs (tenant, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state, priority DESC, id);
CREATE INDEX jobs_tenant ON jobs (tenant, id);

CREATE TABLE attempts (
    job_id     INTEGER NOT NULL REFERENCES jobs (id),
    attempt    INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    placement  TEXT    NOT NULL,
    message    TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX attempts_active ON attempts (state) WHERE state IN ('planned', 'launching', 'running');

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX events_job ON events (job_id, seq);
