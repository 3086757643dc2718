/*
 * ctl_misc.c - botjobsctl's smaller commands: migrate, topics, token, lead, job, tail.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_id.h"
#include "cm_job.h"
#include "cm_kafka.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "ctl.h"

int ctl_migrate(const struct ctl_cfg *cfg)
{
	char err[800];
	int applied = 0;
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	int rc = cm_pg_migrate(c, &applied, err, sizeof(err));
	cm_pg_close(c);
	if (rc == -1) {
		fprintf(stderr, "botjobsctl: migrate: %s\n", err);
		return 1;
	}
	printf("migrations: %d applied, %zu known\n", applied, cm_migrations_count);
	return 0;
}

static rd_kafka_t *kafka_client(const struct ctl_cfg *cfg, rd_kafka_type_t type, rd_kafka_conf_t *extra)
{
	char err[512];
	rd_kafka_conf_t *conf =
		extra ? extra : cm_kafka_conf_new(cfg->brokers, "botjobsctl", &cfg->props, err, sizeof(err));
	if (!conf) {
		fprintf(stderr, "botjobsctl: %s\n", err);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "botjobsctl: kafka: %s\n", err);
	}
	return rk;
}

int ctl_topics(const struct ctl_cfg *cfg)
{
	char err[512];
	struct cm_topics t;
	cm_topics_init(&t, cfg->topic_prefix);
	rd_kafka_t *rk = kafka_client(cfg, RD_KAFKA_PRODUCER, NULL);
	if (!rk)
		return 1;
	int rc = cm_kafka_wait_ready(rk, 30000, err, sizeof(err));
	if (rc == 0)
		rc = cm_kafka_ensure_topics(rk, &t, (int)cfg->partitions, (int)cfg->replication, 15000, err,
					    sizeof(err));
	rd_kafka_destroy(rk);
	if (rc == -1) {
		fprintf(stderr, "botjobsctl: topics: %s\n", err);
		return 1;
	}
	printf("topics ready: %s %s %s %s\n", t.jobs, t.outbound, t.events, t.deadletter);
	return 0;
}

/* Prints the single JSON value a query returns (or "not found"). */
static int print_json_query(PGconn *c, const char *sql, int n, const char *const *p, const char *what)
{
	char err[800];
	PGresult *r = cm_pg_query(c, sql, n, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: %s: %s\n", what, err);
		return 1;
	}
	int found = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
	if (found) {
		json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		printf("%s\n", pretty ? pretty : PQgetvalue(r, 0, 0));
		free(pretty);
		json_decref(j);
	} else {
		fprintf(stderr, "botjobsctl: %s: not found\n", what);
	}
	PQclear(r);
	return found ? 0 : 1;
}

