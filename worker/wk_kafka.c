/*
 * wk_kafka.c - see wk_kafka.h.
 */
#include <stdio.h>
#include <string.h>

#include "cm_kafka.h"
#include "cm_log.h"
#include "cm_time.h"
#include "wk_kafka.h"

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	_Atomic int *status = m->_private;
	if (m->err)
		cm_log_with(CM_LOG_WARN, "topic", rd_kafka_topic_name(m->rkt), "delivery failed: %s",
			    rd_kafka_err2str(m->err));
	if (status)
		atomic_store(status, m->err ? WK_DR_FAILED : WK_DR_OK);
}

rd_kafka_t *wk_kafka_producer_new(const char *brokers, const char *client_id, const struct cm_props *props,
				  char *errstr, size_t errstr_size)
{
	/* Durable and ordered: acks from all in-sync replicas, no duplicates on retry. -X may override. */
	rd_kafka_conf_t *conf = cm_kafka_conf_new(brokers, client_id, NULL, errstr, errstr_size);
	if (!conf)
		return NULL;
	if (cm_kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "linger.ms", "2", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, errstr_size) == -1)
		goto err;
	for (size_t i = 0; props && i < props->n; i++)
		if (cm_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size) == -1)
			goto err;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		snprintf(errstr, errstr_size, "kafka producer: %s", err);
		goto err;
	}
	return rk; /* conf is now owned by rk */
err:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

void wk_kafka_produce(rd_kafka_t *rk, const char *topic, const char *key, const void *value, size_t len,
		      _Atomic int *status)
{
	atomic_store(status, WK_DR_PENDING);
	for (int tries = 0;; tries++) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len),
			RD_KAFKA_V_OPAQUE(status), RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			return;
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 100) {
			rd_kafka_poll(rk, 10);
			continue;
		}
		cm_log_with(CM_LOG_WARN, "topic", topic, "produce failed: %s", rd_kafka_err2str(err));
		atomic_store(status, WK_DR_FAILED);
		return;
	}
}

size_t wk_kafka_wait(rd_kafka_t *rk, _Atomic int *status, size_t n, int timeout_ms)
{
	int64_t deadline = cm_time_mono_us() + (int64_t)timeout_ms * 1000;
	size_t first = 0;
	for (;;) {
		while (first < n && atomic_load(&status[first]) != WK_DR_PENDING)
			first++;
		if (first == n || cm_time_mono_us() > deadline)
			break;
		rd_kafka_poll(rk, 5);
	}
	size_t ok = 0;
	for (size_t i = 0; i < n; i++)
		ok += atomic_load(&status[i]) == WK_DR_OK;
	return ok;
}
