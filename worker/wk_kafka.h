/*
 * wk_kafka.h - the worker's Kafka producer (idempotent, acks=all), shared by the outbox relay and the
 * dead-letter path. Each produced message carries a pointer to its own status word as opaque; the
 * delivery report sets it, so several threads can wait for their own messages on one handle.
 */
#ifndef WK_KAFKA_H
#define WK_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "cm_config.h"

enum { WK_DR_PENDING = 0, WK_DR_OK = 1, WK_DR_FAILED = 2 };

rd_kafka_t *wk_kafka_producer_new(const char *brokers, const char *client_id, const struct cm_props *props,
				  char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * Produces one message (copied); *status is set by the delivery report. A message that cannot even
 * be queued gets WK_DR_FAILED at once.
 */
void wk_kafka_produce(rd_kafka_t *rk, const char *topic, const char *key, const void *value, size_t len,
		      _Atomic int *status);

/* Serves delivery reports until every status[0..n) is resolved or timeout_ms passes. Returns the OK count. */
size_t wk_kafka_wait(rd_kafka_t *rk, _Atomic int *status, size_t n, int timeout_ms);

#endif
