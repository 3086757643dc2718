/*
 * pr_catalog.c - see pr_catalog.h. A snapshot is a set of hash maps built off to the side and
 * swapped in under a write lock; readers hold the read lock only for the lookup.
 */
#define _GNU_SOURCE /* ppoll */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_id.h"
#include "cm_log.h"
#include "cm_map.h"
#include "cm_pg.h"
#include "cm_time.h"
#include "pr_catalog.h"

/* Map keys: "t:<first 16 hex of the token's SHA-256>" -> index into tokens (the selector; the full
 * hash is then compared in constant time), "b:<bot>" -> business, "<kind>:<bot>:i:<id>" and
 * "<kind>:<bot>:c:<code>" -> 1. */
struct token {
	char hash[65];
	int64_t business_id;
	int64_t expires; /* epoch seconds, 0 = never */
};

struct snapshot {
	struct cm_map *m;
	struct token *tokens;
	size_t ntokens;
};

struct pr_catalog {
	char *pg_uri;
	int refresh_sec;
	PGconn *conn;
	pthread_t thread;
	pthread_rwlock_t lock;
	struct snapshot *snap;
	atomic_int stop;
	atomic_int ready;
	atomic_int want_reload;
	atomic_long loads;
};

static void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	cm_map_free(s->m);
	free(s->tokens);
	free(s);
}

static int put(struct cm_map *m, const char *key, int64_t v)
{
	return cm_map_put(m, key, v);
}

