/*
 * pr_store.h - the producer's PostgreSQL access for the read and cancel endpoints: a few threads,
 * each with its own connection, running tasks from a bounded queue. HTTP threads never wait on the
 * database: a handler defers its request and submits a task, and the task answers the request.
 */
#ifndef PR_STORE_H
#define PR_STORE_H

#include <libpq-fe.h>
#include <stddef.h>
#include "cm_compiler.h"

struct pr_store;

/* A task: runs on a store thread. conn is a working connection, or NULL when the database cannot
 * be reached (the task should answer 503). Owns arg. */
typedef void (*pr_store_fn)(PGconn *conn, void *arg);

/* threads connections, each with statement_timeout (ms) so one slow query cannot pile up work. */
struct pr_store *pr_store_start(const char *pg_uri, int threads, int statement_timeout_ms, int queue_max, char *errstr,
				size_t errstr_size) CM_MUSTCHECK;
/* Runs what is queued, stops the threads, frees. NULL-safe. */
void pr_store_stop(struct pr_store *s);
/* Queues fn(conn, arg). Returns -1 when the queue is full or the store is stopping (fn is not called). */
int pr_store_submit(struct pr_store *s, pr_store_fn fn, void *arg) CM_MUSTCHECK;

#endif
