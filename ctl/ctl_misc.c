/*
 * ctl_misc.c - botjobsctl's smaller commands: migrate, topics, tail, validate.
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

int ctl_migrate(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	(void)argv;
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

int ctl_topics(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	(void)argv;
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

int ctl_tail(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	const char *which = argv[0];
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
int ctl_validate(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)cfg;
	const char *what = argc ? argv[0] : "request";
	if (strcmp(what, "request") != 0 && strcmp(what, "envelope") != 0) {
		fprintf(stderr, "botjobsctl: validate: request or envelope, not '%s'\n", what);
		return 2;
	}
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
