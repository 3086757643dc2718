/*
 * wk_run.h - one batch of claimed jobs: load each job's state, run its code, and commit the outcomes
 * and effects of the whole batch in one transaction (wk_apply.c).
 *
 * A run (SPEC §3): load lead/ticket/bot state -> condition_script_code (false = skipped) ->
 * remove_tags, add_tags -> the target -> effects committed with the job's completion, a job_runs
 * row, events and outbound messages (through the outbox). A run whose lease was lost commits nothing.
 */
#ifndef WK_RUN_H
#define WK_RUN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include "cm_compiler.h"
#include "wk_host.h"
#include "wk_runtime.h"
#include "wk_store.h"

struct wk_run_ctx {
	PGconn *conn;	       /* borrowed */
	struct wk_runtime *rt; /* borrowed */
	struct wk_host *host;  /* answers findLeads and api.*, bound to each job's bot (borrowed, may be NULL) */
	const char *worker_id; /* lease owner */
	int events;	       /* write job lifecycle events */
	int max_attempts;      /* infrastructure retries before a job fails */
	int retry_base_ms;     /* first retry delay; doubles per attempt, with jitter */
	int bcast_chunk;       /* leads per broadcast chunk */
};

enum wk_outcome { WK_DONE, WK_FAILED, WK_SKIPPED, WK_CANCELLED, WK_RETRY };

struct wk_result {
	struct wk_claimed *claimed; /* borrowed */
	enum wk_outcome outcome;
	char error[1200];
	int error_line;
	json_t *reply;	  /* the runtime's reply, owned (NULL unless the code ran) */
	json_t *snapshot; /* the loaded state, owned */
	int64_t started_us, finished_us;
};

const char *wk_outcome_name(enum wk_outcome o);

/*
 * Runs jobs[0..n), each at or after its due time: a broadcast's next chunk commits at once (its own
 * transaction); the others' results go to *out (*m of them, each pointing into jobs; NULL when none) for
 * wk_apply_results, which may run on another thread and connection. Returns -1 when something could not
 * run or commit (those jobs stay leased and run again when their lease expires), else 0.
 */
int wk_run_jobs(const struct wk_run_ctx *ctx, struct wk_claimed *jobs, size_t n, struct wk_result **out, size_t *m,
		char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* Frees what wk_run_jobs returned (not the jobs). NULL-safe. */
void wk_run_results_free(struct wk_result *res, size_t m);

/* Loads the snapshots (bot, lead, ticket, target) of res[0..n) in one query. */
int wk_run_snapshots(const struct wk_run_ctx *ctx, struct wk_result *res, size_t n, char *errstr,
		     size_t errstr_size) CM_MUSTCHECK;
/* The same for one result. */
int wk_run_snapshot(const struct wk_run_ctx *ctx, struct wk_result *r, char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* The runtime request for job j on this state (lead and ticket may be NULL). A new reference. */
json_t *wk_run_request(const struct cm_job *j, const json_t *bot, const json_t *lead, const json_t *ticket,
		       const json_t *target);
/*
 * The end of the group of res[i..m) that runs in one exchange at time now (the first's due time or later):
 * res[i] and the jobs after it that are due by now and of its bot (a frame never mixes bots). > i.
 */
size_t wk_run_group_end(const struct wk_result *res, size_t i, size_t m, int64_t now);
/* "trigger 'demo_echo'" or "script 3". Returns buf. */
const char *wk_run_label(const struct cm_job *j, char *buf, size_t n);

/* wk_bcast.c: one chunk of a claimed broadcast job: its next leads run, their effects and the new
 * checkpoint commit together. Returns 0 when committed (or the lease was lost), -1 on a database error
 * (nothing committed; the job runs again after its lease). */
int wk_bcast_chunk(const struct wk_run_ctx *ctx, struct wk_claimed *job, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* wk_apply.c: commits results (one transaction, a savepoint per job). Returns committed count or -1 (nothing
 * committed, or the connection broke while it committed). Applying again is safe: a result whose lease is
 * gone (it committed already) changes nothing. */
int wk_apply_results(const struct wk_run_ctx *ctx, struct wk_result *res, size_t n, char *errstr,
		     size_t errstr_size) CM_MUSTCHECK;

#endif
