/*
 * wk_outbox.c - outbox -> Kafka. See wk_outbox.h.
 */
#define _GNU_SOURCE /* ppoll */
#include <jansson.h>
#include <poll.h>
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
#include "wk_batch.h"
#include "wk_kafka.h"
#include "wk_metrics.h"
#include "wk_outbox.h"

#define RELAY_LOCK "7474420002" /* advisory lock key: who relays */

struct wk_outbox {
	struct wk_outbox_opts o;
	PGconn *conn;
	pthread_t thread;
	atomic_int stop;
	int leader;
};

/* Waits up to ms for a NOTIFY. On a broken connection it just sleeps: the socket of a refused
 * reconnect polls as ready at once, and the relay's back-off became a busy loop (a worker whose
 * PostgreSQL had gone spun at 73 % CPU). */
static void wait_notify(struct wk_outbox *o, int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	if (cm_pg_broken(o->conn)) {
		nanosleep(&ts, NULL);
		return;
	}
	struct pollfd p = {.fd = PQsocket(o->conn), .events = POLLIN};
	ppoll(&p, 1, &ts, NULL);
	PQconsumeInput(o->conn);
	PGnotify *n;
	while ((n = PQnotifies(o->conn)))
		PQfreemem(n);
}

/* Messages produced in one pass, at most: librdkafka's queue holds 100,000 by default. */
#define PASS_MESSAGES_MAX 20000
/*
 * Stored payload bytes read in one pass, about (the first row is always read): a batch row holds up to a
 * consume batch's events (~300 bytes each), so 1,000 rows could be hundreds of MB of text in one result,
 * of which a pass uses at most PASS_MESSAGES_MAX messages (after an outage at a high ingest rate).
 */
#define PASS_BYTES_MAX "2097152"

/* Produces a batch row's messages with the batch reader (wk_batch.h): how many, -1 when they are more
 * than room, -2 when the reader does not read the text (nothing produced: the caller parses it). */
static int produce_batch(struct wk_outbox *o, const char *topic, const char *text, size_t len, _Atomic int *status,
			 int room)
{
	struct wk_batch b;
	struct wk_batch_msg m;
	int n = wk_batch_count(text, len);
	if (n == -1)
		return -2;
	if (n > room)
		return -1;
	char *key = malloc(len + 1), *value = malloc(len + 1); /* each part of the text is shorter */
	if (!key || !value) {
		free(key);
		free(value);
		return -2;
	}
	wk_batch_init(&b, text, len);
	for (int k = 0; k < n && wk_batch_next(&b, &m) == 1; k++) {
		if (m.key) {
			memcpy(key, m.key, m.key_len);
			key[m.key_len] = '\0';
		}
		size_t vlen = wk_batch_compact(m.payload, m.payload_len, value);
		wk_kafka_produce(o->o.producer, topic, m.key ? key : NULL, value, vlen, &status[k]);
	}
	free(key);
	free(value);
	return n;
}

/* Produces row i of r: one message, or each of a batch row's messages. Returns how many messages it
 * produced into status[0..) (at most room), or -1 for a row that is not a valid batch (logged; it is
 * produced as one message, as it was written). */
