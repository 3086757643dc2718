/*
 * wk_consumer.h - reads botjobs.jobs in a consumer group and stores the jobs in PostgreSQL.
 *
 * At-least-once into an idempotent store: a batch of messages is validated (cm_envelope_parse, the
 * producer's own rules), invalid ones are dead-lettered (and the delivery awaited), the rest are
 * inserted by job_id in one transaction, and only after that commit are the offsets stored. A crash
 * anywhere means redelivery, and redelivery inserts nothing new. A bad message never stops a partition.
 */
#ifndef WK_CONSUMER_H
#define WK_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "cm_config.h"
#include "cm_job.h"
#include "cm_kafka.h"

struct wk_consumer_opts {
	const char *brokers;
	const char *group_id;
	const char *client_id;
	const char *pg_uri;
	const char *worker_id;
	const struct cm_topics *topics;
	const struct cm_props *props; /* -X properties, may be NULL */
	rd_kafka_t *producer;	      /* for the dead-letter topic, borrowed */
	const struct cm_job_limits *limits;
	int batch;     /* messages per database transaction, at most */
	int window_us; /* after a batch's first message, wait this long for more (0: take what has arrived) */
	int events;
};

struct wk_consumer;

struct wk_consumer *wk_consumer_start(const struct wk_consumer_opts *opts, char *errstr,
				      size_t errstr_size) CM_MUSTCHECK;
/* The consumer's librdkafka configuration (a new conf; -X properties override the defaults). */
rd_kafka_conf_t *wk_consumer_conf(const struct wk_consumer_opts *opts, char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* Stops consuming, finishes the batch in hand, commits the stored offsets, leaves the group. NULL-safe. */
void wk_consumer_stop(struct wk_consumer *c);
/* 1 while the consumer has partitions assigned or is waiting for them with a working database. */
int wk_consumer_ready(const struct wk_consumer *c, char *why, size_t why_size);

/* The dead-letter record for a message (a new JSON object): reason, origin, and the original bytes. */
json_t *wk_deadletter_record(const rd_kafka_message_t *m, const char *reason, const char *worker_id);

#endif
