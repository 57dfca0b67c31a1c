-- Tenants created over the API (the fleet file's tenants are not stored), and the server's history
-- for the dashboard's charts (a sample per metric and label every few seconds; floats, never money
-- of record).
CREATE TABLE tenants (
    name       TEXT   PRIMARY KEY,
    weight     BIGINT NOT NULL,
    gpus_milli BIGINT,
    cpus_milli BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE history (
    at     BIGINT           NOT NULL,
    metric TEXT             NOT NULL,
    label  TEXT             NOT NULL,
    value  DOUBLE PRECISION NOT NULL
);
CREATE INDEX history_at ON history (at);
