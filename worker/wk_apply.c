/*
 * wk_apply.c - commits run results: the job's completion, its effects, its job_runs row, its events
 * and outbound messages, all in one transaction. See wk_run.h.
 *
 * One statement does it for a whole batch (data-modifying CTEs over jsonb_to_recordset). The job
 * update is the gate: a result whose lease was lost (another worker took the job over) matches no
 * row, so none of its effects are written. When the batch statement cannot be used (two results
 * touch the same bot attribute or ticket) or fails, each result is applied alone under a savepoint,
 * and a result whose effects cannot be applied fails its run with the reason instead.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_log.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "wk_events.h"
#include "wk_metrics.h"
#include "wk_run.h"
#include "wk_sql.h"

/* One statement, longer than the 4095 characters ISO C promises; gcc and clang take it.
 * SQL reads best one clause per line. */
/* clang-format off */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char APPLY_SQL[] =
	"WITH r AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(job_id uuid, attempts integer, outcome text,"
	"    due_at timestamptz, started_at timestamptz, finished_at timestamptz, error text, error_line integer,"
	"    result jsonb, retry_sec double precision, max_attempts integer, lead_set jsonb, lead_del jsonb,"
	"    tags_add jsonb, tags_del jsonb, status_name text, bot_set jsonb, bot_del jsonb, ticket_set jsonb,"
	"    outbox jsonb)"
	"), u AS ("
	"  UPDATE jobs j SET"
	"    state = CASE"
	"      WHEN r.outcome = 'retry' THEN CASE WHEN j.attempts >= r.max_attempts THEN 'failed' ELSE 'scheduled' END"
	"      WHEN r.outcome = 'cancelled' THEN 'cancelled'"
	"      WHEN j.period_sec IS NOT NULL THEN CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'scheduled' END"
	"      ELSE r.outcome END,"
	"    due_at = CASE"
	"      WHEN r.outcome = 'retry' THEN greatest(j.due_at, clock_timestamp() + make_interval(secs => r.retry_sec))"
	"      WHEN j.period_sec IS NOT NULL AND r.outcome <> 'cancelled' AND NOT j.cancel_requested THEN j.due_at"
	"        + make_interval(secs => j.period_sec"
	"            * (floor(extract(epoch FROM clock_timestamp() - j.due_at) / j.period_sec) + 1))"
	"      ELSE j.due_at END,"
	"    runs = j.runs + CASE WHEN r.outcome = 'retry' AND j.attempts < r.max_attempts THEN 0 ELSE 1 END,"
	"    attempts = CASE WHEN r.outcome = 'retry' THEN j.attempts ELSE 0 END,"
	"    lease_owner = NULL, lease_until = NULL,"
	"    last_run_at = CASE WHEN r.outcome = 'retry' THEN j.last_run_at ELSE r.started_at END,"
	"    last_error = r.error,"
	"    result = CASE WHEN r.outcome = 'done' THEN r.result ELSE j.result END,"
	"    updated_at = now()"
	"  FROM r"
	"  WHERE j.job_id = r.job_id AND j.lease_owner = $2 AND j.attempts = r.attempts AND j.state = 'running'"
	"  RETURNING j.job_id, j.bot_id, j.lead_id, j.ticket_id, j.state AS new_state, j.due_at AS next_due_at,"
	"            j.runs AS run_no"
	"), ok AS ("
	"  SELECT r.*, u.bot_id, u.lead_id, u.ticket_id, u.new_state, u.next_due_at, u.run_no,"
	"         CASE WHEN r.outcome = 'retry' AND u.new_state = 'failed' THEN 'failed' ELSE r.outcome END AS final"
	"  FROM r JOIN u ON u.job_id = r.job_id"
	"), lu AS (" WK_SQL_LEAD_EFFECTS("ok")
	"), bs AS (" WK_SQL_BOT_SET("ok")
	"), bd AS (" WK_SQL_BOT_DEL("ok")
	"), tu AS ("
	"  UPDATE tickets t SET data = t.data || ok.ticket_set, updated_at = now() FROM ok"
	"  WHERE ok.outcome = 'done' AND ok.ticket_set IS NOT NULL AND t.bot_id = ok.bot_id"
	"    AND t.id = ok.ticket_id"
	"), jr AS ("
	"  INSERT INTO job_runs (job_id, bot_id, lead_id, run_no, due_at, started_at, finished_at, outcome,"
	"                        error, error_line, result, worker)"
	"  SELECT job_id, bot_id, lead_id, run_no, due_at, started_at, finished_at, final, error, error_line,"
	"         CASE WHEN outcome = 'done' THEN result END, $2"
	"  FROM ok WHERE final <> 'retry'"
	"), ob AS (" WK_SQL_OUTBOX_MESSAGES("ok")
	")"
	"SELECT job_id, new_state, (extract(epoch FROM next_due_at) * 1000000)::bigint, run_no, final, bot_id,"
	"       lead_id, (extract(epoch FROM due_at) * 1000000)::bigint,"
	"       (extract(epoch FROM started_at) * 1000000)::bigint, (extract(epoch FROM finished_at) * 1000000)::bigint,"
	"       error"
	" FROM ok ORDER BY started_at, job_id";
