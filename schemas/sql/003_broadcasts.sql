-- 003_broadcasts.sql - broadcast fan-out: a checkpoint and progress on the broadcast's job row.
-- A broadcast job runs in chunks of leads (id order); each chunk commits its leads' effects together
-- with the new cursor, so a crash resumes after the last committed lead and no lead runs twice.
ALTER TABLE jobs
	ADD COLUMN bcast_cursor  bigint,          -- the last lead id done in the current run, NULL = not started
	ADD COLUMN bcast_total   integer,         -- leads to go through in the current run
	ADD COLUMN bcast_done    integer NOT NULL DEFAULT 0,  -- leads gone through
	ADD COLUMN bcast_matched integer NOT NULL DEFAULT 0,  -- leads whose condition held and whose run succeeded
	ADD COLUMN bcast_failed  integer NOT NULL DEFAULT 0;  -- leads whose run failed (script error)
