-- 004_housekeeping.sql - pruning finished jobs and run history after the retention period, in small
-- batches. Finished rows leave the partial indexes the hot paths use (jobs_due, jobs_lease,
-- jobs_lead_pending) the moment they finish; these indexes find them again for deletion.
CREATE INDEX jobs_finished ON jobs (updated_at) WHERE state IN ('done', 'failed', 'cancelled', 'skipped');
CREATE INDEX job_runs_finished ON job_runs (finished_at);
