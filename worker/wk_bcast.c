/*
 * wk_bcast.c - broadcasts: a job that runs its target for every non-muted lead of the bot, chunk by
 * chunk (see wk_run.h and schemas/sql/003_broadcasts.sql).
 *
 * One claim = one chunk: the next leads after the job's cursor (in id order) each get a run (the
 * job's condition, the broadcast's per-lead condition, the job's tags, then the broadcast's code or
 * script), all of them in one exchange with the runtime (wk_runtime_run_leads: the leads read as one
 * JSON array, shared among the sandbox children); the matched leads' effects, the new cursor and the progress counters commit in one
 * transaction, gated by the lease like every completion. The job then goes back to 'scheduled' with
 * its due time unchanged, so the next claim continues it while other due jobs keep their turn. A
 * crash loses at most the chunk in hand, which runs again from the last committed cursor: no lead
 * runs twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_log.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "wk_metrics.h"
#include "wk_run.h"
#include "wk_sql.h"

/* SQL reads best one clause per line. */
/* clang-format off */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char CHUNK_SQL[] =
	"WITH u AS ("
	"  UPDATE jobs j SET"
	"    bcast_cursor = CASE WHEN $6::boolean OR j.cancel_requested THEN NULL ELSE $5::bigint END,"
	"    bcast_total = CASE WHEN j.bcast_cursor IS NULL THEN $9::integer ELSE j.bcast_total END,"
	"    bcast_done = CASE WHEN j.bcast_cursor IS NULL THEN 0 ELSE j.bcast_done END + $7::integer,"
	"    bcast_matched = CASE WHEN j.bcast_cursor IS NULL THEN 0 ELSE j.bcast_matched END + $8::integer,"
	"    bcast_failed = CASE WHEN j.bcast_cursor IS NULL THEN 0 ELSE j.bcast_failed END + $10::integer,"
	"    state = CASE WHEN j.cancel_requested THEN 'cancelled' WHEN NOT $6::boolean THEN 'scheduled'"
	"                 WHEN j.period_sec IS NOT NULL THEN 'scheduled' ELSE 'done' END,"
	"    due_at = CASE WHEN $6::boolean AND j.period_sec IS NOT NULL AND NOT j.cancel_requested THEN j.due_at"
	"        + make_interval(secs => j.period_sec"
	"            * (floor(extract(epoch FROM clock_timestamp() - j.due_at) / j.period_sec) + 1))"
	"      ELSE j.due_at END,"
	"    runs = j.runs + CASE WHEN $6::boolean THEN 1 ELSE 0 END,"
	"    attempts = 0, lease_owner = NULL, lease_until = NULL,"
	"    last_run_at = CASE WHEN $6::boolean THEN clock_timestamp() ELSE j.last_run_at END,"
	"    last_error = coalesce($11, CASE WHEN j.bcast_cursor IS NULL THEN NULL ELSE j.last_error END),"
	"    updated_at = now()"
	"  WHERE j.job_id = $1::uuid AND j.lease_owner = $2 AND j.attempts = $3::integer AND j.state = 'running'"
	"  RETURNING j.job_id, j.bot_id, j.state, j.runs, j.due_at, j.bcast_total, j.bcast_done, j.bcast_matched,"
	"            j.bcast_failed"
	"), r AS ("
	"  SELECT x.*, u.bot_id FROM u, jsonb_to_recordset($4::jsonb) AS x(lead_id bigint, outcome text,"
	"    lead_set jsonb, lead_del jsonb, tags_add jsonb, tags_del jsonb, status_name text, bot_set jsonb,"
	"    bot_del jsonb, outbox jsonb)"
	"), lu AS (" WK_SQL_LEAD_EFFECTS("r")
	"), bs AS (" WK_SQL_BOT_SET("r")
	"), bd AS (" WK_SQL_BOT_DEL("r")
	"), ob AS (" WK_SQL_OUTBOX_MESSAGES("r")
	"), ev AS ("
	"  INSERT INTO outbox (topic, key, payload)"
	"  SELECT 'events', u.bot_id || ':-', jsonb_strip_nulls(jsonb_build_object('v', 1,"
	"           'type', CASE WHEN u.state = 'cancelled' THEN 'job.cancelled' ELSE 'job.done' END,"
	"           'job_id', u.job_id, 'bot_id', u.bot_id, 'run', u.runs, 'state', u.state,"
	"           'progress', jsonb_build_object('total', u.bcast_total, 'done', u.bcast_done,"
	"                                          'matched', u.bcast_matched, 'failed', u.bcast_failed),"
	"           'next_due_at', CASE WHEN u.state = 'scheduled' AND $6::boolean THEN botjobs_ts(u.due_at) END,"
	"           'at', botjobs_ts(clock_timestamp())))"
	"  FROM u WHERE $12::boolean AND ($6::boolean OR u.state = 'cancelled')"
	")"
	"SELECT state FROM u";