static int produce_row(struct wk_outbox *o, PGresult *r, int i, _Atomic int *status, int room)
{
	const char *topic = strcmp(PQgetvalue(r, i, 1), "outbound") == 0 ? o->o.topics->outbound : o->o.topics->events;
	const char *payload = PQgetvalue(r, i, 3);
	if (!PQgetisnull(r, i, 2) || payload[0] != '[') {
		wk_kafka_produce(o->o.producer, topic, PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2), payload,
				 (size_t)PQgetlength(r, i, 3), &status[0]);
		return 1;
	}
	int k = produce_batch(o, topic, payload, (size_t)PQgetlength(r, i, 3), status, room);
	if (k != -2)
		return k;
	/* A shape the batch reader does not read: the same messages the slow way. */
	cm_metric_add(&wk_m_outbox_parsed, 1);
	json_t *batch = json_loads(payload, 0, NULL);
	if (!json_is_array(batch) || json_array_size(batch) > (size_t)room) {
		json_decref(batch);
		return -1;
	}
	size_t n;
	json_t *m;
	json_array_foreach(batch, n, m)
	{
		char *text = json_dumps(json_object_get(m, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
		if (text)
			wk_kafka_produce(o->o.producer, topic, json_string_value(json_object_get(m, "key")), text,
					 strlen(text), &status[n]);
		else
			atomic_store(&status[n], WK_DR_FAILED);
		free(text);
	}
	json_decref(batch);
	return (int)n;
}

/* One pass: relays up to batch rows, waiting up to wait_ms for Kafka's acks. Returns rows relayed, or
 * -1 on a database or Kafka failure (unacknowledged rows stay for the next pass). */
static int relay_once(struct wk_outbox *o, int wait_ms)
{
	char err[1024];
	int rc = -1;
	_Atomic int *status = NULL;
	int *ends = NULL; /* row i's messages are status[ends[i-1] .. ends[i]) */
	if (cm_pg_exec(o->conn, "BEGIN", err, sizeof(err)) == -1)
		goto fail;
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", o->o.batch);
	const char *p[] = {lim, PASS_BYTES_MAX};
	/* pg_column_size: the stored (compressed) size, read without detoasting the payload. */
	static const char PICK_SQL[] =
		"SELECT id, topic, key, payload::text FROM outbox WHERE id IN ("
		"  SELECT id FROM (SELECT id, pg_column_size(payload) AS size,"
		"                         sum(pg_column_size(payload)) OVER (ORDER BY id) AS upto"
		"                  FROM outbox ORDER BY id LIMIT $1::integer) x"
		"  WHERE upto - size < $2::bigint)"
		" ORDER BY id FOR UPDATE";
	PGresult *r = cm_pg_query_prepared(o->conn, "bj_outbox_pick", PICK_SQL, 2, p, err, sizeof(err));
	if (!r)
		goto rollback;
	int n = PQntuples(r);
	if (n == 0) {
		PQclear(r);
		cm_pg_exec_quiet(o->conn, "COMMIT");
		return 0;
	}
	status = calloc(PASS_MESSAGES_MAX, sizeof(*status));
	ends = calloc((size_t)n, sizeof(*ends));
	if (!status || !ends) {
		PQclear(r);
		goto rollback;
	}
	/* Rows in id order until the pass is full (a row that does not fit waits for the next pass; a
	 * first row always fits: a batch row holds at most a claim's or a completion's events). */
	int rows = 0, msgs = 0;
	for (; rows < n; rows++) {
		int k = produce_row(o, r, rows, status + msgs, PASS_MESSAGES_MAX - msgs);
		if (k == -1 && msgs == 0) {
			cm_log_error("outbox: row %s is a batch that is not a JSON array of at most %d messages;"
				     " produced as one message",
				     PQgetvalue(r, rows, 0), PASS_MESSAGES_MAX);
			wk_kafka_produce(o->o.producer, o->o.topics->events, NULL, PQgetvalue(r, rows, 3),
					 (size_t)PQgetlength(r, rows, 3), &status[0]);
			k = 1;
		}
		if (k == -1)
			break;
		msgs += k;
		ends[rows] = msgs;
	}
	n = rows;
	wk_kafka_wait(o->o.producer, status, (size_t)msgs, wait_ms);
	/* Delete what Kafka acknowledged, up to the first failure, so that order per key holds. */
	json_t *ids = json_array();
	int delivered = 0, m = 0;
	for (int i = 0; i < n; i++, delivered++) {
		while (m < ends[i] && atomic_load(&status[m]) == WK_DR_OK)
			m++;
		if (m < ends[i])
			break;
		json_array_append_new(ids, json_integer(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
	}
	PQclear(r);
	char *text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	const char *dp[] = {text};
	static const char DELETE_SQL[] =
		"DELETE FROM outbox WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)";
	PGresult *dr = delivered > 0
			       ? cm_pg_query_prepared(o->conn, "bj_outbox_delete", DELETE_SQL, 1, dp, err, sizeof(err))
			       : NULL;
	int bad = delivered > 0 && !dr;
	PQclear(dr);
	free(text);
	if (bad)
		goto rollback;
	if (cm_pg_exec(o->conn, "COMMIT", err, sizeof(err)) == -1)
		goto fail;
	cm_metric_add(&wk_m_outbox_relayed, delivered ? ends[delivered - 1] : 0);
	if (delivered < n) {
		cm_log_warn("outbox: %d of %d row(s) not acknowledged by Kafka; they stay and are retried",
			    n - delivered, n);
		goto fail_nolog;
	}
	free(status);
	free(ends);
	return n;
rollback:
	cm_pg_exec_quiet(o->conn, "ROLLBACK");
fail:
	cm_log_warn("outbox: %s", err);
fail_nolog:
	free(status);
	free(ends);
	return rc;
}

static int become_leader(struct wk_outbox *o)
{
	char err[512];
	PGresult *r = cm_pg_query(o->conn, "SELECT pg_try_advisory_lock(" RELAY_LOCK ")", 0, NULL, err, sizeof(err));
	if (!r)
		return 0;
	int got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (got)
		cm_log_info("outbox: this worker now relays the outbox");
	return got;
}

/* The relaying worker reports the outbox backlog (the others report 0: only one number counts).
 * payload::json: the same query before and after 009_outbox_json (jsonb -> json). */
static void measure_backlog(struct wk_outbox *o)
{
	char err[256];
	PGresult *r = cm_pg_query(o->conn,
				  "SELECT coalesce(sum(CASE WHEN key IS NULL AND json_typeof(payload::json) = 'array'"
				  " THEN json_array_length(payload::json) ELSE 1 END), 0) FROM outbox",
				  0, NULL, err, sizeof(err));
	if (r) {
		cm_metric_set(&wk_m_outbox_backlog, atoll(PQgetvalue(r, 0, 0)));
		PQclear(r);
	} else {
		cm_log_warn("outbox: backlog not measured: %s", err);
	}
}

static void *outbox_main(void *arg)
{
	struct wk_outbox *o = arg;
	char err[512];
	int pause = 100;
	int64_t next_measure = 0;
	for (;;) {
		int stop = atomic_load(&o->stop);
		if (cm_pg_broken(o->conn)) {
			o->leader = 0;
			if (stop)
				break;
			if (cm_pg_reset(o->conn, err, sizeof(err)) == -1 ||
			    cm_pg_exec(o->conn, "LISTEN botjobs_outbox", err, sizeof(err)) == -1) {
				wait_notify(o, pause);
				pause = pause < 5000 ? pause * 2 : pause;
				continue;
			}
		}
		if (!o->leader && !(o->leader = become_leader(o))) {
			if (stop)
				break;
			wait_notify(o, 1000); /* standby: the leader's session ending frees the lock */
			continue;
		}
		if (cm_time_mono_us() >= next_measure) {
			measure_backlog(o);
			next_measure = cm_time_mono_us() + 5 * CM_US_PER_SEC;
		}
		/* Stopping: one last pass, but do not wait long for a Kafka that is not there. */
		int n = relay_once(o, stop ? 5000 : 60000);
		if (n > 0 && !(stop && n < o->o.batch)) {
			pause = 100;
			continue; /* more may be waiting */
		}
		if (stop)
			break; /* the last pass found nothing (or failed): done */
		if (n < 0) {
			wait_notify(o, pause);
			pause = pause < 5000 ? pause * 2 : pause;
		} else {
			wait_notify(o, 100);
		}
	}
	return NULL;
}

struct wk_outbox *wk_outbox_start(const struct wk_outbox_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_outbox *o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	o->o = *opts;
	o->conn = cm_pg_connect(opts->pg_uri, "botjobs-worker:outbox", errstr, errstr_size);
	if (!o->conn || cm_pg_exec(o->conn, "LISTEN botjobs_outbox", errstr, errstr_size) == -1)
		goto err;
	if (pthread_create(&o->thread, NULL, outbox_main, o) != 0) {
		snprintf(errstr, errstr_size, "cannot start the outbox thread");
		goto err;
	}
	return o;
err:
	cm_pg_close(o->conn);
	free(o);
	return NULL;
}

void wk_outbox_stop(struct wk_outbox *o)
{
	if (!o)
		return;
	atomic_store(&o->stop, 1);
	pthread_join(o->thread, NULL);
	cm_metric_set(&wk_m_outbox_backlog, 0);
	cm_pg_close(o->conn); /* ends the session: the advisory lock goes to a standby */
	free(o);
}
