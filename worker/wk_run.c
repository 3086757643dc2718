/*
 * wk_run.c - load state, run the code, hand the results to wk_apply. See wk_run.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "wk_run.h"

const char *wk_outcome_name(enum wk_outcome o)
{
	static const char *names[] = {"done", "failed", "skipped", "cancelled", "retry"};
	return names[o];
}

/* Everything the runs of a batch read, in one round trip: a JSON document per job (index i). The bot and
 * the target are read once per batch, for the first job that names them (first_bot, first_target); the
 * other jobs' documents share them (wk_run_snapshots). A claim's jobs are mostly one bot's and one
 * target's: read and printed for every job, they made this query 25.9 ms per 1,000 jobs against 15.1 now,
 * and the worker parsed them each time (W1b, bench/profile.py: worker CPU 0.065 -> 0.059 ms per job). */
static const char SNAPSHOT_SQL[] =
	"SELECT x.i, json_build_object("
	" 'bot', CASE WHEN x.first_bot THEN (SELECT json_build_object('id', b.id, 'name', b.name,"
	"          'business_id', b.business_id,"
	"          'attributes', coalesce((SELECT jsonb_object_agg(a.key, a.value) FROM bot_attributes a"
	"                                  WHERE a.bot_id = b.id), '{}'::jsonb))"
	"         FROM bots b WHERE b.id = x.bot_id) END,"
	" 'lead', (SELECT row_to_json(l) FROM (SELECT id, name, channel, attributes, tags, status_id, muted,"
	"          created_at FROM leads WHERE bot_id = x.bot_id AND id = x.lead_id) l),"
	" 'ticket', (SELECT row_to_json(t) FROM (SELECT id, lead_id, data FROM tickets"
	"            WHERE bot_id = x.bot_id AND id = x.ticket_id) t),"
	" 'target', CASE WHEN NOT x.first_target THEN NULL"
	"   WHEN x.kind = 'trigger' THEN (SELECT row_to_json(t) FROM (SELECT id, code, body, condition, script_id,"
	"        version FROM triggers WHERE bot_id = x.bot_id AND (id = x.target_id OR code = x.target_code)"
	"        LIMIT 1) t)"
	"   WHEN x.kind = 'script' THEN (SELECT row_to_json(t) FROM (SELECT id, code, body, version"
	"        FROM scripts WHERE bot_id = x.bot_id AND (id = x.target_id OR code = x.target_code) LIMIT 1) t)"
	"   WHEN x.kind = 'broadcast' THEN (SELECT row_to_json(t) FROM (SELECT b.id, b.code, b.body, b.condition,"
	"        b.script_id, b.version, s.body AS script FROM broadcasts b LEFT JOIN scripts s ON s.bot_id = b.bot_id"
	"        AND s.id = b.script_id WHERE b.bot_id = x.bot_id AND (b.id = x.target_id OR b.code = x.target_code)"
	"        LIMIT 1) t)"
	"   END"
	")::text"
	" FROM jsonb_to_recordset($1::jsonb) AS x(i integer, bot_id bigint, lead_id bigint, ticket_id bigint,"
	"      kind text, target_id bigint, target_code text, first_bot boolean, first_target boolean)";

/* The first of jobs[0..i) with j's target (the same bot, kind, id and code), or i. */
static size_t same_target(const struct wk_result *res, size_t i)
{
	const struct cm_job *j = &res[i].claimed->job;
	for (size_t k = 0; k < i; k++) {
		const struct cm_job *o = &res[k].claimed->job;
		if (o->bot_id == j->bot_id && o->kind == j->kind && o->target_id == j->target_id &&
		    (o->target_code && j->target_code ? strcmp(o->target_code, j->target_code) == 0
						      : o->target_code == j->target_code))
			return k;
	}
	return i;
}

/* The first of jobs[0..i) of j's bot, or i. */
static size_t same_bot(const struct wk_result *res, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (res[k].claimed->job.bot_id == res[i].claimed->job.bot_id)
			return k;
	return i;
}