int ctl_token(const struct ctl_cfg *cfg, int argc, char **argv)
{
	char err[800];
	if (argc < 1) {
		fprintf(stderr, "botjobsctl: token create|list|revoke (see --help)\n");
		return 2;
	}
	PGconn *c = NULL;
	int rc = 1;
	if (!strcmp(argv[0], "create") && argc == 3) {
		if (!(c = ctl_connect(cfg)))
			return 1;
		char token[64], hash[65], prefix[16], days[16];
		if (cm_token_new(token, sizeof(token)) == -1) {
			fprintf(stderr, "botjobsctl: no randomness\n");
			goto out;
		}
		cm_token_hash_hex(token, hash);
		snprintf(prefix, sizeof(prefix), "%.10s", token);
		snprintf(days, sizeof(days), "%ld", cfg->expires_days);
		const char *p[] = {argv[1], argv[2], hash, prefix, days};
		PGresult *r = cm_pg_query(
			c,
			"INSERT INTO api_tokens (business_id, name, token_hash, token_prefix, expires_at)"
			" SELECT b.id, $2, $3, $4, CASE WHEN $5::integer > 0 THEN now() + make_interval(days => "
			"$5::integer) END"
			" FROM businesses b WHERE b.name = $1 OR b.id::text = $1 ORDER BY (b.name = $1) DESC LIMIT 1"
			" RETURNING id, business_id",
			5, p, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "botjobsctl: token create: %s\n", err);
			goto out;
		}
		if (PQntuples(r) == 0) {
			fprintf(stderr, "botjobsctl: token create: no business named or numbered '%s'\n", argv[1]);
			PQclear(r);
			goto out;
		}
		fprintf(stderr, "token %s created for business %s; it is shown only this once:\n", PQgetvalue(r, 0, 0),
			PQgetvalue(r, 0, 1));
		printf("%s\n", token);
		PQclear(r);
		rc = 0;
	} else if (!strcmp(argv[0], "list") && argc <= 2) {
		if (!(c = ctl_connect(cfg)))
			return 1;
		const char *p[] = {argc == 2 ? argv[1] : NULL};
		rc = print_json_query(
			c,
			"SELECT coalesce(json_agg(json_build_object('id', t.id, 'business', b.name, 'name', t.name,"
			" 'prefix', t.token_prefix || '…', 'created_at', t.created_at, 'expires_at', t.expires_at,"
			" 'revoked_at', t.revoked_at) ORDER BY t.id), '[]')"
			" FROM api_tokens t JOIN businesses b ON b.id = t.business_id"
			" WHERE $1::text IS NULL OR b.name = $1 OR b.id::text = $1",
			1, p, "token list");
	} else if (!strcmp(argv[0], "revoke") && argc == 2) {
		if (!(c = ctl_connect(cfg)))
			return 1;
		const char *p[] = {argv[1]};
		PGresult *r = cm_pg_query(c,
					  "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())"
					  " WHERE id::text = $1 RETURNING id",
					  1, p, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "botjobsctl: token revoke: %s\n", err);
			goto out;
		}
		if (PQntuples(r) == 0)
			fprintf(stderr, "botjobsctl: token revoke: no token %s\n", argv[1]);
		else {
			printf("token %s revoked\n", argv[1]);
			rc = 0;
		}
		PQclear(r);
	} else {
		fprintf(stderr, "botjobsctl: token create BUSINESS NAME | token list [BUSINESS] | token revoke ID\n");
		return 2;
	}
out:
	cm_pg_close(c);
	return rc;
}

int ctl_lead(const struct ctl_cfg *cfg, int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[0], "show") != 0) {
		fprintf(stderr, "botjobsctl: lead show BOT LEAD\n");
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[1], argv[2]};
	int rc = print_json_query(
		c,
		"SELECT row_to_json(l) FROM (SELECT bot_id, id, name, channel, attributes, tags, status_id,"
		" muted, updated_at FROM leads WHERE bot_id::text = $1 AND id::text = $2) l",
		2, p, "lead show");
	cm_pg_close(c);
	return rc;
}

int ctl_job(const struct ctl_cfg *cfg, int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[0], "show") != 0) {
		fprintf(stderr, "botjobsctl: job show JOB_ID\n");
		return 2;
	}
	if (!cm_uuid_valid(argv[1])) {
		fprintf(stderr, "botjobsctl: job show: '%s' is not a job id (a UUID)\n", argv[1]);
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[1]};
	int rc = print_json_query(
		c,
		"SELECT json_build_object('job_id', j.job_id, 'bot_id', j.bot_id, 'lead_id', j.lead_id, 'status', "
		"j.state,"
		" 'target', json_build_object('kind', j.target_kind, 'id', j.target_id, 'code', j.target_code),"
		" 'due_at', j.due_at, 'is_periodic', j.period_sec IS NOT NULL, 'repeat_interval_sec', j.period_sec,"
		" 'runs', j.runs, 'last_run_at', j.last_run_at, 'last_error', j.last_error, 'result', j.result,"
		" 'accepted_at', j.accepted_at, 'history', (SELECT coalesce(json_agg(json_build_object('run', r.run_no,"
		" 'outcome', r.outcome, 'due_at', r.due_at, 'started_at', r.started_at, 'finished_at', r.finished_at,"
		" 'error', r.error, 'error_line', r.error_line, 'worker', r.worker) ORDER BY r.id), '[]')"
		" FROM job_runs r WHERE r.job_id = j.job_id))"
		" FROM jobs j WHERE j.job_id = $1::uuid",
		1, p, "job show");
	cm_pg_close(c);
	return rc;
}

