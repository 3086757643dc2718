/*
 * ctl_job.c - `botjobsctl job show JOB_ID`, `job list BOT`, `job cancel BOT JOB_ID`.
 *
 * cancel does what the producer's DELETE /api/v1/bots/{botId}/jobs/{jobId} does: it looks the job up
 * (it must be scheduled or running), publishes a cancel envelope (cm_cancel_to_envelope) to the jobs
 * topic keyed "{bot}:{lead}" with the job's own lead - so that it lands in the partition of the
 * job's schedule, after it - through an idempotent producer with acks=all, and waits for the delivery
 * report. The worker then cancels the job; a periodic job stops.
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_job.h"
#include "cm_kafka.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "ctl.h"

#define DELIVERY_TIMEOUT_MS 15000

#define JOB_JSON                                                                                                    \
	"json_build_object('job_id', j.job_id, 'bot_id', j.bot_id, 'lead_id', j.lead_id, 'ticket_id', j.ticket_id," \
	" 'target', CASE WHEN j.target_kind IS NULL THEN NULL ELSE json_build_object('kind', j.target_kind,"        \
	"   'id', j.target_id, 'code', j.target_code) END,"                                                         \
	" 'status', j.state, 'due_at', botjobs_ts(j.due_at), 'is_periodic', j.period_sec IS NOT NULL,"              \
	" 'repeat_interval_sec', j.period_sec, 'runs', j.runs, 'attempts', j.attempts,"                             \
	" 'last_run_at', botjobs_ts(j.last_run_at),"                                                                \
	" 'next_run_at', CASE WHEN j.state = 'scheduled' THEN botjobs_ts(j.due_at) END,"                            \
	" 'last_error', j.last_error, 'result', j.result, 'cancel_requested', j.cancel_requested,"                  \
	" 'accepted_at', botjobs_ts(j.accepted_at),"                                                                \
	" 'progress', CASE WHEN j.target_kind = 'broadcast' THEN json_build_object('total', j.bcast_total,"         \
	"   'done', j.bcast_done, 'matched', j.bcast_matched, 'failed', j.bcast_failed) END"

static const char *const states[] = {"scheduled", "running", "done", "failed", "cancelled", "skipped"};

/* "trigger demo_echo", "script 7", "tags only" */
static void add_what(json_t *job)
{
	const json_t *t = json_object_get(job, "target");
	char buf[300];
	if (!json_is_object(t)) {
		snprintf(buf, sizeof(buf), "tags only");
	} else {
		const char *code = json_string_value(json_object_get(t, "code"));
		if (code)
			snprintf(buf, sizeof(buf), "%s %s", json_string_value(json_object_get(t, "kind")), code);
		else
			snprintf(buf, sizeof(buf), "%s %" JSON_INTEGER_FORMAT,
				 json_string_value(json_object_get(t, "kind")),
				 json_integer_value(json_object_get(t, "id")));
	}
	json_object_set_new(job, "what", json_string(buf));
}

int ctl_job_show(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	static const struct ctl_col hist[] = {{"run", "RUN", 0},	 {"outcome", "OUTCOME", 0},
					      {"due_at", "DUE", 0},	 {"started_at", "STARTED", 0},
					      {"duration_ms", "MS", 0},	 {"worker", "WORKER", 24},
					      {"error_line", "LINE", 0}, {"error", "ERROR", 60}};
	if (!cm_uuid_valid(argv[0])) {
		fprintf(stderr, "botjobsctl: job show: '%s' is not a job id (a UUID)\n", argv[0]);
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[0]};
	json_t *o = ctl_query_json(
		c,
		"SELECT " JOB_JSON ", 'condition', j.condition, 'params', j.params, 'add_tags', j.add_tags,"
		" 'remove_tags', j.remove_tags,"
		" 'history', (SELECT coalesce(json_agg(json_build_object('run', r.run_no, 'outcome', r.outcome,"
		"   'due_at', botjobs_ts(r.due_at), 'started_at', botjobs_ts(r.started_at),"
		"   'finished_at', botjobs_ts(r.finished_at),"
		"   'duration_ms', round(extract(epoch FROM r.finished_at - r.started_at) * 1000)::bigint,"
		"   'error', r.error, 'error_line', r.error_line, 'worker', r.worker) ORDER BY r.id), '[]')"
		"   FROM job_runs r WHERE r.job_id = j.job_id))"
		" FROM jobs j WHERE j.job_id = $1::uuid",
		1, p, "job show");
	cm_pg_close(c);
	if (!o)
		return 1;
	int rc = 1;
	if (json_is_null(o)) {
		fprintf(stderr, "botjobsctl: job show: no job %s (a job accepted a moment ago may not be stored yet)\n",
			argv[0]);
	} else if (cfg->json) {
		ctl_json_print(o);
		rc = 0;
	} else {
		static const char *const skip[] = {"history", "target", NULL};
		add_what(o);
		ctl_show_print(o, skip);
		printf("history\n");
		ctl_table_print(json_object_get(o, "history"), hist, CM_ARRAY_LEN(hist));
		rc = 0;
	}
	json_decref(o);
	return rc;
}

