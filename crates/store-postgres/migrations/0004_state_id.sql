-- Listing jobs by state pages by id (the API); pending_jobs keeps using jobs_state (state, priority, id).
CREATE INDEX jobs_state_id ON jobs (state, id);