/* clang-format on */
#pragma GCC diagnostic pop

/* Delay before infrastructure retry n (1-based): base * 2^(n-1), capped at 5 min, with ±25% jitter. */
static double retry_delay_sec(int base_ms, int attempt)
{
	double d = base_ms / 1000.0;
	for (int i = 1; i < attempt && d < 300; i++)
		d *= 2;
	if (d > 300)
		d = 300;
	uint32_t r = 0;
	if (cm_random(&r, sizeof(r)) == -1)
		r = 0;
	return d * (0.75 + 0.5 * (r / 4294967296.0));
}

/* One outbound message per sendText, with an id stable across relays (job, run, index). */
static json_t *outbox_messages(const struct wk_result *r)
{
	const struct cm_job *j = &r->claimed->job;
	const json_t *msgs = json_object_get(json_object_get(r->reply, "effects"), "messages");
	if (json_array_size(msgs) == 0)
		return NULL;
	const json_t *lead = json_object_get(r->snapshot, "lead");
	char key[48], name[96], mid[CM_UUID_STRLEN + 1], at[CM_TIME_BUFSZ];
	cm_job_key(j->bot_id, j->lead_id, key, sizeof(key));
	json_t *rows = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		int n = snprintf(name, sizeof(name), "%s:%d:%zu", j->job_id, r->claimed->runs + 1, i);
		cm_uuid_from_name("botjobs.outbound", name, (size_t)n, mid);
		json_t *payload =
			json_pack("{si ss ss sI sI sO sO ss si ss}", "v", 1, "type", "message", "message_id", mid,
				  "bot_id", (json_int_t)j->bot_id, "lead_id", (json_int_t)j->lead_id, "channel",
				  json_object_get(lead, "channel") ? json_object_get(lead, "channel") : json_null(),
				  "text", json_object_get(m, "text"), "job_id", j->job_id, "run", r->claimed->runs + 1,
				  "created_at", cm_time_format_us(r->finished_us, at));
		if (payload)
			json_array_append_new(rows, json_pack("{ss so}", "key", key, "payload", payload));
	}
	return rows;
}

static void set_if(json_t *o, const char *k, json_t *v)
{
	if (v && !(json_is_object(v) && json_object_size(v) == 0) && !(json_is_array(v) && json_array_size(v) == 0))
		json_object_set(o, k, v);
}