int ctl_job_list(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	static const struct ctl_col cols[] = {
		{"job_id", "JOB", 0}, {"lead_id", "LEAD", 0}, {"what", "TARGET", 30},	       {"status", "STATUS", 0},
		{"due_at", "DUE", 0}, {"runs", "RUNS", 0},    {"last_error", "LAST ERROR", 50}};
	int64_t bot;
	if (ctl_parse_id(argv[0], &bot) == -1) {
		fprintf(stderr, "botjobsctl: job list: the bot id must be a positive integer, not '%s'\n", argv[0]);
		return 2;
	}
	int known = !cfg->status || !*cfg->status;
	for (size_t i = 0; !known && i < CM_ARRAY_LEN(states); i++)
		known = !strcmp(cfg->status, states[i]);
	if (!known) {
		fprintf(stderr,
			"botjobsctl: job list: --status must be one of scheduled, running, done, failed, cancelled, "
			"skipped\n");
		return 2;
	}
	char lead[24], limit[24];
	snprintf(lead, sizeof(lead), "%ld", cfg->lead);
	snprintf(limit, sizeof(limit), "%ld", cfg->limit);
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[0], cfg->lead ? lead : NULL, cfg->status && *cfg->status ? cfg->status : NULL, limit};
	json_t *rows = ctl_query_json(c,
				      "SELECT coalesce(json_agg(x.o ORDER BY x.job_id DESC), '[]') FROM"
				      " (SELECT j.job_id, " JOB_JSON ") AS o FROM jobs j WHERE j.bot_id = $1::bigint"
				      "  AND ($2::bigint IS NULL OR j.lead_id = $2::bigint)"
				      "  AND ($3::text IS NULL OR j.state = $3)"
				      "  ORDER BY j.job_id DESC LIMIT $4::integer) x",
				      4, p, "job list");
	cm_pg_close(c);
	if (!rows)
		return 1;
	if (cfg->json) {
		ctl_json_print(rows);
	} else {
		size_t i;
		json_t *j;
		json_array_foreach(rows, i, j) add_what(j);
		ctl_table_print(rows, cols, CM_ARRAY_LEN(cols));
	}
	json_decref(rows);
	return 0;
}

struct delivery {
	int done;
	rd_kafka_resp_err_t err;
	int32_t partition;
	int64_t offset;
};

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	struct delivery *d = m->_private;
	if (!d)
		return;
	d->done = 1;
	d->err = m->err;
	d->partition = m->partition;
	d->offset = m->offset;
}

/* Looks the job up: its lead (0 = none) when it can still be cancelled. Returns 0, or 1 after saying why. */
static int cancellable(const struct ctl_cfg *cfg, const char *bot, const char *job, int64_t *lead)
{
	char err[800];
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	int rc = 1;
	const char *p[] = {job, bot};
	PGresult *r = cm_pg_query(c,
				  "SELECT coalesce(lead_id, 0), state FROM jobs WHERE job_id = $1::uuid"
				  " AND bot_id = $2::bigint",
				  2, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: job cancel: %s\n", err);
	} else if (PQntuples(r) == 0) {
		fprintf(stderr,
			"botjobsctl: job cancel: job %s not found in bot %s (a job accepted a moment ago may not be "
			"stored yet)\n",
			job, bot);
	} else if (strcmp(PQgetvalue(r, 0, 1), "scheduled") != 0 && strcmp(PQgetvalue(r, 0, 1), "running") != 0) {
		fprintf(stderr, "botjobsctl: job cancel: job %s is already %s\n", job, PQgetvalue(r, 0, 1));
	} else {
		*lead = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		rc = 0;
	}
	PQclear(r);
	cm_pg_close(c);
	return rc;
}

