/*
 * wk_store.c - jobs in PostgreSQL. See wk_store.h.
 *
 * Batches travel as one jsonb parameter (jsonb_to_recordset): one round trip per batch, and no
 * hand-made array literals to escape.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "wk_events.h"
#include "wk_store.h"

void wk_claimed_free(struct wk_claimed *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++)
		cm_job_clear(&c[i].job);
	free(c);
}

/* The envelope's fields as the columns of jobs (target_kind/target_id/target_code from *_id/_code). */
static const char INSERT_SQL[] =
	"WITH input AS ("
	"  SELECT x.*, CASE WHEN x.script_id IS NOT NULL OR x.script_code IS NOT NULL THEN 'script'"
	"                   WHEN x.trigger_id IS NOT NULL OR x.trigger_code IS NOT NULL THEN 'trigger'"
	"                   WHEN x.broadcast_id IS NOT NULL OR x.broadcast_code IS NOT NULL THEN 'broadcast' END AS "
	"kind"
	"  FROM jsonb_to_recordset($1::jsonb) AS x(job_id uuid, bot_id bigint, lead_id bigint, ticket_id bigint,"
	"       script_id bigint, script_code text, trigger_id bigint, trigger_code text, broadcast_id bigint,"
	"       broadcast_code text, due_at timestamptz, is_periodic boolean, repeat_interval_sec integer,"
	"       condition_script_code text, script_request_params jsonb, add_tags jsonb, remove_tags jsonb,"
	"       accepted_at timestamptz, request_hash text)"
	"), ins AS ("
	"  INSERT INTO jobs (job_id, bot_id, lead_id, ticket_id, target_kind, target_id, target_code, due_at,"
	"                    period_sec, condition, params, add_tags, remove_tags, accepted_at, request_hash)"
	"  SELECT job_id, bot_id, lead_id, ticket_id, kind, coalesce(script_id, trigger_id, broadcast_id),"
	"         coalesce(script_code, trigger_code, broadcast_code), due_at,"
	"         CASE WHEN is_periodic THEN repeat_interval_sec END, condition_script_code,"
	"         coalesce(script_request_params, '{}'),"
	"         ARRAY(SELECT jsonb_array_elements_text(coalesce(add_tags, '[]'))),"
	"         ARRAY(SELECT jsonb_array_elements_text(coalesce(remove_tags, '[]'))), accepted_at, request_hash"
	"  FROM input"
	"  ON CONFLICT (job_id) DO NOTHING"
	"  RETURNING job_id, bot_id, lead_id, due_at, period_sec"
	"), ev AS ("
	"  INSERT INTO outbox (topic, key, payload)" /* one row for the batch's events (wk_outbox.h) */
	"  SELECT 'events', NULL, jsonb_agg(jsonb_build_object('key', bot_id || ':' || coalesce(lead_id::text, '-'),"
	"         'payload', jsonb_build_object('v', 1, 'type', 'job.scheduled', 'job_id', job_id, 'bot_id', bot_id,"
	"                            'lead_id', lead_id, 'due_at', botjobs_ts(due_at),"
	"                            'is_periodic', period_sec IS NOT NULL, 'at', botjobs_ts(clock_timestamp()))))"
	"  FROM ins WHERE $2::boolean HAVING count(*) > 0"
	")"
	"SELECT count(*), coalesce((extract(epoch FROM min(due_at)) * 1000000)::bigint, 9223372036854775807) FROM ins";

/* Cancels: a job that is not stored yet gets a tombstone the schedule cannot overwrite; a running
 * job finishes its run and is not rescheduled. Each cancelled job gets a job.cancelled event. */
