/*
 * wk_outbox.h - relays the transactional outbox to Kafka (botjobs.outbound, botjobs.events).
 *
 * Rows are written by the run's transaction, so a message exists if and only if its run committed.
 * The relay produces them in id order, waits for Kafka's acknowledgement, then deletes them: at
 * least once, in order per key. One relay is active at a time across all workers (a PostgreSQL
 * advisory lock; the others stand by and take over when it goes), which keeps each lead's messages
 * in order. Duplicates after a crash carry the same message_id.
 *
 * A row is one message (key, payload), or, with a NULL key and a JSON array as payload, the messages
 * [{"key", "payload"}, …] of one batch in order (the claim's job.started events, a completion's job.done
 * events): one row per batch instead of per job keeps the outbox cheap. A row is deleted when all of
 * its messages were acknowledged.
 */
#ifndef WK_OUTBOX_H
#define WK_OUTBOX_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "cm_kafka.h"

struct wk_outbox_opts {
	const char *pg_uri;
	rd_kafka_t *producer; /* borrowed */
	const struct cm_topics *topics;
	int batch;
};

struct wk_outbox;

struct wk_outbox *wk_outbox_start(const struct wk_outbox_opts *opts, char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* Relays what is left (one last pass), stops the thread, frees. NULL-safe. */
void wk_outbox_stop(struct wk_outbox *o);

#endif
