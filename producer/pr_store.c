/*
 * pr_store.c - see pr_store.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "pr_store.h"

struct task {
	pr_store_fn fn;
	void *arg;
	struct task *next;
};

struct pr_store {
	char *pg_uri;
	int statement_timeout_ms;
	int queue_max, queued;
	struct task *head, *tail;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
	int nthreads;
	pthread_t *threads;
};

static PGconn *connect_one(struct pr_store *s)
{
	char err[512], set[96];
	PGconn *c = cm_pg_connect(s->pg_uri, "botjobs-producer:store", err, sizeof(err));
	if (!c) {
		cm_log_warn("store: %s", err);
		return NULL;
	}
	snprintf(set, sizeof(set), "SET statement_timeout = %d", s->statement_timeout_ms);
	if (cm_pg_exec(c, set, err, sizeof(err)) == -1) {
		cm_log_warn("store: %s", err);
		cm_pg_close(c);
		return NULL;
	}
	return c;
}

static void *store_main(void *arg)
{
	struct pr_store *s = arg;
	PGconn *conn = NULL;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->cv, &s->mu);
		struct task *t = s->head;
		if (!t) {
			pthread_mutex_unlock(&s->mu);
			break; /* stopping and nothing left */
		}
		s->head = t->next;
		if (!s->head)
			s->tail = NULL;
		s->queued--;
		pthread_mutex_unlock(&s->mu);

		if (conn && cm_pg_broken(conn)) {
			char err[256];
			if (cm_pg_reset(conn, err, sizeof(err)) == -1) {
				cm_pg_close(conn);
				conn = NULL;
			}
		}
		if (!conn)
			conn = connect_one(s);
		t->fn(conn, t->arg);
		free(t);
	}
	cm_pg_close(conn);
	return NULL;
}

struct pr_store *pr_store_start(const char *pg_uri, int threads, int statement_timeout_ms, int queue_max, char *errstr,
				size_t errstr_size)
{
	struct pr_store *s = calloc(1, sizeof(*s));
	if (!s || !(s->pg_uri = strdup(pg_uri)) || !(s->threads = calloc((size_t)threads, sizeof(pthread_t)))) {
		if (s)
			free(s->pg_uri);
		free(s);
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	s->statement_timeout_ms = statement_timeout_ms;
	s->queue_max = queue_max;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&s->threads[i], NULL, store_main, s) != 0) {
			snprintf(errstr, errstr_size, "cannot start store threads");
			s->nthreads = i;
			pr_store_stop(s);
			return NULL;
		}
	}
	s->nthreads = threads;
	return s;
}

void pr_store_stop(struct pr_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->threads);
	free(s->pg_uri);
	free(s);
}

int pr_store_submit(struct pr_store *s, pr_store_fn fn, void *arg)
{
	struct task *t = malloc(sizeof(*t));
	if (!t)
		return -1;
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->stopping || s->queued >= s->queue_max) {
		pthread_mutex_unlock(&s->mu);
		free(t);
		return -1;
	}
	if (s->tail)
		s->tail->next = t;
	else
		s->head = t;
	s->tail = t;
	s->queued++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}