static const char CANCEL_SQL[] =
	"WITH c AS ("
	"  INSERT INTO jobs AS j (job_id, bot_id, lead_id, due_at, state, last_error)"
	"  SELECT job_id, bot_id, lead_id, clock_timestamp(), 'cancelled', 'cancelled before it was stored'"
	"  FROM jsonb_to_recordset($1::jsonb) AS x(job_id uuid, bot_id bigint, lead_id bigint)"
	"  WHERE job_id IS NOT NULL"
	"  ON CONFLICT (job_id) DO UPDATE SET"
	"    state = CASE WHEN j.state = 'scheduled' THEN 'cancelled' ELSE j.state END,"
	"    cancel_requested = j.cancel_requested OR j.state = 'running',"
	"    last_error = CASE WHEN j.state = 'scheduled' THEN 'cancelled' ELSE j.last_error END,"
	"    updated_at = now()"
	"  WHERE j.bot_id = EXCLUDED.bot_id AND j.state IN ('scheduled', 'running')"
	"  RETURNING j.job_id, j.bot_id, j.lead_id, j.state"
	"), l AS ("
	"  UPDATE jobs j SET"
	"    state = CASE WHEN j.state = 'scheduled' THEN 'cancelled' ELSE j.state END,"
	"    cancel_requested = j.cancel_requested OR j.state = 'running',"
	"    last_error = CASE WHEN j.state = 'scheduled' THEN 'cancelled with every job of its lead'"
	"                 ELSE j.last_error END,"
	"    updated_at = now()"
	"  FROM jsonb_to_recordset($1::jsonb) AS x(job_id uuid, bot_id bigint, lead_id bigint, accepted_at timestamptz)"
	"  WHERE x.job_id IS NULL AND j.bot_id = x.bot_id AND j.lead_id = x.lead_id"
	"    AND j.state IN ('scheduled', 'running') AND coalesce(j.accepted_at, j.created_at) <= x.accepted_at"
	"  RETURNING j.job_id, j.bot_id, j.lead_id, j.state"
	")"
	"INSERT INTO outbox (topic, key, payload)"
	" SELECT 'events', bot_id || ':' || coalesce(lead_id::text, '-'),"
	"        jsonb_build_object('v', 1, 'type', 'job.cancelled', 'job_id', job_id, 'bot_id', bot_id,"
	"                           'lead_id', lead_id, 'at', botjobs_ts(clock_timestamp()))"
	" FROM (SELECT * FROM c UNION ALL SELECT * FROM l) x WHERE $2::boolean AND x.state = 'cancelled'";

int wk_store_insert_envelopes(PGconn *c, const json_t *envelopes, int events, int *inserted, int64_t *min_due_us,
			      char *errstr, size_t errstr_size)
{
	*inserted = 0;
	*min_due_us = INT64_MAX;
	if (json_array_size(envelopes) == 0)
		return 0;
	char *text = json_dumps(envelopes, JSON_COMPACT);
	if (!text) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	const char *p[] = {text, events ? "true" : "false"};
	PGresult *r = cm_pg_query_prepared(c, "bj_insert", INSERT_SQL, 2, p, errstr, errstr_size);
	free(text);
	if (!r)
		return -1;
	*inserted = atoi(PQgetvalue(r, 0, 0));
	*min_due_us = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}

/* Is cancels[i] a repeat of an earlier one (same job, same bot)? Lead cancels never are. */
static int cancel_repeat(const struct cm_cancel *cancels, size_t i)
{
	for (size_t k = 0; cancels[i].job_id[0] && k < i; k++)
		if (cancels[k].bot_id == cancels[i].bot_id && strcmp(cancels[k].job_id, cancels[i].job_id) == 0)
			return 1;
	return 0;
}

/* The statement a cancel goes in: after every earlier cancel of its job id for another bot. */
static size_t cancel_round(const struct cm_cancel *cancels, size_t i)
{
	size_t round = 0;
	for (size_t k = 0; cancels[i].job_id[0] && k < i; k++)
		if (strcmp(cancels[k].job_id, cancels[i].job_id) == 0 && !cancel_repeat(cancels, k) &&
		    cancels[k].bot_id != cancels[i].bot_id)
			round++;
	return round;
}

int wk_store_ingest(PGconn *c, const struct cm_job *jobs, size_t njobs, const struct cm_cancel *cancels,
		    size_t ncancels, int events, int *inserted, char *errstr, size_t errstr_size)
{
	json_t *envs = json_array(), *cans = json_array();
	int64_t min_due = INT64_MAX;
	int rc = -1;
	*inserted = 0;
	for (size_t i = 0; i < njobs; i++)
		json_array_append_new(envs, cm_job_to_envelope(&jobs[i]));

	if (cm_pg_exec(c, "BEGIN", errstr, errstr_size) == -1)
		goto out;
	if (wk_store_insert_envelopes(c, envs, events, inserted, &min_due, errstr, errstr_size) == -1)
		goto rollback;
	/* Cancels go in rounds: ON CONFLICT DO UPDATE may touch a row once per statement, and one job
	 * cancelled twice in a batch (a client retrying its DELETE, a backlog after an outage) failed the
	 * whole batch on every retry, so the partition never moved on. A repeat (same job, same bot) is
	 * dropped; the same job id for another bot waits for the next round, so it cannot shadow the
	 * real one. */
	for (size_t round = 0, left = ncancels; left > 0; round++) {
		json_array_clear(cans);
		for (size_t i = 0; i < ncancels; i++) {
			if (cancel_round(cancels, i) != round)
				continue;
			left--;
			if (!cancel_repeat(cancels, i))
				json_array_append_new(cans, cm_cancel_to_envelope(&cancels[i]));
		}
		char *text = json_dumps(cans, JSON_COMPACT);
		const char *p[] = {text, events ? "true" : "false"};
		int r = text ? cm_pg_command(c, CANCEL_SQL, 2, p, errstr, errstr_size) : -1;
		if (!text)
			snprintf(errstr, errstr_size, "out of memory");
		free(text);
		if (r == -1)
			goto rollback;
	}
	if (*inserted > 0) {
		char due[32];
		snprintf(due, sizeof(due), "d:%" PRId64, min_due);
		const char *p[] = {WK_NOTIFY_JOBS, due};
		if (cm_pg_command(c, "SELECT pg_notify($1, $2)", 2, p, errstr, errstr_size) == -1)
			goto rollback;
	}
	if (cm_pg_exec(c, "COMMIT", errstr, errstr_size) == -1)
		goto out;
	rc = 0;
	goto out;
rollback:
	cm_pg_exec_quiet(c, "ROLLBACK");
out:
	json_decref(envs);
	json_decref(cans);
	return rc;
}