int ctl_tail(const struct ctl_cfg *cfg, const char *which)
{
	struct cm_topics t;
	char err[512], group[64];
	cm_topics_init(&t, cfg->topic_prefix);
	const char *topic = !strcmp(which, "jobs")	   ? t.jobs
			    : !strcmp(which, "outbound")   ? t.outbound
			    : !strcmp(which, "events")	   ? t.events
			    : !strcmp(which, "deadletter") ? t.deadletter
							   : which;
	rd_kafka_conf_t *conf = cm_kafka_conf_new(cfg->brokers, "botjobsctl-tail", &cfg->props, err, sizeof(err));
	if (!conf) {
		fprintf(stderr, "botjobsctl: %s\n", err);
		return 1;
	}
	snprintf(group, sizeof(group), "botjobsctl-tail-%d", (int)getpid());
	if (cm_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
	    cm_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err)) ||
	    cm_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err))) {
		fprintf(stderr, "botjobsctl: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_t *rk = kafka_client(cfg, RD_KAFKA_CONSUMER, conf);
	if (!rk)
		return 1;
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	long seen = 0;
	int64_t last = cm_time_mono_us();
	while (cfg->count == 0 || seen < cfg->count) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m) {
			if (cm_time_mono_us() - last > cfg->timeout_ms * 1000)
				break;
			continue;
		}
		if (!m->err) {
			printf("%.*s\n", (int)m->len, (const char *)m->payload);
			fflush(stdout);
			seen++;
			last = cm_time_mono_us();
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return 0;
}

/*
 * validate [request|envelope]: the C rules' verdict on a JSON document read from stdin, as JSON on
 * stdout: {"valid":true} or {"valid":false,"errors":{field:[rule]}} (requests) / {"valid":false,
 * "reason":"..."} (envelopes). Exit 0 when valid, 1 when not. The bot and its targets are not looked up.
 */
int ctl_validate(const struct ctl_cfg *cfg, const char *what)
{
	(void)cfg;
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	if (!buf) {
		fprintf(stderr, "botjobsctl: out of memory\n");
		return 1;
	}
	json_t *out = json_object();
	int valid = 0;
	if (!strcmp(what, "envelope")) {
		enum cm_command cmd;
		struct cm_job job;
		struct cm_cancel cancel;
		char err[1024];
		valid = cm_envelope_parse(buf, len, cm_time_now_us(), NULL, &cmd, &job, &cancel, err, sizeof(err)) == 0;
		if (valid && cmd == CM_CMD_SCHEDULE)
			cm_job_clear(&job);
		if (!valid)
			json_object_set_new(out, "reason", json_string(err));
	} else {
		json_error_t je;
		json_t *body = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
		json_t *errors = json_object();
		if (!body) {
			json_object_set_new(errors, "body", json_pack("[s]", je.text));
		} else {
			struct cm_job job;
			cm_job_init(&job);
			struct cm_job_parse_ctx ctx = {.now_us = cm_time_now_us(),
						       .limits = &cm_job_default_limits,
						       .unknown = CM_UNKNOWN_REJECT,
						       .check_condition_compiles = 1};
			valid = cm_job_from_request(body, 1, &ctx, &job, errors) == 0;
			cm_job_clear(&job);
		}
		if (!valid)
			json_object_set(out, "errors", errors);
		json_decref(errors);
		json_decref(body);
	}
	json_object_set_new(out, "valid", json_boolean(valid));
	char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	printf("%s\n", text ? text : "{}");
	free(text);
	json_decref(out);
	free(buf);
	return valid ? 0 : 1;
}