static json_t *result_row(const struct wk_run_ctx *ctx, const struct wk_result *r, const char *override_error)
{
	char t[CM_TIME_BUFSZ];
	const struct wk_claimed *c = r->claimed;
	json_t *row = json_object();
	enum wk_outcome o = override_error ? WK_FAILED : r->outcome;
	json_object_set_new(row, "job_id", json_string(c->job.job_id));
	json_object_set_new(row, "attempts", json_integer(c->attempts));
	json_object_set_new(row, "outcome", json_string(wk_outcome_name(o)));
	json_object_set_new(row, "due_at", json_string(cm_time_format_us(c->job.due_us, t)));
	json_object_set_new(row, "started_at", json_string(cm_time_format_us(r->started_us, t)));
	json_object_set_new(row, "finished_at", json_string(cm_time_format_us(r->finished_us, t)));
	if (override_error)
		json_object_set_new(row, "error", json_string(override_error));
	else if (o != WK_DONE && o != WK_SKIPPED && r->error[0])
		json_object_set_new(row, "error", json_string(r->error));
	if (!override_error && o == WK_FAILED && r->error_line > 0)
		json_object_set_new(row, "error_line", json_integer(r->error_line));
	if (o == WK_RETRY) {
		json_object_set_new(row, "retry_sec", json_real(retry_delay_sec(ctx->retry_base_ms, c->attempts)));
		json_object_set_new(row, "max_attempts", json_integer(ctx->max_attempts));
	}
	if (o != WK_DONE)
		return row;
	/* A result is kept as returned, [] and {} included; set_if() would drop those. */
	if (json_object_get(r->reply, "result"))
		json_object_set(row, "result", json_object_get(r->reply, "result"));
	const json_t *eff = json_object_get(r->reply, "effects");
	const json_t *lead = json_object_get(eff, "lead");
	set_if(row, "lead_set", json_object_get(lead, "set"));
	set_if(row, "lead_del", json_object_get(lead, "del"));
	set_if(row, "tags_add", json_object_get(lead, "tags_add"));
	set_if(row, "tags_del", json_object_get(lead, "tags_del"));
	set_if(row, "status_name", json_object_get(lead, "status_name"));
	const json_t *bot = json_object_get(eff, "bot");
	set_if(row, "bot_set", json_object_get(bot, "set"));
	set_if(row, "bot_del", json_object_get(bot, "del"));
	set_if(row, "ticket_set", json_object_get(json_object_get(eff, "ticket"), "set"));
	json_t *ob = outbox_messages(r);
	if (ob)
		json_object_set_new(row, "outbox", ob);
	return row;
}

/* Can the batch go in one statement? Not when two results write the same bot's attributes or the same ticket. */
static int batchable(const struct wk_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (res[i].outcome != WK_DONE)
			continue;
		const json_t *ei = json_object_get(res[i].reply, "effects");
		int bi = json_object_get(ei, "bot") != NULL, ti = json_object_get(ei, "ticket") != NULL;
		if (!bi && !ti)
			continue;
		for (size_t k = i + 1; k < n; k++) {
			if (res[k].outcome != WK_DONE)
				continue;
			const json_t *ek = json_object_get(res[k].reply, "effects");
			if (bi && json_object_get(ek, "bot") &&
			    res[k].claimed->job.bot_id == res[i].claimed->job.bot_id)
				return 0;
			if (ti && json_object_get(ek, "ticket") &&
			    res[k].claimed->job.bot_id == res[i].claimed->job.bot_id &&
			    res[k].claimed->job.ticket_id == res[i].claimed->job.ticket_id)
				return 0;
		}
	}
	return 1;
}

