/*
 * pr_kafka.c - see pr_kafka.h.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_kafka.h"
#include "cm_log.h"
#include "cm_time.h"
#include "pr_kafka.h"

struct pr_kafka {
	rd_kafka_t *rk;
	pthread_rwlock_t lock; /* senders hold it shared; stop takes it to close the door */
	int closed;
	pthread_t thread;
	atomic_int stop;
	atomic_int all_down;
};

struct pending {
	pr_kafka_done_fn done;
	void *arg;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct pr_kafka *k = opaque;
	struct pending *p = m->_private;
	(void)rk;
	if (!m->err)
		atomic_store(&k->all_down, 0);
	if (p) {
		p->done(p->arg, m->err);
		free(p);
	}
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct pr_kafka *k = opaque;
	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		atomic_store(&k->all_down, 1);
	cm_log_warn("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* While every broker is down, sends fail fast (503 at once, not after the message timeout); this
 * thread asks for metadata once a second and opens the door again when a broker answers. */
static void *poll_main(void *arg)
{
	struct pr_kafka *k = arg;
	int64_t last_probe = 0;
	while (!atomic_load(&k->stop)) {
		rd_kafka_poll(k->rk, 50);
		if (atomic_load(&k->all_down) && cm_time_mono_us() - last_probe > 1000000) {
			const struct rd_kafka_metadata *md = NULL;
			last_probe = cm_time_mono_us();
			if (rd_kafka_metadata(k->rk, 0, NULL, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
				int up = md->broker_cnt > 0;
				rd_kafka_metadata_destroy(md);
				if (up) {
					atomic_store(&k->all_down, 0);
					cm_log_info("kafka: a broker answers again; accepting jobs");
				}
			}
		}
	}
	return NULL;
}

struct pr_kafka *pr_kafka_start(const char *brokers, const char *client_id, const struct cm_props *props,
				int timeout_ms, char *errstr, size_t errstr_size)
{
	struct pr_kafka *k = calloc(1, sizeof(*k));
	char err[512], tmo[16];
	if (!k) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&k->lock, NULL);
	rd_kafka_conf_t *conf = cm_kafka_conf_new(brokers, client_id, NULL, errstr, errstr_size);
	if (!conf)
		goto err;
	snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
	/* Durable: all in-sync replicas ack, retries never duplicate or reorder. Batch briefly for throughput. */
	if (cm_kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "linger.ms", "1", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "message.timeout.ms", tmo, errstr, errstr_size) == -1)
		goto err;
	for (size_t i = 0; props && i < props->n; i++)
		if (cm_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size) == -1)
			goto err;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, k);
	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!k->rk) {
		snprintf(errstr, errstr_size, "kafka producer: %s", err);
		goto err;
	}
	conf = NULL; /* now owned by rk */
	if (pthread_create(&k->thread, NULL, poll_main, k) != 0) {
		snprintf(errstr, errstr_size, "cannot start the delivery thread");
		goto err;
	}
	return k;
err:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (k->rk)
		rd_kafka_destroy(k->rk);
	free(k);
	return NULL;
}

void pr_kafka_stop(struct pr_kafka *k, int flush_ms)
{
	if (!k)
		return;
	rd_kafka_resp_err_t e;
	(void)rd_kafka_flush(k->rk, flush_ms);
	pthread_rwlock_wrlock(&k->lock);
	k->closed = 1; /* from now on pr_kafka_send refuses: nothing can be queued after the last flush */
	pthread_rwlock_unlock(&k->lock);
	e = rd_kafka_flush(k->rk, flush_ms);
	if (e)
		cm_log_warn("kafka: %d message(s) still in flight at shutdown", rd_kafka_outq_len(k->rk));
	atomic_store(&k->stop, 1);
	pthread_join(k->thread, NULL);
	rd_kafka_destroy(k->rk);
	pthread_rwlock_destroy(&k->lock);
	free(k);
}

int pr_kafka_send(struct pr_kafka *k, const char *topic, const char *key, const char *value, size_t len,
		  pr_kafka_done_fn done, void *arg, char *errstr, size_t errstr_size)
{
	struct pending *p = malloc(sizeof(*p));
	if (!p) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	p->done = done;
	p->arg = arg;
	if (atomic_load(&k->all_down)) {
		free(p);
		snprintf(errstr, errstr_size, "all brokers are down");
		return -1;
	}
	pthread_rwlock_rdlock(&k->lock);
	if (k->closed) {
		pthread_rwlock_unlock(&k->lock);
		free(p);
		snprintf(errstr, errstr_size, "shutting down");
		return -1;
	}
	rd_kafka_resp_err_t err =
		rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len),
				  RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
	pthread_rwlock_unlock(&k->lock);
	if (err) {
		free(p);
		snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(err));
		return -1;
	}
	return 0; /* NOLINT(clang-analyzer-unix.Malloc): p is the message's opaque, freed by dr_cb */
}

int pr_kafka_down(struct pr_kafka *k, char *why, size_t why_size)
{
	if (atomic_load(&k->all_down)) {
		snprintf(why, why_size, "kafka: all brokers are down");
		return 1;
	}
	return 0;
}

rd_kafka_t *pr_kafka_handle(struct pr_kafka *k)
{
	return k->rk;
}
