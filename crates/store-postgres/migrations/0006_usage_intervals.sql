-- Usage records cover up to an hour: the ledger extends a node's open record instead of writing one
-- per pass (issue 11). Existing per-pass records are compacted: contiguous records of one attempt
-- and node on the same terms (everything in the record but its interval and costs), in the same
-- month, are merged per hour counted from the first of them. Costs add up exactly (rating
-- telescopes), so every invoice reads the same before and after. Records are read in keyset pages
-- ordered by start.
CREATE TEMP TABLE usage_merged ON COMMIT DROP AS
WITH r AS (
    SELECT job_id, attempt, node_rank, start_s, stop_s, record::jsonb AS doc,
           (record::jsonb - 'start' - 'stop' - 'cost' - 'list_cost') AS terms,
           to_char(to_timestamp(start_s) AT TIME ZONE 'UTC', 'YYYY-MM') AS month
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
       (MIN(terms::text)::jsonb
          || jsonb_build_object(
               'start', to_char(to_timestamp(MIN(start_s)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'stop', to_char(to_timestamp(MAX(stop_s)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'cost', SUM((doc->>'cost')::bigint),
               'list_cost', SUM((doc->>'list_cost')::bigint)))::text AS record,
       SUM((doc->>'cost')::bigint) AS cost_micros,
       COUNT(*) AS parts
FROM hours
GROUP BY job_id, attempt, node_rank, island, hour;

DELETE FROM usage_records u
USING usage_merged m
WHERE m.parts > 1 AND m.job_id = u.job_id AND m.attempt = u.attempt AND m.node_rank = u.node_rank
  AND u.start_s >= m.start_s AND u.stop_s <= m.stop_s;

INSERT INTO usage_records (job_id, attempt, node_rank, start_s, stop_s, tenant, provider, contract, cost_micros, record)
SELECT job_id, attempt, node_rank, start_s, stop_s,
       record::jsonb->>'tenant', record::jsonb->>'provider', record::jsonb->>'contract', cost_micros, record
FROM usage_merged WHERE parts > 1;

CREATE INDEX usage_records_by_page ON usage_records (start_s, job_id, attempt, node_rank);