/* Runs APPLY_SQL for rows; returns the job ids that committed (a new JSON object id -> final outcome). */
static json_t *apply_rows(const struct wk_run_ctx *ctx, json_t *rows, char *errstr, size_t errstr_size)
{
	char *text = json_dumps(rows, JSON_COMPACT);
	if (!text) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	const char *p[] = {text, ctx->worker_id};
	PGresult *res = cm_pg_query_prepared(ctx->conn, "bj_apply", APPLY_SQL, 2, p, errstr, errstr_size);
	free(text);
	if (!res)
		return NULL;
	json_t *done = json_object();
	struct wk_events ev = {0};
	int64_t now = cm_time_now_us();
	for (int i = 0; i < PQntuples(res); i++) {
		const char *final = PQgetvalue(res, i, 4);
		json_object_set_new(done, PQgetvalue(res, i, 0), json_string(final));
		if (!ctx->events || strcmp(final, "retry") == 0) /* an infrastructure retry has no event */
			continue;
		struct wk_event_end e = {
			.job_id = PQgetvalue(res, i, 0),
			.final = final,
			.state = PQgetvalue(res, i, 1),
			.next_due_us = strtoll(PQgetvalue(res, i, 2), NULL, 10),
			.run = atoi(PQgetvalue(res, i, 3)),
			.bot_id = strtoll(PQgetvalue(res, i, 5), NULL, 10),
			.lead_id = PQgetisnull(res, i, 6) ? 0 : strtoll(PQgetvalue(res, i, 6), NULL, 10),
			.due_us = strtoll(PQgetvalue(res, i, 7), NULL, 10),
			.started_us = strtoll(PQgetvalue(res, i, 8), NULL, 10),
			.finished_us = strtoll(PQgetvalue(res, i, 9), NULL, 10),
			.error = PQgetisnull(res, i, 10) ? NULL : PQgetvalue(res, i, 10),
		};
		wk_events_end(&ev, &e, now);
	}
	/* The runs' events, in the completion's transaction (one outbox row, wk_events.h). */
	int rc = wk_events_insert(ctx->conn, &ev, errstr, errstr_size);
	wk_events_free(&ev);
	PQclear(res);
	if (rc == -1) {
		json_decref(done);
		return NULL;
	}
	return done;
}

/* New jobs from the effects of the results that committed. */
static int insert_new_jobs(const struct wk_run_ctx *ctx, const struct wk_result *res, size_t n, const json_t *done,
			   int64_t *min_due, char *errstr, size_t errstr_size)
{
	json_t *envs = json_array();
	for (size_t i = 0; i < n; i++) {
		const char *final = json_string_value(json_object_get(done, res[i].claimed->job.job_id));
		if (!final || strcmp(final, "done") != 0 || res[i].outcome != WK_DONE)
			continue;
		json_array_extend(envs, json_object_get(json_object_get(res[i].reply, "effects"), "jobs"));
	}
	int inserted = 0,
	    rc = wk_store_insert_envelopes(ctx->conn, envs, ctx->events, &inserted, min_due, errstr, errstr_size);
	json_decref(envs);
	return rc;
}

static void record_result(const struct wk_result *r, const char *final)
{
	const struct cm_job *j = &r->claimed->job;
	struct cm_metric *m = !strcmp(final, "done")	    ? &wk_m_runs_done
			      : !strcmp(final, "skipped")   ? &wk_m_runs_skipped
			      : !strcmp(final, "cancelled") ? &wk_m_runs_cancelled
			      : !strcmp(final, "retry")	    ? &wk_m_runs_retry
							    : &wk_m_runs_failed;
	cm_metric_add(m, 1);
	cm_metric_observe(&wk_m_lateness, (double)(r->started_us - j->due_us) / 1e6);
	cm_metric_observe(&wk_m_run_seconds, (double)(r->finished_us - r->started_us) / 1e6);
	char lat[32];
	snprintf(lat, sizeof(lat), "%.3f", (double)(r->started_us - j->due_us) / 1000.0);
	enum cm_log_level lvl =
		strcmp(final, "done") == 0 || strcmp(final, "skipped") == 0 ? CM_LOG_DEBUG : CM_LOG_WARN;
	cm_log_kv(lvl, (const struct cm_kv[]){{"job_id", j->job_id}, {"outcome", final}, {"lateness_ms", lat}}, 3,
		  "run %s%s%s", final, r->error[0] ? ": " : "", r->error);
}

