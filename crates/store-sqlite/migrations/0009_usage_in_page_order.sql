-- Usage records clustered in page order (issue 11). A FOCUS export reads usage in keyset pages
-- ordered by (start_s, job_id, attempt, node_rank); as a rowid table, every record of a page was
-- found in the page index and then looked up in the table, one B-tree descent per record (about
-- 14% of an export's CPU). Kept WITHOUT ROWID under that key, a page is one range of the table
-- itself. Appends look records up by attempt and node, and check the node's earlier records for
-- overlap by their stop: an index in that order holding stop_s stands beside it, so that check reads
-- the index alone (the primary key keeps the key unique, and is the upsert's conflict target). The
-- start-only and page indexes go with the old table.
CREATE TABLE usage_records_paged (
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
    PRIMARY KEY (start_s, job_id, attempt, node_rank)
) WITHOUT ROWID;

INSERT INTO usage_records_paged
    (job_id, attempt, node_rank, start_s, stop_s, tenant, provider, contract, cost_micros, record)
SELECT job_id, attempt, node_rank, start_s, stop_s, tenant, provider, contract, cost_micros, record
FROM usage_records ORDER BY start_s, job_id, attempt, node_rank;

DROP TABLE usage_records;
ALTER TABLE usage_records_paged RENAME TO usage_records;

CREATE INDEX usage_records_by_attempt ON usage_records (job_id, attempt, node_rank, start_s, stop_s);
