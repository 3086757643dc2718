/*
 * pr_jobs.c - the read and cancel routes (see pr_api.h). Each defers its request and answers from a
 * store thread (pr_store.h); cancels travel through botjobs.jobs like schedules, keyed by the lead, so
 * that a cancel comes after the schedule it cancels in the lead's partition.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_log.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "pr_api.h"
#include "pr_metrics.h"

/* A job as the API shows it (answers.schema.json), from a row of jobs. */
#define JOB_JSON                                                                                               \
	"json_build_object('job_id', job_id, 'bot_id', bot_id, 'lead_id', lead_id, 'ticket_id', ticket_id,"    \
	" 'target', CASE WHEN target_kind IS NULL THEN NULL ELSE json_build_object('kind', target_kind,"       \
	"   'id', target_id, 'code', target_code) END,"                                                        \
	" 'status', state, 'due_at', botjobs_ts(due_at), 'is_periodic', period_sec IS NOT NULL,"               \
	" 'repeat_interval_sec', period_sec, 'runs', runs, 'last_run_at', botjobs_ts(last_run_at),"            \
	" 'next_run_at', CASE WHEN state = 'scheduled' THEN botjobs_ts(due_at) END, 'last_error', last_error," \
	" 'result', result, 'cancel_requested', cancel_requested, 'accepted_at', botjobs_ts(accepted_at),"     \
	" 'progress', CASE WHEN target_kind = 'broadcast' THEN json_build_object('total', bcast_total,"        \
	"   'done', bcast_done, 'matched', bcast_matched, 'failed', bcast_failed) END)"

enum op { OP_GET, OP_LIST, OP_CANCEL, OP_CANCEL_LEAD };

struct task {
	struct pr_api *api;
	struct pr_req *req;
	enum op op;
	int64_t bot_id, lead_id;
	char job_id[CM_UUID_STRLEN + 1];
	char status[16];
	char cursor[CM_UUID_STRLEN + 1];
	long limit;
	int64_t sent_us;
};

static void unavailable(struct task *t)
{
	pr_req_error(t->req, 503, "the database is unavailable; try again", NULL, t->api->retry_after_sec);
}

static void db_error(struct task *t, const char *err)
{
	cm_log_with(CM_LOG_WARN, "route", "jobs", "database: %s", err);
	unavailable(t);
}

static void get_job(PGconn *c, struct task *t)
{
	char err[512], bot[24];
	snprintf(bot, sizeof(bot), "%" PRId64, t->bot_id);
	const char *p[] = {t->job_id, bot};
	PGresult *r = cm_pg_query(c, "SELECT " JOB_JSON "::text FROM jobs WHERE job_id = $1::uuid AND bot_id = $2", 2,
				  p, err, sizeof(err));
	if (!r) {
		db_error(t, err);
		return;
	}
	if (PQntuples(r) == 0) {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "job %s not found in bot %" PRId64 " (a job accepted a moment ago may not be stored yet)",
			 t->job_id, t->bot_id);
		pr_req_error(t->req, 404, msg, json_pack("{s[s]}", "job_id", "not found in this bot"), 0);
	} else {
		json_t *job = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		pr_req_answer(t->req, 200, json_pack("{sb so}", "success", 1, "job", job ? job : json_null()), 0);
	}
	PQclear(r);
}

static void list_jobs(PGconn *c, struct task *t)
{
	char err[512], bot[24], lead[24], lim[24];
	snprintf(bot, sizeof(bot), "%" PRId64, t->bot_id);
	snprintf(lead, sizeof(lead), "%" PRId64, t->lead_id);
	snprintf(lim, sizeof(lim), "%ld", t->limit + 1);
	const char *p[] = {bot, t->lead_id ? lead : NULL, t->status[0] ? t->status : NULL,
			   t->cursor[0] ? t->cursor : NULL, lim};
	PGresult *r = cm_pg_query(c,
				  "SELECT job_id, " JOB_JSON "::text FROM jobs WHERE bot_id = $1"
				  " AND ($2::bigint IS NULL OR lead_id = $2) AND ($3::text IS NULL OR state = $3)"
				  " AND ($4::uuid IS NULL OR job_id < $4::uuid) ORDER BY job_id DESC LIMIT $5::integer",
				  5, p, err, sizeof(err));
	if (!r) {
		db_error(t, err);
		return;
	}
	json_t *jobs = json_array();
	int n = PQntuples(r);
	for (int i = 0; i < n && i < t->limit; i++) {
		json_t *j = json_loads(PQgetvalue(r, i, 1), 0, NULL);
		if (j)
			json_array_append_new(jobs, j);
	}
	json_t *next = n > t->limit ? json_string(PQgetvalue(r, (int)t->limit - 1, 0)) : json_null();
	PQclear(r);
	pr_req_answer(t->req, 200, json_pack("{sb so so}", "success", 1, "jobs", jobs, "next_cursor", next), 0);
}

