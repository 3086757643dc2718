/*
 * wk_events.h - the job lifecycle events of claims (job.started) and completions (job.done, job.failed,
 * job.skipped, job.cancelled), built by the worker and written as one outbox row per batch (wk_outbox.h) in
 * the transaction of the claim or the completion they announce.
 *
 * They were built in SQL (jsonb_build_object per job, jsonb_agg per batch) inside the claim and completion
 * statements: PostgreSQL then spent ~30 % more CPU per job in W1 than with events off (bench/profile.py:
 * 0.132 vs 0.101 ms). Here the batch's JSON text is written straight into a buffer (no jansson tree: that
 * cost the worker as much as it saved PostgreSQL), and PostgreSQL only parses one jsonb parameter per batch.
 * The message shapes are schemas/job-event.schema.json's; times have milliseconds, like botjobs_ts().
 */
#ifndef WK_EVENTS_H
#define WK_EVENTS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include "cm_buf.h"
#include "cm_compiler.h"
#include "wk_store.h"

/* A batch of events: the text of a JSON array of {"key", "payload"} (wk_outbox.h). Zero-initialize. */
struct wk_events {
	struct cm_buf text;
	size_t n;
	int oom; /* an allocation failed: the batch is unusable (wk_events_insert fails) */
};

/* Adds the job.started of claimed job c, started by worker; at = the later of now and its due time (a job
 * claimed ahead starts at its due time). */
void wk_events_started(struct wk_events *b, const struct wk_claimed *c, const char *worker, int64_t now_us);

struct wk_event_end {
	const char *job_id, *final; /* final: done, failed, skipped or cancelled */
	int64_t bot_id, lead_id;    /* lead_id 0: none */
	int run;
	int64_t due_us, started_us, finished_us, next_due_us; /* next_due_us: when state is scheduled */
	const char *error;				      /* NULL: none */
	const char *state;				      /* the job's state after the run */
};
/* Adds the event that ends a run. */
void wk_events_end(struct wk_events *b, const struct wk_event_end *e, int64_t now_us);

/* The batch's text (NUL-terminated; "[]" when empty), NULL after a failed allocation. */
const char *wk_events_text(struct wk_events *b);
/* Writes the batch as one outbox row in the caller's transaction (nothing when it is empty). */
int wk_events_insert(PGconn *c, struct wk_events *b, char *errstr, size_t errstr_size) CM_MUSTCHECK;
void wk_events_free(struct wk_events *b);

#endif
