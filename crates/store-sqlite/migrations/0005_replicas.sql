-- Inference replicas run as separate attempts: each attempt says which replica of its job it is.
ALTER TABLE attempts ADD COLUMN replica INTEGER NOT NULL DEFAULT 0;
CREATE INDEX attempts_job_replica ON attempts (job_id, replica);
-- A lost attempt may still run on its engine: it keeps this flag until its driver confirms the stop.
ALTER TABLE attempts ADD COLUMN engine_stop_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX attempts_engine_stop_pending ON attempts (job_id, attempt) WHERE engine_stop_pending = 1;
-- One row naming this deployment (this database), made once: drivers prefix engine job names with it.
CREATE TABLE deployment (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id        TEXT NOT NULL
);
INSERT INTO deployment (singleton, id) VALUES (1, lower(hex(randomblob(4))));
