-- Cumulo schema v1 (PostgreSQL). Times are microseconds since the Unix epoch.
CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    idem_key         TEXT,
    state            TEXT    NOT NULL,
    priority         BIGINT  NOT NULL,
    spec             TEXT    NOT NULL,
    pending_reason   TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    attempt_count    BIGINT  NOT NULL DEFAULT 0,
    failures         BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    submitted_at     BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE UNIQUE INDEX jobs_idem ON jobs (tenant, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state, priority DESC, id);
CREATE INDEX jobs_tenant ON jobs (tenant, id);

CREATE TABLE attempts (
    job_id     BIGINT NOT NULL REFERENCES jobs (id),
    attempt    BIGINT NOT NULL,
    state      TEXT   NOT NULL,
    placement  TEXT   NOT NULL,
    message    TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX attempts_active ON attempts (state) WHERE state IN ('planned', 'launching', 'running');

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    tenant     TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE events (
    seq     BIGSERIAL PRIMARY KEY,
    job_id  BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    message TEXT   NOT NULL
);
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
