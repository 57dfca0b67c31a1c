-- Metered usage (the ledger's records), keyed by attempt, node rank and start. Added by the ledger.
CREATE TABLE usage_records (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    node_rank   INTEGER NOT NULL,
    start_s     INTEGER NOT NULL,
    stop_s      INTEGER NOT NULL,
    tenant      TEXT NOT NULL,
    provider    TEXT NOT NULL,
    contract    TEXT,
    cost_micros INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, node_rank, start_s)
);
CREATE INDEX usage_records_by_start ON usage_records (start_s);