/* clang-format on */
#pragma GCC diagnostic pop

/* The chunk's leads as one JSON array, with what a script can see of a lead (wk_js.h) and no more:
 * parsing it is a good part of a chunk's cost. */
static const char LEADS_SQL[] = "SELECT coalesce(json_agg(l ORDER BY l.id), '[]')::text FROM (SELECT id, name,"
				" channel, attributes, tags, status_id FROM leads WHERE bot_id = $1"
				" AND NOT muted AND id > $2 ORDER BY id LIMIT $3::integer) l";

/* A lead's effects as a row of CHUNK_SQL's r, or NULL when there are none. */
static json_t *lead_row(const struct wk_claimed *c, int64_t lead_id, const json_t *effects, const json_t *lead,
			json_t *bot_set, json_t *bot_del)
{
	json_t *row = json_pack("{sI ss}", "lead_id", (json_int_t)lead_id, "outcome", "done");
	const json_t *l = json_object_get(effects, "lead");
	static const char *keys[][2] = {{"set", "lead_set"},
					{"del", "lead_del"},
					{"tags_add", "tags_add"},
					{"tags_del", "tags_del"},
					{"status_name", "status_name"}};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_get(l, keys[i][0]))
			json_object_set(row, keys[i][1], json_object_get(l, keys[i][0]));
	/* All leads of a chunk share the bot: its attribute changes merge into one row (later wins). */
	const json_t *b = json_object_get(effects, "bot");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(b, "set"), k, v)
	{
		json_object_set(bot_set, k, v);
		json_object_del(bot_del, k);
	}
	size_t i;
	json_array_foreach(json_object_get(b, "del"), i, v)
	{
		json_object_del(bot_set, json_string_value(v));
		json_object_set_new(bot_del, json_string_value(v), json_true());
	}
	const json_t *msgs = json_object_get(effects, "messages");
	if (json_array_size(msgs)) {
		char key[48], name[128], mid[CM_UUID_STRLEN + 1], at[CM_TIME_BUFSZ];
		cm_job_key(c->job.bot_id, lead_id, key, sizeof(key));
		json_t *rows = json_array();
		json_t *m;
		json_array_foreach(msgs, i, m)
		{
			int n = snprintf(name, sizeof(name), "%s:%d:%" PRId64 ":%zu", c->job.job_id, c->runs + 1,
					 lead_id, i);
			cm_uuid_from_name("botjobs.outbound", name, (size_t)n, mid);
			json_t *payload = json_pack(
				"{si ss ss sI sI sO sO ss si ss}", "v", 1, "type", "message", "message_id", mid,
				"bot_id", (json_int_t)c->job.bot_id, "lead_id", (json_int_t)lead_id, "channel",
				json_object_get(lead, "channel") ? json_object_get(lead, "channel") : json_null(),
				"text", json_object_get(m, "text"), "job_id", c->job.job_id, "run", c->runs + 1,
				"created_at", cm_time_format_us(cm_time_now_us(), at));
			if (payload)
				json_array_append_new(rows, json_pack("{ss so}", "key", key, "payload", payload));
		}
		json_object_set_new(row, "outbox", rows);
	}
	return row;
}

