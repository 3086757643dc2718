/*
 * cm_kafka.h - librdkafka helpers shared by the binaries: configuration with -X pass-through,
 * logging through cm_log, topic names, and creating the topics at start-up.
 */
#ifndef CM_KAFKA_H
#define CM_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "cm_config.h"

/* Topic names: prefix + suffix; the default prefix "botjobs." gives botjobs.jobs etc. */
struct cm_topics {
	char jobs[128], outbound[128], events[128], deadletter[128];
};
void cm_topics_init(struct cm_topics *t, const char *prefix);

/*
 * A new conf with bootstrap.servers, client.id, logging through cm_log, then every -X property on
 * top (they win). Returns NULL with errstr. The caller owns the conf until rd_kafka_new takes it.
 */
rd_kafka_conf_t *cm_kafka_conf_new(const char *brokers, const char *client_id, const struct cm_props *props,
				   char *errstr, size_t errstr_size) CM_MUSTCHECK;
int cm_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr,
		      size_t errstr_size) CM_MUSTCHECK;

/*
 * Creates the four topics if they do not exist (an existing topic is not an error).
 * partitions/replication apply to new topics only. Blocks up to timeout_ms.
 */
int cm_kafka_ensure_topics(rd_kafka_t *rk, const struct cm_topics *t, int partitions, int replication, int timeout_ms,
			   char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* Waits until the cluster answers a metadata request. Returns 0, or -1 after timeout_ms. */
int cm_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms, char *errstr, size_t errstr_size) CM_MUSTCHECK;

#endif
