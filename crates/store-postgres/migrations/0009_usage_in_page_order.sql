-- The page index (start_s, job_id, attempt, node_rank) serves every query the start-only index
-- served (its leading column is start_s): one index fewer to keep on each usage append. (SQLite's
-- 0009 also keeps its usage table clustered in page order; a PostgreSQL heap has no such order to
-- keep, so a page is still read through the page index.)
DROP INDEX usage_records_by_start;