static void fail(struct wk_result *r, enum wk_outcome o, const char *fmt, ...) CM_PRINTF(3, 4);
static void fail(struct wk_result *r, enum wk_outcome o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	r->outcome = o;
}

int wk_run_snapshots(const struct wk_run_ctx *ctx, struct wk_result *res, size_t n, char *errstr, size_t errstr_size)
{
	json_t *keys = json_array();
	size_t *bot_of = calloc(n ? n : 1, sizeof(*bot_of)), *target_of = calloc(n ? n : 1, sizeof(*target_of));
	if (!bot_of || !target_of) {
		free(bot_of);
		free(target_of);
		json_decref(keys);
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cm_job *j = &res[i].claimed->job;
		bot_of[i] = same_bot(res, i);
		target_of[i] = same_target(res, i);
		json_t *k = json_pack("{sI sI sb sb}", "i", (json_int_t)i, "bot_id", (json_int_t)j->bot_id, "first_bot",
				      bot_of[i] == i, "first_target", target_of[i] == i);
		if (j->lead_id)
			json_object_set_new(k, "lead_id", json_integer(j->lead_id));
		if (j->ticket_id)
			json_object_set_new(k, "ticket_id", json_integer(j->ticket_id));
		if (j->kind != CM_TARGET_NONE)
			json_object_set_new(k, "kind", json_string(cm_target_kind_name(j->kind)));
		if (j->target_id)
			json_object_set_new(k, "target_id", json_integer(j->target_id));
		if (j->target_code)
			json_object_set_new(k, "target_code", json_string(j->target_code));
		json_array_append_new(keys, k);
	}
	char *text = json_dumps(keys, JSON_COMPACT);
	json_decref(keys);
	const char *p[] = {text};
	PGresult *pr =
		text ? cm_pg_query_prepared(ctx->conn, "bj_snapshot", SNAPSHOT_SQL, 1, p, errstr, errstr_size) : NULL;
	free(text);
	int rc = -1;
	if (!pr)
		goto out;
	for (int row = 0; row < PQntuples(pr); row++) {
		size_t i = (size_t)atoi(PQgetvalue(pr, row, 0));
		if (i < n && !res[i].snapshot)
			res[i].snapshot = json_loads(PQgetvalue(pr, row, 1), 0, NULL);
	}
	PQclear(pr);
	for (size_t i = 0; i < n; i++) {
		if (!res[i].snapshot) {
			snprintf(errstr, errstr_size, "no snapshot for job %s", res[i].claimed->job.job_id);
			goto out;
		}
	}
	/* The bot and the target read once: shared with the other jobs' documents (read only from here on). */
	for (size_t i = 0; i < n; i++) {
		if (bot_of[i] != i)
			json_object_set(res[i].snapshot, "bot", json_object_get(res[bot_of[i]].snapshot, "bot"));
		if (target_of[i] != i)
			json_object_set(res[i].snapshot, "target",
					json_object_get(res[target_of[i]].snapshot, "target"));
	}
	rc = 0;
out:
	free(bot_of);
	free(target_of);
	return rc;
}

int wk_run_snapshot(const struct wk_run_ctx *ctx, struct wk_result *r, char *errstr, size_t errstr_size)
{
	return wk_run_snapshots(ctx, r, 1, errstr, errstr_size);
}

const char *wk_run_label(const struct cm_job *j, char *buf, size_t n)
{
	if (j->target_code)
		snprintf(buf, n, "%s '%s'", cm_target_kind_name(j->kind), j->target_code);
	else
		snprintf(buf, n, "%s %" PRId64, cm_target_kind_name(j->kind), j->target_id);
	return buf;
}

static json_t *tags_array(char **tags, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(tags[i]));
	return a;
}