/* Applies one result under a savepoint; a result whose effects fail is recorded as failed. */
static int apply_one(const struct wk_run_ctx *ctx, const struct wk_result *r, json_t *done, int64_t *min_due,
		     char *errstr, size_t errstr_size)
{
	char err[600];
	if (cm_pg_exec(ctx->conn, "SAVEPOINT one", errstr, errstr_size) == -1)
		return -1;
	json_t *rows = json_array();
	json_array_append_new(rows, result_row(ctx, r, NULL));
	json_t *d = apply_rows(ctx, rows, err, sizeof(err));
	json_decref(rows);
	if (d && insert_new_jobs(ctx, r, 1, d, min_due, err, sizeof(err)) == -1) {
		json_decref(d);
		d = NULL;
	}
	if (!d) {
		if (cm_pg_broken(ctx->conn)) {
			snprintf(errstr, errstr_size, "%s", err);
			return -1;
		}
		cm_pg_exec_quiet(ctx->conn, "ROLLBACK TO SAVEPOINT one");
		char why[800];
		snprintf(why, sizeof(why), "could not apply the run's effects: %s", err);
		cm_log_with(CM_LOG_WARN, "job_id", r->claimed->job.job_id, "%s", why);
		rows = json_array();
		json_array_append_new(rows, result_row(ctx, r, why));
		d = apply_rows(ctx, rows, errstr, errstr_size);
		json_decref(rows);
		if (!d)
			return -1;
	}
	json_object_update(done, d);
	json_decref(d);
	return cm_pg_exec(ctx->conn, "RELEASE SAVEPOINT one", errstr, errstr_size);
}

static int notify(const struct wk_run_ctx *ctx, int64_t min_due, int lead_jobs, char *errstr, size_t errstr_size)
{
	char payload[32];
	if (min_due != INT64_MAX)
		snprintf(payload, sizeof(payload), "d:%" PRId64, min_due);
	else if (lead_jobs)
		snprintf(payload, sizeof(payload), "c"); /* a lead's next job may be runnable now */
	else
		return 0;
	const char *p[] = {WK_NOTIFY_JOBS, payload};
	return cm_pg_command(ctx->conn, "SELECT pg_notify($1, $2)", 2, p, errstr, errstr_size);
}

int wk_apply_results(const struct wk_run_ctx *ctx, struct wk_result *res, size_t n, char *errstr, size_t errstr_size)
{
	json_t *done = NULL;
	int64_t min_due = INT64_MAX;
	int lead_jobs = 0;

	/* Durable: the scheduler's connection commits claims asynchronously, never completions. */
	if (cm_pg_exec(ctx->conn, "BEGIN; SET LOCAL synchronous_commit = on", errstr, errstr_size) == -1)
		return -1;
	if (batchable(res, n)) {
		json_t *rows = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(rows, result_row(ctx, &res[i], NULL));
		char err[600];
		done = apply_rows(ctx, rows, err, sizeof(err));
		json_decref(rows);
		if (done && insert_new_jobs(ctx, res, n, done, &min_due, err, sizeof(err)) == -1) {
			json_decref(done);
			done = NULL;
		}
		if (!done) {
			/* Start over, one result at a time, so one bad result cannot block the others. */
			cm_log_warn("batch completion failed, applying one by one: %s", err);
			cm_pg_exec_quiet(ctx->conn, "ROLLBACK");
			min_due = INT64_MAX;
			if (cm_pg_exec(ctx->conn, "BEGIN; SET LOCAL synchronous_commit = on", errstr, errstr_size) ==
			    -1)
				return -1;
		}
	}
	if (!done) {
		done = json_object();
		for (size_t i = 0; i < n; i++) {
			if (apply_one(ctx, &res[i], done, &min_due, errstr, errstr_size) == -1)
				goto rollback;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (res[i].claimed->job.lead_id && json_object_get(done, res[i].claimed->job.job_id))
			lead_jobs = 1;
	if (notify(ctx, min_due, lead_jobs, errstr, errstr_size) == -1)
		goto rollback;
	if (cm_pg_exec(ctx->conn, "COMMIT", errstr, errstr_size) == -1)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const char *final = json_string_value(json_object_get(done, res[i].claimed->job.job_id));
		if (final)
			record_result(&res[i], final);
		else
			cm_log_with(CM_LOG_WARN, "job_id", res[i].claimed->job.job_id,
				    "lease lost before completion: nothing of this run was committed");
	}
	int committed = (int)json_object_size(done);
	json_decref(done);
	return committed;
rollback:
	cm_pg_exec_quiet(ctx->conn, "ROLLBACK");
fail:
	json_decref(done);
	return -1;
}
