/*
 * wk_consumer.c - jobs topic -> PostgreSQL. See wk_consumer.h.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "cm_signal.h"
#include "cm_time.h"
#include "cm_utf8.h"
#include "wk_consumer.h"
#include "wk_kafka.h"
#include "wk_metrics.h"
#include "wk_store.h"

struct wk_consumer {
	struct wk_consumer_opts o;
	rd_kafka_t *rk;
	PGconn *conn;
	pthread_t thread;
	atomic_int stop;
	atomic_int assigned; /* partitions currently assigned */
	atomic_int db_ok;
};

static int stopping(struct wk_consumer *c)
{
	return atomic_load(&c->stop) || cm_signal_stopping();
}

int wk_consumer_ready(const struct wk_consumer *c, char *why, size_t why_size)
{
	if (!c || !atomic_load(&c->db_ok)) {
		snprintf(why, why_size, "consumer: no database connection");
		return 0;
	}
	return 1;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

json_t *wk_deadletter_record(const rd_kafka_message_t *m, const char *reason, const char *worker_id)
{
	char at[CM_TIME_BUFSZ], ts[CM_TIME_BUFSZ];
	rd_kafka_timestamp_type_t tt;
	int64_t t = rd_kafka_message_timestamp(m, &tt);
	/* The reason may quote the message (a parser's error, cut to a buffer's size): keep it UTF-8. */
	json_t *o = json_pack("{si ss so ss si sI ss ss}", "v", 1, "type", "deadletter", "reason", cm_json_text(reason),
			      "topic", rd_kafka_topic_name(m->rkt), "partition", (int)m->partition, "offset",
			      (json_int_t)m->offset, "worker", worker_id, "at", cm_time_format(cm_time_now_us(), at));
	if (t >= 0 && t <= CM_TIME_MAX_SEC * 1000) /* a publisher's timestamp: t * 1000 must not overflow */
		json_object_set_new(o, "timestamp", json_string(cm_time_format(t * 1000, ts)));
	if (m->key) {
		json_t *k = json_stringn(m->key, m->key_len);
		json_object_set_new(o, "key", k ? k : json_null());
	}
	/* The original bytes: as text when they are UTF-8, else base64, so nothing is lost. */
	json_t *orig = m->payload ? json_stringn(m->payload, m->len) : json_string("");
	if (orig) {
		json_object_set_new(o, "original", orig);
	} else if (m->payload) {
		char *b = malloc(m->len / 3 * 4 + 8);
		if (b) {
			base64(m->payload, m->len, b);
			json_object_set_new(o, "original_base64", json_string(b));
			free(b);
		}
	}
	return o;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct wk_consumer *c = opaque;
	int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		cm_log_info("consumer: %d partition(s) assigned", parts->cnt);
		if (cooperative) {
			rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
			if (e)
				rd_kafka_error_destroy(e);
		} else {
			rd_kafka_assign(rk, parts);
		}
		atomic_fetch_add(&c->assigned, parts->cnt);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		/* Nothing in hand to flush: batches are stored before the next poll serves this callback. */
		cm_log_info("consumer: %d partition(s) revoked", parts->cnt);
		if (cooperative) {
			rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
			if (e)
				rd_kafka_error_destroy(e);
		} else {
			rd_kafka_assign(rk, NULL);
		}
		atomic_fetch_sub(&c->assigned, parts->cnt);
	} else {
		cm_log_warn("consumer: rebalance error: %s", rd_kafka_err2str(err));
		rd_kafka_assign(rk, NULL);
		atomic_store(&c->assigned, 0);
	}
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Dead-letters the invalid messages and waits until Kafka has them. Retries until done or stopping. */
static int deadletter(struct wk_consumer *c, rd_kafka_message_t **msgs, char **reasons, size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		count += reasons[i] != NULL;
	if (count == 0)
		return 0;
	_Atomic int *status = calloc(n, sizeof(*status));
	int pause = 100, rc = -1;
	if (!status)
		return -1;
	/* Only the invalid messages are produced; the others must not look pending to wk_kafka_wait. */
	for (size_t i = 0; i < n; i++)
		if (!reasons[i])
			atomic_store(&status[i], WK_DR_OK);
	while (!stopping(c)) {
		for (size_t i = 0; i < n; i++) {
			if (!reasons[i] || atomic_load(&status[i]) == WK_DR_OK)
				continue;
			json_t *rec = wk_deadletter_record(msgs[i], reasons[i], c->o.worker_id);
			char *text = json_dumps(rec, JSON_COMPACT);
			json_decref(rec);
			char key[64];
			snprintf(key, sizeof(key), "%.*s", msgs[i]->key ? (int)msgs[i]->key_len : 0,
				 msgs[i]->key ? (const char *)msgs[i]->key : "");
			wk_kafka_produce(c->o.producer, c->o.topics->deadletter, msgs[i]->key ? key : NULL, text,
					 text ? strlen(text) : 0, &status[i]);
			free(text);
		}
		size_t ok = 0;
		wk_kafka_wait(c->o.producer, status, n, 30000);
		for (size_t i = 0; i < n; i++)
			ok += reasons[i] && atomic_load(&status[i]) == WK_DR_OK;
		if (ok == count) {
			rc = 0;
			break;
		}
		cm_log_warn("consumer: dead-letter delivery failed for %zu message(s); retrying", count - ok);
		sleep_ms(pause);
		pause = pause < 5000 ? pause * 2 : pause;
	}
	free(status);
	return rc;
}

static void store_offsets(struct wk_consumer *c, rd_kafka_message_t **msgs, size_t n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_topic_partition_t *p =
			rd_kafka_topic_partition_list_find(l, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
		if (!p)
			p = rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
		if (msgs[i]->offset + 1 > p->offset)
			p->offset = msgs[i]->offset + 1;
	}
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
	if (err)
		cm_log_warn("consumer: storing offsets: %s (partition revoked meanwhile: it will be redelivered)",
			    rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
}

/* Runs fn until it succeeds, reconnecting and backing off while the database is down. Returns -1
 * only when asked to stop first. */
static int with_db(struct wk_consumer *c, const char *what, size_t n,
		   int (*fn)(struct wk_consumer *, void *, char *, size_t), void *arg)
{
	int pause = 100;
	for (;;) {
		char err[1024];
		if (cm_pg_broken(c->conn) && cm_pg_reset(c->conn, err, sizeof(err)) == -1) {
			atomic_store(&c->db_ok, 0);
		} else if (fn(c, arg, err, sizeof(err)) == 0) {
			atomic_store(&c->db_ok, 1);
			return 0;
		}
		if (stopping(c)) {
			cm_log_warn("consumer: stopping with %zu message(s) not stored; they will be redelivered", n);
			return -1;
		}
		cm_log_warn("consumer: %s failed, retrying in %d ms: %s", what, pause, err);
		sleep_ms(pause);
		pause = pause < 5000 ? pause * 2 : pause;
	}
}

struct batch {
	rd_kafka_message_t **msgs;
	size_t n;
	struct cm_job *jobs;
	struct cm_cancel *cancels;
	size_t *job_msg, *cancel_msg; /* which message each came from */
	size_t nj, nc;
	char **reasons; /* per message: why it is dead-lettered, or NULL */
};

static void reject(struct batch *b, size_t i, const char *reason)
{
	rd_kafka_message_t *m = b->msgs[i];
	char subj[200];
	snprintf(subj, sizeof(subj), "%s[%d]@%" PRId64, rd_kafka_topic_name(m->rkt), (int)m->partition,
		 (int64_t)m->offset);
	cm_log_with(CM_LOG_WARN, "message", subj, "invalid message dead-lettered: %s", reason);
	b->reasons[i] = strdup(reason);
	cm_metric_add(&wk_m_deadlettered, 1);
}

/* Commands for bots that do not exist are dead-lettered, not stored. */
static int check_bots(struct wk_consumer *c, void *arg, char *errstr, size_t errstr_size)
{
	struct batch *b = arg;
	json_t *ids = json_array();
	for (size_t i = 0; i < b->nj; i++)
		json_array_append_new(ids, json_integer(b->jobs[i].bot_id));
	for (size_t i = 0; i < b->nc; i++)
		json_array_append_new(ids, json_integer(b->cancels[i].bot_id));
	if (json_array_size(ids) == 0) {
		json_decref(ids);
		return 0;
	}
	char *text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	const char *p[] = {text};
	PGresult *r = cm_pg_query(c->conn,
				  "SELECT DISTINCT x::bigint FROM jsonb_array_elements_text($1::jsonb) x"
				  " WHERE NOT EXISTS (SELECT 1 FROM bots WHERE id = x::bigint)",
				  1, p, errstr, errstr_size);
	free(text);
	if (!r)
		return -1;
	for (int row = 0; row < PQntuples(r); row++) {
		int64_t bot = strtoll(PQgetvalue(r, row, 0), NULL, 10);
		char reason[96];
		snprintf(reason, sizeof(reason), "bot_id: bot %" PRId64 " does not exist", bot);
		size_t k = 0;
		for (size_t i = 0; i < b->nj; i++) {
			if (b->jobs[i].bot_id == bot) {
				reject(b, b->job_msg[i], reason);
				cm_job_clear(&b->jobs[i]);
				continue;
			}
			b->job_msg[k] = b->job_msg[i];
			b->jobs[k++] = b->jobs[i];
		}
		b->nj = k;
		k = 0;
		for (size_t i = 0; i < b->nc; i++) {
			if (b->cancels[i].bot_id == bot) {
				reject(b, b->cancel_msg[i], reason);
				continue;
			}
			b->cancel_msg[k] = b->cancel_msg[i];
			b->cancels[k++] = b->cancels[i];
		}
		b->nc = k;
	}
	PQclear(r);
	return 0;
}

static int ingest(struct wk_consumer *c, void *arg, char *errstr, size_t errstr_size)
{
	struct batch *b = arg;
	int inserted = 0;
	if (wk_store_ingest(c->conn, b->jobs, b->nj, b->cancels, b->nc, c->o.events, &inserted, errstr, errstr_size) ==
	    -1)
		return -1;
	cm_metric_add(&wk_m_stored, inserted);
	if ((size_t)inserted < b->nj)
		cm_log_info("consumer: %zu redelivered job(s) were already stored", b->nj - (size_t)inserted);
	return 0;
}

/* Validates, dead-letters, stores, then stores offsets. Returns -1 if the batch must be read again. */
static int process(struct wk_consumer *c, rd_kafka_message_t **msgs, size_t n)
{
	struct batch b = {.msgs = msgs, .n = n};
	int rc = -1;
	b.jobs = calloc(n, sizeof(*b.jobs));
	b.cancels = calloc(n, sizeof(*b.cancels));
	b.job_msg = calloc(n, sizeof(size_t));
	b.cancel_msg = calloc(n, sizeof(size_t));
	b.reasons = calloc(n, sizeof(char *));
	if (!b.jobs || !b.cancels || !b.job_msg || !b.cancel_msg || !b.reasons)
		goto out;

	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		rd_kafka_timestamp_type_t tt;
		int64_t ts = rd_kafka_message_timestamp(m, &tt);
		int64_t ts_us = cm_envelope_now_us(ts, cm_time_now_us());
		char err[600];
		enum cm_command cmd;
		if (cm_envelope_parse(m->payload ? m->payload : "", m->len, ts_us, c->o.limits, &cmd, &b.jobs[b.nj],
				      &b.cancels[b.nc], err, sizeof(err)) == -1) {
			reject(&b, i, err);
			continue;
		}
		if (cmd == CM_CMD_SCHEDULE)
			b.job_msg[b.nj++] = i;
		else
			b.cancel_msg[b.nc++] = i;
	}
	if (with_db(c, "checking bots", n, check_bots, &b) == -1 || deadletter(c, msgs, b.reasons, n) == -1 ||
	    with_db(c, "storing jobs", n, ingest, &b) == -1)
		goto out;
	store_offsets(c, msgs, n);
	rc = 0;
out:
	for (size_t i = 0; b.jobs && i < b.nj; i++)
		cm_job_clear(&b.jobs[i]);
	for (size_t i = 0; b.reasons && i < n; i++)
		free(b.reasons[i]);
	free(b.jobs);
	free(b.cancels);
	free(b.job_msg);
	free(b.cancel_msg);
	free(b.reasons);
	return rc;
}

/* Consumer lag: high watermark minus position, over the assigned partitions (librdkafka's cached
 * watermarks, refreshed by its fetches: no request to the broker here). */
static void measure_lag(struct wk_consumer *c)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (rd_kafka_assignment(c->rk, &parts) || !parts)
		return;
	if (rd_kafka_position(c->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		long long lag = 0;
		for (int i = 0; i < parts->cnt; i++) {
			int64_t lo = 0, hi = 0;
			if (rd_kafka_get_watermark_offsets(c->rk, parts->elems[i].topic, parts->elems[i].partition, &lo,
							   &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			    parts->elems[i].offset >= 0 && hi > parts->elems[i].offset)
				lag += hi - parts->elems[i].offset;
		}
		cm_metric_set(&wk_m_consumer_lag, lag);
	}
	rd_kafka_topic_partition_list_destroy(parts);
}

static void *consumer_main(void *arg)
{
	struct wk_consumer *c = arg;
	int64_t next_measure = 0;
	rd_kafka_message_t **msgs = calloc((size_t)c->o.batch, sizeof(rd_kafka_message_t *));
	if (!msgs)
		return NULL;
	while (!stopping(c)) {
		size_t n = 0;
		int64_t window_end = 0;
		while (n < (size_t)c->o.batch) {
			/* After the first message: what has arrived already, and more while the window lasts.
			 * Without a window the batch is what arrived during the previous batch's commit, so it
			 * grows with the rate by itself and a lone job is stored at once. */
			int timeout = 100;
			if (n > 0) {
				int64_t left = window_end - cm_time_mono_us();
				timeout = left > 0 ? (int)(left / 1000) + 1 : 0;
			}
			rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout);
			if (!m)
				break;
			if (m->err) {
				if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					cm_log_warn("consumer: %s", rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
				continue;
			}
			cm_metric_add(&wk_m_consumed, 1);
			if (n == 0)
				window_end = cm_time_mono_us() + c->o.window_us;
			msgs[n++] = m;
		}
		if (cm_time_mono_us() >= next_measure) {
			measure_lag(c);
			next_measure = cm_time_mono_us() + CM_US_PER_SEC;
		}
		if (n > 0 && process(c, msgs, n) == -1 && !stopping(c))
			cm_log_warn("consumer: batch of %zu not stored; it will be redelivered", n);
		for (size_t i = 0; i < n; i++)
			rd_kafka_message_destroy(msgs[i]);
	}
	free(msgs);
	return NULL;
}

rd_kafka_conf_t *wk_consumer_conf(const struct wk_consumer_opts *opts, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = cm_kafka_conf_new(opts->brokers, opts->client_id, NULL, errstr, errstr_size);
	if (!conf)
		return NULL;
	/* Offsets are stored by hand after the database commit, and committed in the background.
	 * A dead worker's partitions are not consumed until its session times out: librdkafka's 45 s
	 * default held new jobs back for 45-90 s after a kill -9 (tests/chaos, worker-kill9); 10 s is
	 * well above the heartbeat (3 s), which librdkafka sends from its own thread.
	 * The prefetch is bounded (librdkafka keeps up to 100,000 messages or 64 MiB per queue, fetches of
	 * up to 50 MiB): with 100,000 envelopes waiting it held ~60 MiB of the worker's 73-75 MiB (bench w4k,
	 * massif). 20,000 messages, 16 MiB and 3 MiB fetches keep the peak at 56 MiB and the rate the same
	 * (docs/benchmarks.md); a batch stores at most 1,000.
 * A fetch request names the partitions that were fetchable when it was sent and the broker holds it
 * up to fetch.wait.max.ms when they have nothing: a partition started after it (the first fetch after
 * an assignment goes out with one of the three) waits for that. With librdkafka's 500 ms the first job
 * after a (re)assignment was stored 520-600 ms after its 202 (the next ones 7-10 ms); with 100 ms,
 * 120-180 ms. An idle worker sends 10 empty fetches a second instead of 2. -X overrides them all. */
	if (cm_kafka_conf_set(conf, "group.id", opts->group_id, errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "queued.min.messages", "20000", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "queued.max.messages.kbytes", "16384", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "fetch.max.bytes", "3145728", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "fetch.wait.max.ms", "100", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "enable.auto.commit", "true", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "auto.commit.interval.ms", "1000", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "session.timeout.ms", "10000", errstr, errstr_size) == -1 ||
	    cm_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr, errstr_size) == -1)
		goto err;
	for (size_t i = 0; opts->props && i < opts->props->n; i++)
		if (cm_kafka_conf_set(conf, opts->props->key[i], opts->props->val[i], errstr, errstr_size) == -1)
			goto err;
	return conf;
err:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

struct wk_consumer *wk_consumer_start(const struct wk_consumer_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_consumer *c = calloc(1, sizeof(*c));
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *subs = NULL;
	char err[512];
	if (!c) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	c->o = *opts;
	c->conn = cm_pg_connect(opts->pg_uri, "botjobs-worker:consumer", errstr, errstr_size);
	if (!c->conn)
		goto err;
	atomic_store(&c->db_ok, 1);
	conf = wk_consumer_conf(opts, errstr, errstr_size);
	if (!conf)
		goto err;
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_opaque(conf, c);
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!c->rk) {
		snprintf(errstr, errstr_size, "kafka consumer: %s", err);
		goto err;
	}
	conf = NULL; /* now owned by rk */
	rd_kafka_poll_set_consumer(c->rk);
	subs = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(subs, opts->topics->jobs, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (e) {
		snprintf(errstr, errstr_size, "subscribe %s: %s", opts->topics->jobs, rd_kafka_err2str(e));
		goto err;
	}
	if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
		snprintf(errstr, errstr_size, "cannot start the consumer thread");
		goto err;
	}
	return c;
err:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (c->rk)
		rd_kafka_destroy(c->rk);
	cm_pg_close(c->conn);
	free(c);
	return NULL;
}

/* Leaves the group and commits the stored offsets, but never waits more than CLOSE_TIMEOUT_US: with
 * Kafka unreachable the close cannot complete, and whatever was not committed is simply redelivered
 * (and stored again as nothing). */
#define CLOSE_TIMEOUT_US (10 * CM_US_PER_SEC)

void wk_consumer_stop(struct wk_consumer *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, 1);
	pthread_join(c->thread, NULL);
	rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
	rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, q);
	int closed = 0;
	if (e) {
		cm_log_warn("consumer: close: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	} else {
		int64_t deadline = cm_time_mono_us() + CLOSE_TIMEOUT_US;
		while (!(closed = rd_kafka_consumer_closed(c->rk)) && cm_time_mono_us() < deadline) {
			rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
			if (!ev)
				continue;
			if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
				/* Close hands the partitions back through this queue instead of the callback. */
				if (strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE") == 0) {
					rd_kafka_error_t *ue = rd_kafka_incremental_unassign(
						c->rk, rd_kafka_event_topic_partition_list(ev));
					if (ue)
						rd_kafka_error_destroy(ue);
				} else {
					rd_kafka_assign(c->rk, NULL);
				}
			}
			rd_kafka_event_destroy(ev);
		}
	}
	rd_kafka_queue_destroy(q);
	if (closed) {
		rd_kafka_destroy(c->rk);
	} else {
		cm_log_warn("consumer: Kafka did not confirm the close within %d s; uncommitted messages will be "
			    "redelivered (and stored as nothing)",
			    (int)(CLOSE_TIMEOUT_US / CM_US_PER_SEC));
		rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	}
	cm_pg_close(c->conn);
	free(c);
}