/* Builds the runtime request (wk_js.h) from the job and its snapshot; NULL when the run cannot start. */
static json_t *build_request(struct wk_result *r)
{
	const struct cm_job *j = &r->claimed->job;
	const json_t *snap = r->snapshot;
	const json_t *bot = json_object_get(snap, "bot");
	const json_t *lead = json_object_get(snap, "lead");
	const json_t *ticket = json_object_get(snap, "ticket");
	const json_t *target = json_object_get(snap, "target");
	char label[300];

	if (!json_is_object(bot)) {
		fail(r, WK_FAILED, "bot %" PRId64 " does not exist", j->bot_id);
		return NULL;
	}
	if (j->lead_id && !json_is_object(lead)) {
		fail(r, WK_FAILED, "lead %" PRId64 " does not exist in bot %" PRId64, j->lead_id, j->bot_id);
		return NULL;
	}
	if (json_is_true(json_object_get(lead, "muted"))) {
		fail(r, WK_CANCELLED, "lead %" PRId64 " is muted", j->lead_id);
		return NULL;
	}
	if (j->ticket_id && !json_is_object(ticket)) {
		fail(r, WK_FAILED, "ticket %" PRId64 " does not exist in bot %" PRId64, j->ticket_id, j->bot_id);
		return NULL;
	}
	if (j->kind != CM_TARGET_NONE && !json_is_object(target)) {
		fail(r, WK_FAILED, "%s does not exist in bot %" PRId64, wk_run_label(j, label, sizeof(label)),
		     j->bot_id);
		return NULL;
	}
	return wk_run_request(j, bot, lead, ticket, target);
}

json_t *wk_run_request(const struct cm_job *j, const json_t *bot, const json_t *lead, const json_t *ticket,
		       const json_t *target)
{
	char label[300];
	int64_t lead_id = json_is_object(lead) ? json_integer_value(json_object_get(lead, "id")) : 0;
	json_t *req = json_object();
	json_object_set_new(req, "context",
			    json_pack("{sI so so ss}", "botId", (json_int_t)j->bot_id, "leadId",
				      lead_id ? json_integer(lead_id) : json_null(), "ticketId",
				      j->ticket_id ? json_integer(j->ticket_id) : json_null(), "jobId", j->job_id));
	json_object_set(req, "bot", (json_t *)bot);
	if (json_is_object(lead))
		json_object_set(req, "lead", (json_t *)lead);
	if (json_is_object(ticket))
		json_object_set(req, "ticket", (json_t *)ticket);
	json_object_set(req, "params", j->params ? j->params : json_object());
	if (j->condition)
		json_object_set_new(req, "condition", json_string(j->condition));
	json_object_set_new(req, "tags",
			    json_pack("{soso}", "remove", tags_array(j->remove_tags, j->n_remove_tags), "add",
				      tags_array(j->add_tags, j->n_add_tags)));
	wk_run_label(j, label, sizeof(label));
	if (json_is_object(target)) {
		/* A trigger or a broadcast: JS code and its own condition; a script, or a broadcast's script:
		 * commands. */
		if (j->kind != CM_TARGET_SCRIPT) {
			json_object_set(req, "code", json_object_get(target, "body"));
			json_object_set(req, "code_condition", json_object_get(target, "condition"));
		}
		json_t *script = json_object_get(target, j->kind == CM_TARGET_SCRIPT ? "body" : "script");
		if (script && !json_is_null(script)) {
			json_object_set(req, "script", script);
			char sname[340];
			if (j->kind == CM_TARGET_SCRIPT)
				snprintf(sname, sizeof(sname), "%s", label);
			else
				snprintf(sname, sizeof(sname), "%s, script %" PRId64, label,
					 (int64_t)json_integer_value(json_object_get(target, "script_id")));
			json_object_set_new(req, "script_name", json_string(sname));
		}
	}
	json_object_set_new(req, "name", json_string(label));
	return req;
}