static void cancel_delivered(void *arg, rd_kafka_resp_err_t err)
{
	struct task *t = arg;
	pr_metrics_kafka_delivery((double)(cm_time_mono_us() - t->sent_us) / 1e6, !err);
	if (err) {
		char msg[300];
		snprintf(msg, sizeof(msg), "Kafka did not acknowledge the cancel (%s); nothing changed, try again",
			 rd_kafka_err2str(err));
		pr_req_error(t->req, 503, msg, NULL, t->api->retry_after_sec);
	} else if (t->op == OP_CANCEL) {
		pr_req_answer(t->req, 202,
			      json_pack("{sb ss ss}", "success", 1, "job_id", t->job_id, "status", "cancel_requested"),
			      0);
	} else {
		pr_req_answer(t->req, 202,
			      json_pack("{sb sI sI ss}", "success", 1, "bot_id", (json_int_t)t->bot_id, "lead_id",
					(json_int_t)t->lead_id, "status", "cancel_requested"),
			      0);
	}
	free(t);
}

/* Publishes the cancel (or cancel_lead when job_id is empty); the delivery report answers. Takes t. */
static void send_cancel(struct task *t)
{
	struct cm_cancel c = {.bot_id = t->bot_id, .lead_id = t->lead_id, .accepted_us = cm_time_now_us()};
	if (t->op == OP_CANCEL)
		memcpy(c.job_id, t->job_id, sizeof(c.job_id));
	json_t *env = cm_cancel_to_envelope(&c);
	char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	char key[48], err[256];
	cm_job_key(t->bot_id, t->lead_id, key, sizeof(key));
	t->sent_us = cm_time_mono_us();
	if (!text || pr_kafka_send(t->api->kafka, t->api->topics->jobs, key, text, strlen(text), cancel_delivered, t,
				   err, sizeof(err)) == -1) {
		char msg[400];
		snprintf(msg, sizeof(msg), "Kafka is not accepting messages (%s); nothing changed, try again",
			 text ? err : "out of memory");
		pr_req_error(t->req, 503, msg, NULL, t->api->retry_after_sec);
		free(t);
	}
	free(text);
}

/* A job can be cancelled while it is scheduled (or running: it then does not run again). */
static int cancel_job(PGconn *c, struct task *t)
{
	char err[512], bot[24];
	snprintf(bot, sizeof(bot), "%" PRId64, t->bot_id);
	const char *p[] = {t->job_id, bot};
	PGresult *r =
		cm_pg_query(c, "SELECT coalesce(lead_id, 0), state FROM jobs WHERE job_id = $1::uuid AND bot_id = $2",
			    2, p, err, sizeof(err));
	if (!r) {
		db_error(t, err);
		return 0;
	}
	char msg[200];
	if (PQntuples(r) == 0) {
		snprintf(msg, sizeof(msg),
			 "job %s not found in bot %" PRId64 " (a job accepted a moment ago may not be stored yet)",
			 t->job_id, t->bot_id);
		pr_req_error(t->req, 404, msg, json_pack("{s[s]}", "job_id", "not found in this bot"), 0);
		PQclear(r);
		return 0;
	}
	const char *state = PQgetvalue(r, 0, 1);
	if (strcmp(state, "scheduled") != 0 && strcmp(state, "running") != 0) {
		snprintf(msg, sizeof(msg), "job %s is already %s", t->job_id, state);
		pr_req_error(t->req, 409, msg, json_pack("{s[s]}", "status", state), 0);
		PQclear(r);
		return 0;
	}
	t->lead_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 1;
}