/*
 * "r is running", said so that only the lead's index can serve it: written as r.state = 'running' the
 * planner probed jobs_lease (every running job, WHERE state = 'running') once per candidate, its statistics
 * from a table with none running; with two workers each probe walked the other's whole batch (43,008
 * buffers for one hand-back of 256; bench/profile.py --explain-ms). The IN is jobs_lead_pending's predicate.
 */
#define LEAD_RUNNING " r.state IN ('scheduled', 'running') AND r.state <> 'scheduled'"

/*
 * A lead's earliest pending job is its head; only heads run, so one lead's runs are sequential. A
 * running job of the lead blocks every other, also one due earlier: such a job can be stored while a
 * later one runs (a run_at in the past, a delayed delivery), and it must wait for that run's commit,
 * or both runs read the same lead snapshot and one's attribute writes are lost (chaos harness).
 * OFFSET 0 keeps each check a subplan evaluated per candidate with an index probe by lead; as an
 * anti-join its plan shape depended much more on the statistics (on an empty table: a scan of every
 * pending job for each candidate). Candidates are walked in (due_at, job_id) order (jobs_due, see
 * 008_claim_order.sql): the first job of a lead the walk meets is its head.
 */
#define IS_LEAD_HEAD                                                                                           \
	" NOT EXISTS (SELECT 1 FROM jobs p WHERE p.bot_id = j.bot_id AND p.lead_id = j.lead_id"                \
	"   AND p.state IN ('scheduled', 'running') AND (p.due_at, p.job_id) < (j.due_at, j.job_id) OFFSET 0)" \
	" AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.bot_id = j.bot_id AND r.lead_id = j.lead_id"            \
	"   AND" LEAD_RUNNING " OFFSET 0)"

static const char NEXT_DUE_SQL[] =
	"SELECT (extract(epoch FROM j.due_at) * 1000000)::bigint FROM jobs j"
	" WHERE j.state = 'scheduled' AND" IS_LEAD_HEAD " ORDER BY j.due_at, j.job_id LIMIT $1";

int wk_store_next_due(PGconn *c, int64_t *due_us, char *errstr, size_t errstr_size)
{
	/* A parameter, so that the connection's plan_cache_mode = force_custom_plan applies (wk_sched.c). */
	const char *p[] = {"1"};
	PGresult *r = cm_pg_query_prepared(c, "bj_next_due", NEXT_DUE_SQL, 1, p, errstr, errstr_size);
	if (!r)
		return -1;
	*due_us = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : INT64_MAX;
	PQclear(r);
	return 0;
}

/*
 * The due bound is statement_timestamp() (STABLE) plus the lookahead ($5 ms), not clock_timestamp()
 * (VOLATILE): only a stable bound is an index condition on jobs_due, so the scan stops at the first job not
 * yet due. With clock_timestamp() it was a filter, and a claim that found fewer due jobs than its batch
 * walked every future job's index entry (10 due among 200,000 future jobs: 36 ms per claim; bench w6).
 * A job claimed ahead of its due time does not start before it (wk_run_jobs waits), so the claim's round
 * trips are not part of its lateness; job.started says when the run starts, never before the due time.
 */