int ctl_job_cancel(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	int64_t bot, lead = 0;
	if (ctl_parse_id(argv[0], &bot) == -1 || !cm_uuid_valid(argv[1])) {
		fprintf(stderr, "botjobsctl: job cancel: BOT is a positive integer and JOB_ID a UUID\n");
		return 2;
	}
	if (cancellable(cfg, argv[0], argv[1], &lead) != 0)
		return 1;

	char err[512], key[48], tmo[16];
	struct cm_topics topics;
	cm_topics_init(&topics, cfg->topic_prefix);
	struct cm_cancel cancel = {.bot_id = bot, .lead_id = lead, .accepted_us = cm_time_now_us()};
	snprintf(cancel.job_id, sizeof(cancel.job_id), "%s", argv[1]);
	json_t *env = cm_cancel_to_envelope(&cancel);
	char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	cm_job_key(bot, lead, key, sizeof(key));
	snprintf(tmo, sizeof(tmo), "%d", DELIVERY_TIMEOUT_MS);

	int rc = 1;
	struct delivery d = {0};
	rd_kafka_t *rk = NULL;
	rd_kafka_conf_t *conf = cm_kafka_conf_new(cfg->brokers, "botjobsctl", &cfg->props, err, sizeof(err));
	if (!text || !conf || cm_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) == -1 ||
	    cm_kafka_conf_set(conf, "acks", "all", err, sizeof(err)) == -1 ||
	    cm_kafka_conf_set(conf, "message.timeout.ms", tmo, err, sizeof(err)) == -1) {
		fprintf(stderr, "botjobsctl: job cancel: %s\n", text ? err : "out of memory");
		goto out;
	}
	/* props given with -X win over the settings above */
	for (size_t i = 0; i < cfg->props.n; i++)
		if (cm_kafka_conf_set(conf, cfg->props.key[i], cfg->props.val[i], err, sizeof(err)) == -1) {
			fprintf(stderr, "botjobsctl: job cancel: %s\n", err);
			goto out;
		}
	rd_kafka_conf_set_dr_msg_cb(conf, delivered);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "botjobsctl: job cancel: kafka: %s\n", err);
		goto out;
	}
	conf = NULL; /* now owned by rk */
	rd_kafka_resp_err_t e =
		rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topics.jobs), RD_KAFKA_V_KEY(key, strlen(key)),
				  RD_KAFKA_V_VALUE(text, strlen(text)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				  RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
	if (e) {
		fprintf(stderr, "botjobsctl: job cancel: kafka: %s; nothing was sent\n", rd_kafka_err2str(e));
		goto out;
	}
	rd_kafka_flush(rk, DELIVERY_TIMEOUT_MS + 5000);
	if (!d.done || d.err) {
		fprintf(stderr,
			"botjobsctl: job cancel: Kafka did not acknowledge the cancel (%s); the job was not cancelled, "
			"try again\n",
			d.done ? rd_kafka_err2str(d.err) : "no delivery report");
		goto out;
	}
	if (cfg->json) {
		json_t *o = json_pack("{ss sI so ss ss si sI}", "job_id", argv[1], "bot_id", (json_int_t)bot, "lead_id",
				      lead ? json_integer(lead) : json_null(), "status", "cancel_requested", "topic",
				      topics.jobs, "partition", (int)d.partition, "offset", (json_int_t)d.offset);
		ctl_json_print(o);
		json_decref(o);
	} else {
		printf("cancel of job %s requested: published to %s[%d]@%" PRId64
		       " with key %s; the worker cancels it\n",
		       argv[1], topics.jobs, (int)d.partition, d.offset, key);
	}
	rc = 0;
out:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (rk)
		rd_kafka_destroy(rk);
	free(text);
	return rc;
}
