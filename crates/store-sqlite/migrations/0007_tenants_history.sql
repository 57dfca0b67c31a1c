-- Tenants created over the API (the fleet file's tenants are not stored), and the server's history
-- for the dashboard's charts (a sample per metric and label every few seconds; floats, never money
-- of record).
CREATE TABLE tenants (
    name       TEXT    PRIMARY KEY,
    weight     INTEGER NOT NULL,
    gpus_milli INTEGER,
    cpus_milli INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE history (
    at     INTEGER NOT NULL,
    metric TEXT    NOT NULL,
    label  TEXT    NOT NULL,
    value  REAL    NOT NULL
);
CREATE INDEX history_at ON history (at);
