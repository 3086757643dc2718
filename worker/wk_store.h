/*
 * wk_store.h - jobs in PostgreSQL: idempotent ingest, cancel, the next due time, batch claims with
 * leases and per-lead order, lease reaping, and completing runs together with their effects.
 *
 * Every function takes the caller's connection (one per thread) and writes one line into errstr on
 * failure. None of them opens or commits a transaction unless it says so.
 */
#ifndef WK_STORE_H
#define WK_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include "cm_compiler.h"
#include "cm_job.h"

#define WK_NOTIFY_JOBS "botjobs_jobs"

/* A claimed job: the stored job plus its lease. */
struct wk_claimed {
	struct cm_job job;    /* owned */
	int attempts;	      /* the lease token: completion must present it */
	int runs;	      /* runs finished before this one */
	int64_t bcast_cursor; /* broadcasts: the last lead done in this run, 0 = from the start */
};
void wk_claimed_free(struct wk_claimed *c, size_t n); /* frees the array and its jobs; NULL-safe */

/*
 * Stores schedule commands (idempotent by job_id: redelivery inserts nothing) and applies cancels
 * (a cancel that comes first leaves a tombstone the schedule cannot overwrite), in one transaction,
 * with a "scheduled" event per new job when events is set, and a NOTIFY with the earliest due time.
 * Borrows jobs and cancels. *inserted gets the number of new jobs.
 */
int wk_store_ingest(PGconn *c, const struct cm_job *jobs, size_t njobs, const struct cm_cancel *cancels,
		    size_t ncancels, int events, int *inserted, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* The same insert, inside the caller's transaction (new jobs from a run's effects), no NOTIFY.
 * jobs_json is an array of envelopes (borrowed). *min_due_us gets the earliest due time (or INT64_MAX). */
int wk_store_insert_envelopes(PGconn *c, const json_t *envelopes, int events, int *inserted, int64_t *min_due_us,
			      char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* The earliest due time of a job that could be claimed now or later (INT64_MAX when none). */
int wk_store_next_due(PGconn *c, int64_t *due_us, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * Claims up to max jobs due within lookahead_ms from now for worker (lease of lease_sec), in due order, at
 * most one per lead and only a lead's earliest pending job (so a lead's runs never overlap and keep due
 * order). One claim at a time across all workers (an advisory lock, wk_store.c: CLAIM_LOCK), so that no claim
 * misses another's. Commits. *out gets a new array of *n jobs (wk_claimed_free it). A job claimed ahead must
 * not start before its due_us (wk_run_jobs waits for it).
 */
int wk_store_claim(PGconn *c, const char *worker, int lease_sec, size_t max, int lookahead_ms, int events,
		   struct wk_claimed **out, size_t *n, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* Hands expired leases back (state scheduled), or fails jobs that used max_attempts. *n = count. */
int wk_store_reap(PGconn *c, int max_attempts, int *n, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* Hands claimed jobs back untouched (graceful shutdown). */
int wk_store_release(PGconn *c, const char *worker, const struct wk_claimed *jobs, size_t n, char *errstr,
		     size_t errstr_size) CM_MUSTCHECK;

#endif
