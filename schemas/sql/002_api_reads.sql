-- 002_api_reads.sql - what the producer's read endpoints need.

-- Timestamps in answers look like the 202's due_at: UTC, milliseconds, "Z".
CREATE FUNCTION botjobs_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- GET /bots/{botId}/jobs lists newest first with a keyset cursor on job_id (UUIDv7 is time-ordered).
CREATE INDEX jobs_bot_job ON jobs (bot_id, job_id);
