/*
 * pr_kafka.h - the producer's Kafka side: an idempotent producer (acks=all) and a thread that serves
 * delivery reports. A schedule request is answered only from its delivery report: 202 once Kafka
 * has the job durably, 503 when the delivery failed or timed out (nothing was accepted).
 */
#ifndef PR_KAFKA_H
#define PR_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "cm_config.h"

struct pr_kafka;

/* Called once per sent message, from the delivery thread. err is 0 when Kafka acknowledged it. */
typedef void (*pr_kafka_done_fn)(void *arg, rd_kafka_resp_err_t err);

struct pr_kafka *pr_kafka_start(const char *brokers, const char *client_id, const struct cm_props *props,
				int timeout_ms, char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* Waits up to flush_ms for messages in flight, stops the thread, frees. NULL-safe. */
void pr_kafka_stop(struct pr_kafka *k, int flush_ms);

/* Queues value (copied). Returns 0 (done() will be called exactly once), or -1 with errstr when it
 * could not even be queued (done() is not called). */
int pr_kafka_send(struct pr_kafka *k, const char *topic, const char *key, const char *value, size_t len,
		  pr_kafka_done_fn done, void *arg, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* 0 when a broker is known to be reachable; otherwise 1 with why. */
int pr_kafka_down(struct pr_kafka *k, char *why, size_t why_size);
rd_kafka_t *pr_kafka_handle(struct pr_kafka *k);

#endif
