/*
 * wk_sched.h - the due-time loop: sleep until the next due job (or a NOTIFY about an earlier one),
 * claim a batch, run it, commit it, repeat. Also hands back expired leases of dead workers.
 *
 * One thread with its own PostgreSQL connection and runtime. Any number of these, in any number of
 * processes, share the work through the claim query; there is no coordinator.
 */
#ifndef WK_SCHED_H
#define WK_SCHED_H

#include <stddef.h>
#include "cm_compiler.h"
#include "wk_host.h"
#include "wk_runtime.h"

struct wk_sched_opts {
	const char *pg_uri;    /* borrowed for the life of the thread */
	const char *worker_id; /* borrowed */
	int lease_sec;
	int batch;
	int lookahead_ms; /* claim jobs due within this from now; each run still waits for its due time */
	int events;
	int max_attempts;
	int retry_base_ms;
	int bcast_chunk;      /* leads per broadcast chunk */
	int retention_days;   /* finished jobs and run history older than this are deleted (0 = keep) */
	int housekeeping_sec; /* how often to look for them */
	struct wk_runtime_opts runtime;
	struct wk_host_opts host; /* findLeads and api.* (host.api_allow_hosts borrowed until start returns) */
};

struct wk_sched;

/* Starts the thread. Fails only if the first connection or the runtime cannot be set up. */
struct wk_sched *wk_sched_start(const struct wk_sched_opts *opts, char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* Asks the thread to stop after its current batch, waits for it, frees it. NULL-safe. */
void wk_sched_stop(struct wk_sched *s);
/* 1 while the thread has a working database connection. */
int wk_sched_ready(const struct wk_sched *s);

#endif