/* A trigger with a script to launch: the script runs as its own job, right after this one. */
static void launch_script(struct wk_result *r)
{
	const json_t *target = json_object_get(r->snapshot, "target");
	json_t *sid = json_object_get(target, "script_id");
	const struct cm_job *j = &r->claimed->job;
	if (r->claimed->job.kind != CM_TARGET_TRIGGER || !json_is_integer(sid) || !j->lead_id)
		return;
	struct cm_job s;
	cm_job_init(&s);
	if (cm_uuid_v7(s.job_id) == -1)
		return;
	s.bot_id = j->bot_id;
	s.lead_id = j->lead_id;
	s.ticket_id = j->ticket_id;
	s.kind = CM_TARGET_SCRIPT;
	s.target_id = json_integer_value(sid);
	s.due_us = cm_time_now_us();
	s.accepted_us = s.due_us;
	s.params = json_incref(j->params);
	json_t *effects = json_object_get(r->reply, "effects");
	json_t *jobs = json_object_get(effects, "jobs");
	if (!jobs) {
		jobs = json_array();
		json_object_set_new(effects, "jobs", jobs);
	}
	json_array_append_new(jobs, cm_job_to_envelope(&s));
	cm_job_clear(&s);
}

/* The run's outcome from its reply (a new reference, NULL: the runtime failed with err). */
static void take_reply(struct wk_result *r, json_t *reply, const struct wk_host_run *hr, const char *err)
{
	r->reply = reply;
	if (!r->reply) {
		fail(r, WK_RETRY, "%s", err);
		return;
	}
	const char *outcome = json_string_value(json_object_get(r->reply, "outcome"));
	if (outcome && strcmp(outcome, "done") == 0) {
		r->outcome = WK_DONE;
		launch_script(r);
	} else if (outcome && strcmp(outcome, "skipped") == 0) {
		r->outcome = WK_SKIPPED;
	} else if (hr->db_failed) {
		/* findLeads met a database failure, not a script error: run it again later. */
		const char *e = json_string_value(json_object_get(r->reply, "error"));
		fail(r, WK_RETRY, "%s", e ? e : "findLeads: database unavailable");
	} else {
		const char *e = json_string_value(json_object_get(r->reply, "error"));
		fail(r, WK_FAILED, "%s", e ? e : "the run failed");
		r->error_line = (int)json_integer_value(json_object_get(r->reply, "error_line"));
	}
}

static void run_one(const struct wk_run_ctx *ctx, struct wk_result *r)
{
	char err[512];
	r->started_us = cm_time_now_us();
	json_t *req = build_request(r);
	if (req) {
		/* Host calls see this job's bot only: the bot id is bound here, never taken from the script. */
		struct wk_host_run hr;
		const struct wk_js_host *host =
			wk_host_bind(ctx->host, r->claimed->job.bot_id, r->claimed->job.job_id, &hr);
		json_t *reply = wk_runtime_run(ctx->rt, req, host, err, sizeof(err));
		json_decref(req);
		take_reply(r, reply, &hr, err);
	}
	r->finished_us = cm_time_now_us();
}

/*
 * Runs n jobs that are all due now with one wk_runtime_run_reqs (one exchange with a sandbox child
 * instead of one per job); each run's start and end times are its own (the reply's "started_us" and
 * "finished_us").
 */