static json_t *keys_of(const json_t *set)
{
	json_t *a = json_array();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)set, k, v) json_array_append_new(a, json_string(k));
	return a;
}

int wk_bcast_chunk(const struct wk_run_ctx *ctx, struct wk_claimed *c, char *errstr, size_t errstr_size)
{
	struct wk_result snap = {.claimed = c};
	json_t *rows = json_array(), *envs = json_array(), *bot_set = json_object(), *bot_del = json_object();
	json_t *leads = NULL, *req = NULL, *replies = json_array();
	PGresult *res = NULL;
	int rc = -1, done = 0, matched = 0, failed = 0, nleads = 0, total = 0;
	int64_t cursor = c->bcast_cursor;
	char last_error[1300] = "", label[300];
	wk_run_label(&c->job, label, sizeof(label));

	if (wk_run_snapshot(ctx, &snap, errstr, errstr_size) == -1)
		goto out;
	const json_t *bot = json_object_get(snap.snapshot, "bot"), *target = json_object_get(snap.snapshot, "target");
	if (!json_is_object(bot) || !json_is_object(target)) {
		/* Nothing to fan out over: fail the job the ordinary way, with its reason. */
		struct wk_result r = {.claimed = c, .outcome = WK_FAILED};
		r.started_us = r.finished_us = cm_time_now_us();
		snprintf(r.error, sizeof(r.error), "%s", !json_is_object(bot) ? "the bot does not exist" : "");
		if (json_is_object(bot))
			snprintf(r.error, sizeof(r.error), "%s does not exist in bot %" PRId64, label, c->job.bot_id);
		rc = wk_apply_results(ctx, &r, 1, errstr, errstr_size) < 0 ? -1 : 0;
		goto out;
	}

	char bot_s[24], cur_s[24], lim_s[24];
	snprintf(bot_s, sizeof(bot_s), "%" PRId64, c->job.bot_id);
	snprintf(cur_s, sizeof(cur_s), "%" PRId64, cursor);
	snprintf(lim_s, sizeof(lim_s), "%d", ctx->bcast_chunk);
	if (cursor == 0) {
		const char *p[] = {bot_s};
		res = cm_pg_query(ctx->conn, "SELECT count(*) FROM leads WHERE bot_id = $1 AND NOT muted", 1, p, errstr,
				  errstr_size);
		if (!res)
			goto out;
		total = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	const char *p[] = {bot_s, cur_s, lim_s};
	res = cm_pg_query(ctx->conn, LEADS_SQL, 3, p, errstr, errstr_size);
	if (!res)
		goto out;
	leads = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	res = NULL;
	nleads = (int)json_array_size(leads);
	/* One exchange with the runtime for the whole chunk; host calls (findLeads, api.*) see this
	 * broadcast's bot only. */
	struct wk_host_run hr;
	const struct wk_js_host *host = wk_host_bind(ctx->host, c->job.bot_id, c->job.job_id, &hr);
	req = wk_run_request(&c->job, bot, NULL, NULL, target);
	char err[512];
	if (!json_is_array(leads) || wk_runtime_run_leads(ctx->rt, req, leads, host, replies, err, sizeof(err)) == -1 ||
	    hr.db_failed) {
		/* The runtime itself failed, or findLeads met a database failure (not the scripts' fault):
		 * commit nothing of this chunk; it runs again after the lease. */
		snprintf(errstr, errstr_size, "%s: %s", label,
			 !json_is_array(leads) ? "the leads could not be read"
			 : hr.db_failed	       ? "findLeads: the database failed"
					       : err);
		goto out;
	}
	for (int i = 0; i < nleads; i++) {
		const json_t *lead = json_array_get(leads, i), *reply = json_array_get(replies, (size_t)i);
		int64_t lead_id = json_integer_value(json_object_get(lead, "id"));
		const char *outcome = json_string_value(json_object_get(reply, "outcome"));
		done++;
		cursor = lead_id;
		if (outcome && !strcmp(outcome, "done")) {
			matched++;
			const json_t *eff = json_object_get(reply, "effects");
			json_array_append_new(rows, lead_row(c, lead_id, eff, lead, bot_set, bot_del));
			json_array_extend(envs, json_object_get(eff, "jobs"));
		} else if (outcome && !strcmp(outcome, "failed")) {
			failed++;
			snprintf(last_error, sizeof(last_error), "lead %" PRId64 ": %s", lead_id,
				 json_string_value(json_object_get(reply, "error")));
		}
	}
	if (json_object_size(bot_set) || json_object_size(bot_del)) {
		json_t *b = json_pack("{sn ss}", "lead_id", "outcome", "done");
		if (json_object_size(bot_set))
			json_object_set(b, "bot_set", bot_set);
		if (json_object_size(bot_del))
			json_object_set_new(b, "bot_del", keys_of(bot_del));
		json_array_append_new(rows, b);
	}

	int finished = nleads < ctx->bcast_chunk;
	char *rows_s = json_dumps(rows, JSON_COMPACT);
	char att[16], cur2[24], done_s[16], matched_s[16], total_s[16], failed_s[16];
	snprintf(att, sizeof(att), "%d", c->attempts);
	snprintf(cur2, sizeof(cur2), "%" PRId64, cursor);
	snprintf(done_s, sizeof(done_s), "%d", done);
	snprintf(matched_s, sizeof(matched_s), "%d", matched);
	snprintf(total_s, sizeof(total_s), "%d", total);
	snprintf(failed_s, sizeof(failed_s), "%d", failed);
	const char *cp[] = {c->job.job_id,
			    ctx->worker_id,
			    att,
			    rows_s ? rows_s : "[]",
			    cur2,
			    finished ? "true" : "false",
			    done_s,
			    matched_s,
			    c->bcast_cursor == 0 ? total_s : NULL,
			    failed_s,
			    last_error[0] ? last_error : NULL,
			    ctx->events ? "true" : "false"};
	if (cm_pg_exec(ctx->conn, "BEGIN; SET LOCAL synchronous_commit = on", errstr, errstr_size) == -1) {
		free(rows_s);
		goto out;
	}
	res = cm_pg_query(ctx->conn, CHUNK_SQL, 12, cp, errstr, errstr_size);
	free(rows_s);
	if (!res)
		goto rollback;
	int kept = PQntuples(res) == 1;
	PQclear(res);
	res = NULL;
	int64_t min_due = INT64_MAX;
	int inserted = 0;
	if (kept &&
	    wk_store_insert_envelopes(ctx->conn, envs, ctx->events, &inserted, &min_due, errstr, errstr_size) == -1)
		goto rollback;
	char payload[32];
	snprintf(payload, sizeof(payload), min_due != INT64_MAX ? "d:%" PRId64 : "c", min_due);
	const char *np[] = {WK_NOTIFY_JOBS, payload};
	if (cm_pg_command(ctx->conn, "SELECT pg_notify($1, $2)", 2, np, errstr, errstr_size) == -1 ||
	    cm_pg_exec(ctx->conn, "COMMIT", errstr, errstr_size) == -1)
		goto rollback;
	if (!kept)
		cm_log_with(CM_LOG_WARN, "job_id", c->job.job_id,
			    "broadcast: lease lost before the chunk was committed; nothing of it was kept");
	else
		cm_log_kv(finished ? CM_LOG_INFO : CM_LOG_DEBUG, (const struct cm_kv[]){{"job_id", c->job.job_id}}, 1,
			  "broadcast %s: %d lead(s) this chunk, %d matched, %d failed%s", label, done, matched, failed,
			  finished ? " - finished" : "");
	cm_metric_add(&wk_m_bcast_leads, done);
	rc = 0;
	goto out;
rollback:
	cm_pg_exec_quiet(ctx->conn, "ROLLBACK");
out:
	PQclear(res);
	json_decref(snap.snapshot);
	json_decref(rows);
	json_decref(envs);
	json_decref(bot_set);
	json_decref(bot_del);
	json_decref(leads);
	json_decref(req);
	json_decref(replies);
	return rc;
}