/*
 * Claims are serialized: each takes this transaction-level advisory lock before its statement starts, so
 * its snapshot sees every claim before it, and IS_LEAD_HEAD, judged in that snapshot, never misses a
 * running job of the lead. Without it, a claim whose snapshot predates another worker's claim of a job of
 * the same lead did not see that job running, and both ran at once (chaos harness: a job stored while
 * another worker's claim of a later one of its lead was under way); each worker then had to look again after
 * its claim committed and hand such jobs back — a probe of the lead's index per claimed job (~20 µs each,
 * 8 % of PostgreSQL's time in W1). Only a claim makes a job running (ingest, hand-backs, the reaper and
 * completions make jobs scheduled or finished), so one claim at a time is enough. Serialized claims also no
 * longer walk over each other's locked candidates (W1b, bench/profile.py: claim 99 -> 83 ms per 1,000 jobs).
 * A claim holds the lock ~5-30 ms; the other workers' claims wait that long.
 */
#define CLAIM_LOCK "7474420004"
#define CLAIM_IDLE_MAX "5s" /* the longest a claim transaction may wait for its worker between statements */

static const char CLAIM_SQL[] =
	"WITH c AS ("
	"  SELECT j.job_id FROM jobs j"
	"  WHERE j.state = 'scheduled'"
	"    AND j.due_at <= statement_timestamp() + $4::integer * interval '1 millisecond' AND" IS_LEAD_HEAD
	"  ORDER BY j.due_at, j.job_id LIMIT $3 FOR UPDATE SKIP LOCKED"
	"), u AS ("
	"  UPDATE jobs j SET state = 'running', lease_owner = $1,"
	"         lease_until = clock_timestamp() + make_interval(secs => $2::integer),"
	"         attempts = j.attempts + 1, updated_at = now()"
	"  WHERE j.job_id = ANY (ARRAY(SELECT job_id FROM c))" /* by the primary key: never a scan of jobs */
	"  RETURNING j.*"
	")"
	"SELECT job_id, bot_id, lead_id, ticket_id, target_kind, target_id, target_code,"
	"       (extract(epoch FROM due_at) * 1000000)::bigint, period_sec, condition, params::text,"
	"       to_json(add_tags)::text, to_json(remove_tags)::text, attempts, runs,"
	"       (extract(epoch FROM accepted_at) * 1000000)::bigint, bcast_cursor"
	" FROM u ORDER BY due_at";

static char **tags_from_json(const char *text, size_t *n)
{
	json_t *a = json_loads(text, 0, NULL);
	char **tags = NULL;
	*n = 0;
	if (json_array_size(a)) {
		tags = calloc(json_array_size(a), sizeof(char *));
		size_t i;
		json_t *t;
		json_array_foreach(a, i, t) if (tags) tags[(*n)++] = strdup(json_string_value(t));
	}
	json_decref(a);
	return tags;
}

