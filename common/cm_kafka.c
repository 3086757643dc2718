/*
 * cm_kafka.c - see cm_kafka.h.
 */
#include <stdio.h>
#include <string.h>

#include "cm_kafka.h"
#include "cm_log.h"
#include "cm_time.h"

void cm_topics_init(struct cm_topics *t, const char *prefix)
{
	snprintf(t->jobs, sizeof(t->jobs), "%sjobs", prefix);
	snprintf(t->outbound, sizeof(t->outbound), "%soutbound", prefix);
	snprintf(t->events, sizeof(t->events), "%sevents", prefix);
	snprintf(t->deadletter, sizeof(t->deadletter), "%sdeadletter", prefix);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
	enum cm_log_level l = level <= 3   ? CM_LOG_ERROR
			      : level == 4 ? CM_LOG_WARN
			      : level <= 6 ? CM_LOG_INFO
					   : CM_LOG_DEBUG;
	cm_log_kv(l, (const struct cm_kv[]){{"kafka", rd_kafka_name(rk)}, {"facility", fac}}, 2, "librdkafka: %s", buf);
}

int cm_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr, size_t errstr_size)
{
	char err[512];
	if (rd_kafka_conf_set(conf, key, val, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errstr_size, "kafka property %s: %s", key, err);
		return -1;
	}
	return 0;
}

rd_kafka_conf_t *cm_kafka_conf_new(const char *brokers, const char *client_id, const struct cm_props *props,
				   char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (cm_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) == -1)
		goto err;
	rd_kafka_conf_set_log_cb(conf, log_cb);
	for (size_t i = 0; props && i < props->n; i++)
		if (cm_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size) == -1)
			goto err;
	return conf;
err:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

int cm_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms, char *errstr, size_t errstr_size)
{
	int64_t deadline = cm_time_mono_us() + (int64_t)timeout_ms * 1000;
	rd_kafka_resp_err_t err;
	do {
		const struct rd_kafka_metadata *md = NULL;
		err = rd_kafka_metadata(rk, 0, NULL, &md, 1000);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			int nb = md->broker_cnt;
			rd_kafka_metadata_destroy(md);
			if (nb > 0)
				return 0;
		}
	} while (cm_time_mono_us() < deadline);
	snprintf(errstr, errstr_size, "kafka not reachable within %d ms: %s", timeout_ms, rd_kafka_err2str(err));
	return -1;
}

int cm_kafka_ensure_topics(rd_kafka_t *rk, const struct cm_topics *t, int partitions, int replication, int timeout_ms,
			   char *errstr, size_t errstr_size)
{
	const char *names[] = {t->jobs, t->outbound, t->events, t->deadletter};
	rd_kafka_NewTopic_t *nt[4] = {0};
	rd_kafka_AdminOptions_t *opts = NULL;
	rd_kafka_queue_t *q = NULL;
	rd_kafka_event_t *ev = NULL;
	char err[256];
	int rc = -1;

	for (size_t i = 0; i < 4; i++) {
		nt[i] = rd_kafka_NewTopic_new(names[i], partitions, replication, err, sizeof(err));
		if (!nt[i]) {
			snprintf(errstr, errstr_size, "topic %s: %s", names[i], err);
			goto out;
		}
	}
	opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	if (rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, sizeof(err)) ||
	    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof(err))) {
		snprintf(errstr, errstr_size, "admin options: %s", err);
		goto out;
	}
	q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, nt, 4, opts, q);
	ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
	if (!ev) {
		snprintf(errstr, errstr_size, "create topics: no answer within %d ms", timeout_ms);
		goto out;
	}
	if (rd_kafka_event_error(ev)) {
		snprintf(errstr, errstr_size, "create topics: %s", rd_kafka_event_error_string(ev));
		goto out;
	}
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	size_t n;
	const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			cm_log_with(CM_LOG_INFO, "topic", rd_kafka_topic_result_name(tr[i]),
				    "created topic (%d partitions)", partitions);
		} else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			snprintf(errstr, errstr_size, "create topic %s: %s", rd_kafka_topic_result_name(tr[i]),
				 rd_kafka_topic_result_error_string(tr[i]));
			goto out;
		}
	}
	rc = 0;
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	if (q)
		rd_kafka_queue_destroy(q);
	if (opts)
		rd_kafka_AdminOptions_destroy(opts);
	for (size_t i = 0; i < 4; i++)
		if (nt[i])
			rd_kafka_NewTopic_destroy(nt[i]);
	return rc;
}