static void run_group(const struct wk_run_ctx *ctx, struct wk_result *res, size_t n)
{
	char err[512] = "";
	struct wk_host_run *hrs = calloc(n, sizeof(*hrs));
	const struct wk_js_host **hosts = calloc(n, sizeof(*hosts)); /* NOLINT(bugprone-sizeof-expression): pointers */
	size_t *which = calloc(n, sizeof(*which)), k = 0;
	json_t *reqs = json_array(), *replies = json_array();
	if (!hrs || !hosts || !which || !reqs || !replies) {
		for (size_t i = 0; i < n; i++)
			run_one(ctx, &res[i]);
		goto out;
	}
	int64_t now = cm_time_now_us();
	for (size_t i = 0; i < n; i++) {
		struct wk_result *r = &res[i];
		r->started_us = r->finished_us = now;
		json_t *req = build_request(r);
		if (!req)
			continue; /* failed already, with the reason */
		hosts[k] = wk_host_bind(ctx->host, r->claimed->job.bot_id, r->claimed->job.job_id, &hrs[k]);
		which[k++] = i;
		json_array_append_new(reqs, req);
	}
	if (k > 0 && wk_runtime_run_reqs(ctx->rt, reqs, hosts, replies, err, sizeof(err)) == -1 && !err[0])
		snprintf(err, sizeof(err), "runtime: out of memory");
	now = cm_time_now_us();
	for (size_t j = 0; j < k; j++) {
		struct wk_result *r = &res[which[j]];
		json_t *reply = json_incref(json_array_get(replies, j)); /* NULL: the runtime failed (err) */
		json_t *started = json_object_get(reply, "started_us"),
		       *finished = json_object_get(reply, "finished_us");
		r->started_us = json_is_integer(started) ? json_integer_value(started) : r->started_us;
		r->finished_us = json_is_integer(finished) ? json_integer_value(finished) : now;
		json_object_del(reply, "started_us");
		json_object_del(reply, "finished_us");
		take_reply(r, reply, &hrs[j], err[0] ? err : "runtime: no reply");
	}
out:
	json_decref(reqs);
	json_decref(replies);
	free(which);
	free(hosts);
	free(hrs);
}

/* As long as they are of the same bot: a sandbox child gets no other bot's data in a frame
 * (docs/threat-model.md). */
size_t wk_run_group_end(const struct wk_result *res, size_t i, size_t m, int64_t now)
{
	size_t k = i + 1;
	while (k < m && res[k].claimed->job.due_us <= now && res[k].claimed->job.bot_id == res[i].claimed->job.bot_id)
		k++;
	return k;
}

/* A job claimed ahead of its due time (--lookahead-ms) starts at that time, not before. */
static void wait_for_due(const struct cm_job *j)
{
	if (j->due_us <= cm_time_now_us())
		return;
	struct timespec ts = {(time_t)(j->due_us / CM_US_PER_SEC), (long)(j->due_us % CM_US_PER_SEC) * 1000};
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int wk_run_jobs(const struct wk_run_ctx *ctx, struct wk_claimed *jobs, size_t n, struct wk_result **out, size_t *m_out,
		char *errstr, size_t errstr_size)
{
	*out = NULL;
	*m_out = 0;
	struct wk_result *res = calloc(n, sizeof(*res));
	if (!res) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	/* Broadcasts go chunk by chunk, each chunk its own transaction; the rest together. */
	size_t m = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].job.kind == CM_TARGET_BROADCAST && !jobs[i].job.lead_id) {
			wait_for_due(&jobs[i].job);
			if (wk_bcast_chunk(ctx, &jobs[i], errstr, errstr_size) == -1)
				rc = -1;
			continue;
		}
		res[m++].claimed = &jobs[i];
	}
	/* Everything the runs read, in one query; if it fails, every run of the batch is retried later. */
	char err[512];
	int loaded = m > 0 && wk_run_snapshots(ctx, res, m, err, sizeof(err)) == 0;
	for (size_t i = 0; i < m;) {
		if (!loaded) {
			res[i].started_us = res[i].finished_us = cm_time_now_us();
			fail(&res[i], WK_RETRY, "loading state: %s", err);
			i++;
			continue;
		}
		/* From the next job's due time on, the jobs due by then run in one exchange. */
		wait_for_due(&res[i].claimed->job);
		size_t k = wk_run_group_end(res, i, m, cm_time_now_us());
		if (k - i == 1)
			run_one(ctx, &res[i]);
		else
			run_group(ctx, &res[i], k - i);
		i = k;
	}
	if (m == 0) {
		free(res);
		res = NULL;
	}
	*out = res;
	*m_out = m;
	return rc;
}

void wk_run_results_free(struct wk_result *res, size_t m)
{
	for (size_t i = 0; i < m; i++) {
		json_decref(res[i].reply);
		json_decref(res[i].snapshot);
	}
	free(res);
}