static int64_t int_or_zero(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int wk_store_claim(PGconn *c, const char *worker, int lease_sec, size_t max, int lookahead_ms, int events,
		   struct wk_claimed **out, size_t *n, char *errstr, size_t errstr_size)
{
	char lease[16], lim[16], ahead[16];
	snprintf(lease, sizeof(lease), "%d", lease_sec);
	snprintf(lim, sizeof(lim), "%zu", max);
	snprintf(ahead, sizeof(ahead), "%d", lookahead_ms);
	const char *p[] = {worker, lease, lim, ahead};
	*out = NULL;
	*n = 0;
	/* One claim at a time across all workers (CLAIM_LOCK); the claim statement's snapshot is taken once
	 * the lock is held, so it sees every claim before it. A worker stopped inside its claim transaction
	 * (SIGSTOP, a frozen VM) would hold every other worker's claims for as long as it stays stopped:
	 * PostgreSQL ends its session after CLAIM_IDLE_MAX idle in the transaction (it rolls back: nothing was
	 * claimed), and the lock is free again. */
	if (cm_pg_exec(c,
		       "BEGIN; SET LOCAL idle_in_transaction_session_timeout = '" CLAIM_IDLE_MAX "';"
		       " SELECT pg_advisory_xact_lock(" CLAIM_LOCK ")",
		       errstr, errstr_size) == -1) {
		cm_pg_exec_quiet(c, "ROLLBACK");
		return -1;
	}
	PGresult *r = cm_pg_query_prepared(c, "bj_claim", CLAIM_SQL, 4, p, errstr, errstr_size);
	int rows = r ? PQntuples(r) : 0;
	struct wk_claimed *jobs = rows ? calloc((size_t)rows, sizeof(*jobs)) : NULL;
	if (!r || (rows && !jobs)) {
		if (r)
			snprintf(errstr, errstr_size, "out of memory");
		PQclear(r);
		cm_pg_exec_quiet(c, "ROLLBACK"); /* nothing claimed */
		return -1;
	}
	for (int i = 0; i < rows; i++) {
		struct wk_claimed *cj = &jobs[i];
		struct cm_job *j = &cj->job;
		snprintf(j->job_id, sizeof(j->job_id), "%s", PQgetvalue(r, i, 0));
		j->bot_id = int_or_zero(r, i, 1);
		j->lead_id = int_or_zero(r, i, 2);
		j->ticket_id = int_or_zero(r, i, 3);
		j->kind = PQgetisnull(r, i, 4) ? CM_TARGET_NONE : cm_target_kind_parse(PQgetvalue(r, i, 4));
		j->target_id = int_or_zero(r, i, 5);
		j->target_code = PQgetisnull(r, i, 6) ? NULL : strdup(PQgetvalue(r, i, 6));
		j->due_us = int_or_zero(r, i, 7);
		j->interval_sec = int_or_zero(r, i, 8);
		j->is_periodic = !PQgetisnull(r, i, 8);
		j->condition = PQgetisnull(r, i, 9) ? NULL : strdup(PQgetvalue(r, i, 9));
		j->params = json_loads(PQgetvalue(r, i, 10), 0, NULL);
		if (!j->params)
			j->params = json_object();
		j->add_tags = tags_from_json(PQgetvalue(r, i, 11), &j->n_add_tags);
		j->remove_tags = tags_from_json(PQgetvalue(r, i, 12), &j->n_remove_tags);
		cj->attempts = (int)int_or_zero(r, i, 13);
		cj->runs = (int)int_or_zero(r, i, 14);
		j->accepted_us = int_or_zero(r, i, 15);
		cj->bcast_cursor = int_or_zero(r, i, 16);
	}
	/* job.started, in the claim's transaction; not for a broadcast's next chunk (it started before) */
	struct wk_events ev = {0};
	int64_t now = cm_time_now_us();
	for (int i = 0; events && i < rows; i++)
		if (PQgetisnull(r, i, 16))
			wk_events_started(&ev, &jobs[i], worker, now);
	PQclear(r);
	int rc = wk_events_insert(c, &ev, errstr, errstr_size);
	wk_events_free(&ev);
	if (rc == -1 || cm_pg_exec(c, "COMMIT", errstr, errstr_size) == -1) {
		cm_pg_exec_quiet(c, "ROLLBACK"); /* nothing claimed (a failed COMMIT: the lease runs out) */
		wk_claimed_free(jobs, (size_t)rows);
		return -1;
	}
	*out = jobs;
	*n = (size_t)rows;
	return 0;
}

int wk_store_reap(PGconn *c, int max_attempts, int *n, char *errstr, size_t errstr_size)
{
	char maxa[16];
	snprintf(maxa, sizeof(maxa), "%d", max_attempts);
	const char *p[] = {maxa};
	PGresult *r = cm_pg_query(
		c,
		"UPDATE jobs SET state = CASE WHEN attempts >= $1::integer THEN 'failed' ELSE 'scheduled' END,"
		"  last_error = CASE WHEN attempts >= $1::integer"
		"    THEN 'lease expired ' || attempts || ' times (the worker running it died or stalled)'"
		"    ELSE last_error END,"
		"  lease_owner = NULL, lease_until = NULL, updated_at = now()"
		" WHERE state = 'running' AND lease_until < clock_timestamp() RETURNING job_id, state",
		1, p, errstr, errstr_size);
	if (!r)
		return -1;
	*n = PQntuples(r);
	for (int i = 0; i < *n; i++)
		cm_log_with(CM_LOG_WARN, "job_id", PQgetvalue(r, i, 0), "lease expired: job %s",
			    strcmp(PQgetvalue(r, i, 1), "failed") == 0 ? "failed (too many attempts)"
								       : "handed back for another run");
	PQclear(r);
	return 0;
}

int wk_store_release(PGconn *c, const char *worker, const struct wk_claimed *jobs, size_t n, char *errstr,
		     size_t errstr_size)
{
	if (n == 0)
		return 0;
	json_t *ids = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_string(jobs[i].job.job_id));
	char *text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	const char *p[] = {text, worker};
	int rc = cm_pg_command(c,
			       "UPDATE jobs SET state = 'scheduled', attempts = greatest(attempts - 1, 0),"
			       " lease_owner = NULL, lease_until = NULL, updated_at = now()"
			       " WHERE job_id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)"
			       " AND lease_owner = $2 AND state = 'running'",
			       2, p, errstr, errstr_size);
	free(text);
	return rc;
}
