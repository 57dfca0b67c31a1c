-- Inference replicas run as separate attempts: each attempt says which replica of its job it is.
ALTER TABLE attempts ADD COLUMN replica BIGINT NOT NULL DEFAULT 0;
CREATE INDEX attempts_job_replica ON attempts (job_id, replica);
-- A lost attempt may still run on its engine: it keeps this flag until its driver confirms the stop.
ALTER TABLE attempts ADD COLUMN engine_stop_pending BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX attempts_engine_stop_pending ON attempts (job_id, attempt) WHERE engine_stop_pending;
-- One row naming this deployment (this database), made once: drivers prefix engine job names with it.
CREATE TABLE deployment (
    singleton BIGINT PRIMARY KEY CHECK (singleton = 1),
    id        TEXT NOT NULL
);
INSERT INTO deployment (singleton, id) VALUES (1, substr(md5(random()::text), 1, 8));