static struct snapshot *load(PGconn *c, char *errstr, size_t errstr_size)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	PGresult *r = NULL;
	char key[600];
	if (!s || !(s->m = cm_map_new(1024)))
		goto oom;
	if (cm_pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr, errstr_size) == -1)
		goto err;
	r = cm_pg_query(c,
			"SELECT token_hash, business_id, coalesce(extract(epoch FROM expires_at)::bigint, 0)"
			" FROM api_tokens WHERE revoked_at IS NULL",
			0, NULL, errstr, errstr_size);
	if (!r)
		goto err;
	s->tokens = calloc((size_t)PQntuples(r) + 1, sizeof(struct token));
	if (!s->tokens)
		goto oom;
	for (int i = 0; i < PQntuples(r); i++) {
		struct token *t = &s->tokens[s->ntokens];
		snprintf(t->hash, sizeof(t->hash), "%s", PQgetvalue(r, i, 0));
		if (strlen(t->hash) != 64)
			continue;
		t->business_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		t->expires = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		snprintf(key, sizeof(key), "t:%.16s", t->hash);
		if (put(s->m, key, (int64_t)s->ntokens++) == -1)
			goto oom;
	}
	PQclear(r);
	r = cm_pg_query(c, "SELECT id, business_id FROM bots", 0, NULL, errstr, errstr_size);
	if (!r)
		goto err;
	for (int i = 0; i < PQntuples(r); i++) {
		snprintf(key, sizeof(key), "b:%s", PQgetvalue(r, i, 0));
		if (put(s->m, key, strtoll(PQgetvalue(r, i, 1), NULL, 10)) == -1)
			goto oom;
	}
	PQclear(r);
	r = cm_pg_query(c,
			"SELECT 'script', bot_id, id, code FROM scripts UNION ALL"
			" SELECT 'trigger', bot_id, id, code FROM triggers UNION ALL"
			" SELECT 'broadcast', bot_id, id, code FROM broadcasts",
			0, NULL, errstr, errstr_size);
	if (!r)
		goto err;
	for (int i = 0; i < PQntuples(r); i++) {
		snprintf(key, sizeof(key), "%s:%s:i:%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
		if (put(s->m, key, 1) == -1)
			goto oom;
		snprintf(key, sizeof(key), "%s:%s:c:%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 3));
		if (put(s->m, key, 1) == -1)
			goto oom;
	}
	PQclear(r);
	r = NULL;
	cm_pg_exec_quiet(c, "COMMIT");
	return s;
oom:
	snprintf(errstr, errstr_size, "out of memory");
err:
	PQclear(r);
	cm_pg_exec_quiet(c, "ROLLBACK");
	snapshot_free(s);
	return NULL;
}

static int reload(struct pr_catalog *c)
{
	char err[512];
	if (!c->conn || cm_pg_broken(c->conn)) {
		if (!c->conn)
			c->conn = cm_pg_connect(c->pg_uri, "botjobs-producer:catalog", err, sizeof(err));
		else if (cm_pg_reset(c->conn, err, sizeof(err)) == -1) {
			cm_log_warn("catalog: database unavailable, serving the cached catalog: %s", err);
			return -1;
		}
		if (!c->conn) {
			cm_log_warn("catalog: database unavailable, serving the cached catalog: %s", err);
			return -1;
		}
		if (cm_pg_exec(c->conn, "LISTEN botjobs_catalog", err, sizeof(err)) == -1) {
			cm_log_warn("catalog: %s", err);
			return -1;
		}
	}
	struct snapshot *s = load(c->conn, err, sizeof(err));
	if (!s) {
		cm_log_warn("catalog: reload failed, serving the cached catalog: %s", err);
		return -1;
	}
	pthread_rwlock_wrlock(&c->lock);
	struct snapshot *old = c->snap;
	c->snap = s;
	pthread_rwlock_unlock(&c->lock);
	snapshot_free(old);
	if (!atomic_exchange(&c->ready, 1))
		cm_log_info("catalog: loaded (%zu entries)", cm_map_size(s->m));
	atomic_fetch_add(&c->loads, 1);
	return 0;
}

static void *catalog_main(void *arg)
{
	struct pr_catalog *c = arg;
	int64_t next = 0;
	int pause_ms = 200;
	while (!atomic_load(&c->stop)) {
		int64_t now = cm_time_mono_us();
		if (now >= next || atomic_exchange(&c->want_reload, 0)) {
			if (reload(c) == 0) {
				next = now + (int64_t)c->refresh_sec * CM_US_PER_SEC;
				pause_ms = 200;
			} else {
				next = now + (int64_t)pause_ms * 1000;
				pause_ms = pause_ms < 5000 ? pause_ms * 2 : pause_ms;
			}
		}
		if (c->conn && !cm_pg_broken(c->conn)) {
			struct pollfd p = {.fd = PQsocket(c->conn), .events = POLLIN};
			struct timespec ts = {0, 100 * 1000000L};
			ppoll(&p, 1, &ts, NULL);
			if (PQconsumeInput(c->conn)) {
				PGnotify *n;
				int changed = 0;
				while ((n = PQnotifies(c->conn))) {
					changed = 1;
					PQfreemem(n);
				}
				if (changed) {
					/* Let a burst of changes settle into one reload. */
					struct timespec d = {0, 20 * 1000000L};
					nanosleep(&d, NULL);
					atomic_store(&c->want_reload, 1);
				}
			}
		} else {
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

struct pr_catalog *pr_catalog_start(const char *pg_uri, int refresh_sec, char *errstr, size_t errstr_size)
{
	struct pr_catalog *c = calloc(1, sizeof(*c));
	if (!c || !(c->pg_uri = strdup(pg_uri))) {
		free(c);
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	c->refresh_sec = refresh_sec;
	pthread_rwlock_init(&c->lock, NULL);
	reload(c); /* may fail: not ready yet, the thread keeps trying */
	if (pthread_create(&c->thread, NULL, catalog_main, c) != 0) {
		snprintf(errstr, errstr_size, "cannot start the catalog thread");
		cm_pg_close(c->conn);
		free(c->pg_uri);
		free(c);
		return NULL;
	}
	return c;
}

void pr_catalog_stop(struct pr_catalog *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, 1);
	pthread_join(c->thread, NULL);
	cm_pg_close(c->conn);
	snapshot_free(c->snap);
	pthread_rwlock_destroy(&c->lock);
	free(c->pg_uri);
	free(c);
}

int pr_catalog_ready(struct pr_catalog *c)
{
	return atomic_load(&c->ready);
}

int pr_catalog_reload(struct pr_catalog *c, int timeout_ms)
{
	long before = atomic_load(&c->loads);
	atomic_store(&c->want_reload, 1);
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (atomic_load(&c->loads) > before)
			return 0;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int lookup(struct pr_catalog *c, const char *key, int64_t *val)
{
	pthread_rwlock_rdlock(&c->lock);
	int found = c->snap ? cm_map_get(c->snap->m, key, val) : 0;
	pthread_rwlock_unlock(&c->lock);
	return found;
}

int pr_catalog_auth(struct pr_catalog *c, const char *token, int64_t *business_id)
{
	char hex[65], key[24];
	int64_t idx;
	int ok = 0;
	cm_token_hash_hex(token, hex);
	snprintf(key, sizeof(key), "t:%.16s", hex);
	pthread_rwlock_rdlock(&c->lock);
	if (c->snap && cm_map_get(c->snap->m, key, &idx) && (size_t)idx < c->snap->ntokens) {
		const struct token *t = &c->snap->tokens[idx];
		ok = cm_ct_equal(t->hash, hex, 64) &&
		     (t->expires == 0 || t->expires > cm_time_now_us() / CM_US_PER_SEC);
		if (ok)
			*business_id = t->business_id;
	}
	pthread_rwlock_unlock(&c->lock);
	return ok;
}

int pr_catalog_bot(struct pr_catalog *c, int64_t bot_id, int64_t *business_id)
{
	char key[32];
	snprintf(key, sizeof(key), "b:%" PRId64, bot_id);
	return lookup(c, key, business_id);
}

int pr_catalog_target(struct pr_catalog *c, int64_t bot_id, enum cm_target_kind kind, int64_t id, const char *code)
{
	char key[400];
	if (code)
		snprintf(key, sizeof(key), "%s:%" PRId64 ":c:%s", cm_target_kind_name(kind), bot_id, code);
	else
		snprintf(key, sizeof(key), "%s:%" PRId64 ":i:%" PRId64, cm_target_kind_name(kind), bot_id, id);
	return lookup(c, key, NULL);
}