static void run_task(PGconn *c, void *arg)
{
	struct task *t = arg;
	if (!c) {
		unavailable(t);
		free(t);
		return;
	}
	switch (t->op) {
	case OP_GET:
		get_job(c, t);
		break;
	case OP_LIST:
		list_jobs(c, t);
		break;
	case OP_CANCEL:
		if (cancel_job(c, t)) {
			send_cancel(t); /* takes t */
			return;
		}
		break;
	case OP_CANCEL_LEAD:
		break;
	}
	free(t);
}

static int parse_id(const char *s, int64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 1)
		return -1;
	*out = v;
	return 0;
}

/* The list's query: lead_id, status, limit, cursor - every bad one named. Returns 0 or -1 (answered). */
static int list_query(struct pr_req *req, struct task *t)
{
	static const char *states[] = {"scheduled", "running", "done", "failed", "cancelled", "skipped"};
	json_t *errors = json_object();
	const char *lead = pr_req_query(req, "lead_id"), *status = pr_req_query(req, "status");
	const char *limit = pr_req_query(req, "limit"), *cursor = pr_req_query(req, "cursor");
	if (lead && parse_id(lead, &t->lead_id) == -1)
		cm_errors_add(errors, "lead_id", "must be a positive integer");
	if (status) {
		int ok = 0;
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			ok |= strcmp(status, states[i]) == 0;
		if (ok)
			snprintf(t->status, sizeof(t->status), "%s", status);
		else
			cm_errors_add(errors, "status",
				      "must be one of scheduled, running, done, failed, cancelled, skipped");
	}
	t->limit = 50;
	int64_t l;
	if (limit && (parse_id(limit, &l) == -1 || l > 1000))
		cm_errors_add(errors, "limit", "must be an integer from 1 to 1000");
	else if (limit)
		t->limit = (long)l;
	if (cursor && !cm_uuid_valid(cursor))
		cm_errors_add(errors, "cursor", "must be the next_cursor of a previous answer");
	else if (cursor)
		snprintf(t->cursor, sizeof(t->cursor), "%s", cursor);
	if (json_object_size(errors)) {
		pr_req_error(req, 422, "invalid query parameters", errors, 0);
		return -1;
	}
	json_decref(errors);
	return 0;
}

void pr_jobs_handle(struct pr_api *api, struct pr_req *req, const char *method, int64_t bot_id, const char *rest)
{
	struct task *t = calloc(1, sizeof(*t));
	if (!t) {
		pr_req_error(req, 500, "out of memory", NULL, 0);
		return;
	}
	t->api = api;
	t->req = req;
	t->bot_id = bot_id;
	if (strncmp(rest, "/leads/", 7) == 0) {
		char lead[32];
		snprintf(lead, sizeof(lead), "%.*s", (int)(strlen(rest) - 12), rest + 7);
		if (parse_id(lead, &t->lead_id) == -1) {
			pr_req_error(req, 404, "no such route: the lead id must be a positive integer",
				     json_pack("{s[s]}", "lead_id", "must be a positive integer"), 0);
			free(t);
			return;
		}
		pr_req_set_subject(req, "lead_id", lead);
		t->op = OP_CANCEL_LEAD;
		pr_req_defer(req);
		send_cancel(t); /* no database needed: the worker cancels what it has, in partition order */
		return;
	}
	if (strcmp(rest, "/jobs") == 0) {
		t->op = OP_LIST;
		if (list_query(req, t) == -1) {
			free(t);
			return;
		}
	} else {
		snprintf(t->job_id, sizeof(t->job_id), "%s", rest + 6);
		pr_req_set_subject(req, "job_id", t->job_id);
		t->op = strcmp(method, "DELETE") == 0 ? OP_CANCEL : OP_GET;
	}
	pr_req_defer(req);
	if (pr_store_submit(api->store, run_task, t) == -1) {
		pr_req_error(req, 503, "too many requests waiting for the database; try again", NULL,
			     api->retry_after_sec);
		free(t);
	}
}
