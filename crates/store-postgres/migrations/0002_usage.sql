-- Metered usage (the ledger's records), keyed by attempt, node rank and start. Added by the ledger.
CREATE TABLE usage_records (
    job_id      BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    node_rank   BIGINT NOT NULL,
    start_s     BIGINT NOT NULL,
    stop_s      BIGINT NOT NULL,
    tenant      TEXT NOT NULL,
    provider    TEXT NOT NULL,
    contract    TEXT,
    cost_micros BIGINT NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, node_rank, start_s)
);
CREATE INDEX usage_records_by_start ON usage_records (start_s);
