-- 007_inline_ts.sql - botjobs_ts becomes STABLE, like to_char inside it: PostgreSQL then inlines it into
-- the calling query instead of running a SQL function per row (3-4x cheaper; every event and API
-- answer formats timestamps with it). Same text as before.
CREATE OR REPLACE FUNCTION botjobs_ts(t timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
	SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
