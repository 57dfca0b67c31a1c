-- Usage records cover up to an hour: the ledger extends a node's open record instead of writing one
-- per pass (issue 11). Existing per-pass records are compacted: contiguous records of one attempt
-- and node on the same terms (everything in the record but its interval and costs), in the same
-- month, are merged per hour counted from the first of them. Costs add up exactly (rating
-- telescopes), so every invoice reads the same before and after. Records are read in keyset pages
-- ordered by start.
CREATE TEMP TABLE usage_merged AS
WITH r AS (
    SELECT job_id, attempt, node_rank, start_s, stop_s, record,
           json_remove(record, '$.start', '$.stop', '$.cost', '$.list_cost') AS terms,
           strftime('%Y-%m', start_s, 'unixepoch') AS month
    FROM usage_records
), flagged AS (
    SELECT *, CASE WHEN LAG(stop_s) OVER w = start_s AND LAG(terms) OVER w = terms AND LAG(month) OVER w = month
                   THEN 0 ELSE 1 END AS fresh
    FROM r WINDOW w AS (PARTITION BY job_id, attempt, node_rank ORDER BY start_s)
), islands AS (
    SELECT *, SUM(fresh) OVER (PARTITION BY job_id, attempt, node_rank ORDER BY start_s) AS island
    FROM flagged
), hours AS (
    SELECT *, (start_s - MIN(start_s) OVER (PARTITION BY job_id, attempt, node_rank, island)) / 3600 AS hour
    FROM islands
)
SELECT job_id, attempt, node_rank, MIN(start_s) AS start_s, MAX(stop_s) AS stop_s,
       json_set(MIN(record),
                '$.start', strftime('%Y-%m-%dT%H:%M:%SZ', MIN(start_s), 'unixepoch'),
                '$.stop', strftime('%Y-%m-%dT%H:%M:%SZ', MAX(stop_s), 'unixepoch'),
                '$.cost', SUM(json_extract(record, '$.cost')),
                '$.list_cost', SUM(json_extract(record, '$.list_cost'))) AS record,
       COUNT(*) AS parts
FROM hours
GROUP BY job_id, attempt, node_rank, island, hour;

DELETE FROM usage_records
WHERE EXISTS (
    SELECT 1 FROM usage_merged m
    WHERE m.parts > 1 AND m.job_id = usage_records.job_id AND m.attempt = usage_records.attempt
      AND m.node_rank = usage_records.node_rank
      AND usage_records.start_s >= m.start_s AND usage_records.stop_s <= m.stop_s
);

INSERT INTO usage_records (job_id, attempt, node_rank, start_s, stop_s, tenant, provider, contract, cost_micros, record)
SELECT job_id, attempt, node_rank, start_s, stop_s,
       json_extract(record, '$.tenant'), json_extract(record, '$.provider'), json_extract(record, '$.contract'),
       json_extract(record, '$.cost'), record
FROM usage_merged WHERE parts > 1;

DROP TABLE usage_merged;

CREATE INDEX usage_records_by_page ON usage_records (start_s, job_id, attempt, node_rank);
