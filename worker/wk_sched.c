/*
 * wk_sched.c - the due-time loop. See wk_sched.h.
 *
 * Precision: the thread sleeps in ppoll() on its PostgreSQL socket until the next due time (timer
 * slack set to 1 ns), so it wakes at that time or when a NOTIFY says an earlier job was stored.
 * There is no fixed poll interval; the 100 ms cap on one sleep only bounds how long a stop request
 * waits.
 *
 * Lookahead: the thread wakes --lookahead-ms before the next due time and claims the jobs due by then; the
 * run of each waits for its due time (wk_run_jobs). The claim (the claim lock, the claim, its commit: three
 * short round trips) and the state snapshot (one; together ~1-2 ms, more on a busy database) then happen
 * before the due time instead of after it; the completer (below) commits a batch while the next one is claimed and run. The
 * price: such a job is 'running' (its lead blocked) for up to that long before it starts, and a cancel
 * that reaches the database in that window no longer stops it (as for a run under way).
 */
#define _GNU_SOURCE /* ppoll */
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "cm_signal.h"
#include "cm_time.h"
#include "wk_metrics.h"
#include "wk_run.h"
#include "wk_sched.h"
#include "wk_store.h"

#define MAX_SLEEP_US 100000
#define RECHECK_US 1000000 /* re-read the next due time at least this often (clock changes, lost NOTIFY) */

struct wk_sched {
	struct wk_sched_opts o;
	pthread_t thread;
	pthread_t heartbeat;
	/* The jobs in hand (a JSON array of ids, NULL = none): the only leases the heartbeat extends. Jobs
	 * whose completion failed are dropped from it, so their leases run out and another worker (or this
	 * one) runs them again. */
	pthread_mutex_t hand_mu;
	char *in_hand[2]; /* HAND_RUNNING: the batch the scheduler runs; HAND_COMPLETING: the completer's */
	/* The completer: commits a run batch's results on its own connection while the scheduler claims and
	 * runs the next batch, so jobs that come due during a commit (an fsync) are claimed and started
	 * without waiting for it. One batch at a time: the scheduler waits for the previous one to commit
	 * before it hands over the next (done_mu/done_cv guard the slot). */
	pthread_t completer;
	pthread_mutex_t done_mu;
	pthread_cond_t done_cv;
	int done_full, done_quit, completer_started;
	struct wk_claimed *done_jobs;
	size_t done_n, done_m;
	struct wk_result *done_res;
	PGconn *done_conn;
	PGconn *conn;
	struct wk_runtime *rt;
	struct wk_host *host; /* over conn */
	atomic_int stop;
	atomic_int ready;
};

int wk_sched_ready(const struct wk_sched *s)
{
	return s && atomic_load(&s->ready);
}

static int stopping(struct wk_sched *s)
{
	return atomic_load(&s->stop) || cm_signal_stopping();
}

/*
 * LISTEN for new jobs, and do not wait for the WAL flush on this connection's own commits: a claim
 * (or a reaped lease) lost in a crash only leaves the job claimable again. Completions, which must be
 * durable, switch it back on for their transaction (wk_apply.c).
 *
 * Plans: the statements stay prepared (parsed once), but each execution is planned for the table as it
 * is then. A plan kept from when jobs was empty (a worker starts before the jobs arrive) scanned every
 * job for each claim candidate once the table had grown: one next-due query ran for minutes with 100,000
 * pending jobs (bench w4k). Planning costs ~0.3-0.5 ms per claim (EXPLAIN), a few µs per job of a full batch.
 */
static int listen_jobs(PGconn *c, char *errstr, size_t errstr_size)
{
	return cm_pg_exec(c,
			  "LISTEN " WK_NOTIFY_JOBS "; SET synchronous_commit = off;"
			  " SET plan_cache_mode = force_custom_plan",
			  errstr, errstr_size);
}

/* Reconnects after a lost connection, with a growing pause; returns when connected or stopping. */
static void reconnect(struct wk_sched *s)
{
	char err[512];
	int pause_ms = 100;
	atomic_store(&s->ready, 0);
	while (!stopping(s)) {
		if (cm_pg_reset(s->conn, err, sizeof(err)) == 0 && listen_jobs(s->conn, err, sizeof(err)) == 0) {
			cm_log_info("scheduler: database connection restored");
			atomic_store(&s->ready, 1);
			return;
		}
		cm_log_warn("scheduler: database unavailable, retrying in %d ms: %s", pause_ms, err);
		struct timespec ts = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
		if (pause_ms < 5000)
			pause_ms *= 2;
	}
}

/*
 * Sleeps until until_us (wall clock) or a notification. A "d:<µs>" payload lowers *next_due; any
 * other payload asks for *requery. Returns -1 when the connection broke.
 */
static int wait_until(struct wk_sched *s, int64_t until_us, int64_t *next_due, int *requery)
{
	int64_t wait = until_us - cm_time_now_us();
	if (wait > MAX_SLEEP_US)
		wait = MAX_SLEEP_US;
	if (wait > 0) {
		struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN};
		struct timespec ts = {(time_t)(wait / 1000000), (long)(wait % 1000000) * 1000};
		ppoll(&p, 1, &ts, NULL);
	}
	if (!PQconsumeInput(s->conn))
		return -1;
	PGnotify *n;
	while ((n = PQnotifies(s->conn))) {
		if (n->extra[0] == 'd' && n->extra[1] == ':') {
			int64_t due = strtoll(n->extra + 2, NULL, 10);
			if (due < *next_due)
				*next_due = due;
		} else {
			*requery = 1;
		}
		PQfreemem(n);
	}
	return 0;
}

enum { HAND_RUNNING, HAND_COMPLETING };

static void set_in_hand(struct wk_sched *s, int which, const struct wk_claimed *jobs, size_t n)
{
	char *text = NULL;
	if (n > 0) {
		json_t *ids = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(ids, json_string(jobs[i].job.job_id));
		text = json_dumps(ids, JSON_COMPACT);
		json_decref(ids);
	}
	pthread_mutex_lock(&s->hand_mu);
	free(s->in_hand[which]);
	s->in_hand[which] = text;
	pthread_mutex_unlock(&s->hand_mu);
}

/* The running batch's leases become the completer's. */
static void hand_over(struct wk_sched *s)
{
	pthread_mutex_lock(&s->hand_mu);
	free(s->in_hand[HAND_COMPLETING]);
	s->in_hand[HAND_COMPLETING] = s->in_hand[HAND_RUNNING];
	s->in_hand[HAND_RUNNING] = NULL;
	pthread_mutex_unlock(&s->hand_mu);
}

static int completer_conn_setup(PGconn *c, char *errstr, size_t errstr_size)
{
	return cm_pg_exec(c, "SET plan_cache_mode = force_custom_plan", errstr, errstr_size);
}

/* The run context over conn: the scheduler's runs with the runtime and host calls, the completer's without. */
static struct wk_run_ctx run_ctx(const struct wk_sched *s, PGconn *conn, int runs)
{
	return (struct wk_run_ctx){.conn = conn,
				   .rt = runs ? s->rt : NULL,
				   .host = runs ? s->host : NULL,
				   .worker_id = s->o.worker_id,
				   .events = s->o.events,
				   .max_attempts = s->o.max_attempts,
				   .retry_base_ms = s->o.retry_base_ms,
				   .bcast_chunk = s->o.bcast_chunk};
}

static void *completer_main(void *arg)
{
	struct wk_sched *s = arg;
	char err[1024];
	struct wk_run_ctx ctx = run_ctx(s, s->done_conn, 0);
	for (;;) {
		pthread_mutex_lock(&s->done_mu);
		while (!s->done_full && !s->done_quit)
			pthread_cond_wait(&s->done_cv, &s->done_mu);
		if (!s->done_full) { /* quit, and nothing left to commit */
			pthread_mutex_unlock(&s->done_mu);
			return NULL;
		}
		struct wk_claimed *jobs = s->done_jobs;
		struct wk_result *res = s->done_res;
		size_t n = s->done_n, m = s->done_m;
		pthread_mutex_unlock(&s->done_mu);

		/* The connection is found broken only when it is used (a PostgreSQL restart, a terminated
		 * backend while idle): then once more on a new one, or the runs would wait for their leases. */
		int rc = wk_apply_results(&ctx, res, m, err, sizeof(err)) < 0 ? -1 : 0;
		if (rc == -1 && cm_pg_broken(ctx.conn) && cm_pg_reset(ctx.conn, err, sizeof(err)) == 0 &&
		    completer_conn_setup(ctx.conn, err, sizeof(err)) == 0)
			rc = wk_apply_results(&ctx, res, m, err, sizeof(err)) < 0 ? -1 : 0;
		if (rc == -1)
			cm_log_warn("scheduler: completing %zu runs failed, they run again after their lease: %s", m,
				    err);
		wk_run_results_free(res, m);
		wk_claimed_free(jobs, n);
		set_in_hand(s, HAND_COMPLETING, NULL, 0); /* failed ones: their leases run out */
		pthread_mutex_lock(&s->done_mu);
		s->done_full = 0;
		pthread_cond_broadcast(&s->done_cv);
		pthread_mutex_unlock(&s->done_mu);
	}
}

/* Hands a run batch to the completer, once it has committed the previous one. */
static void complete_async(struct wk_sched *s, struct wk_claimed *jobs, size_t n, struct wk_result *res, size_t m)
{
	pthread_mutex_lock(&s->done_mu);
	while (s->done_full)
		pthread_cond_wait(&s->done_cv, &s->done_mu);
	hand_over(s);
	s->done_jobs = jobs;
	s->done_n = n;
	s->done_res = res;
	s->done_m = m;
	s->done_full = 1;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->done_mu);
}

static void *sched_main(void *arg)
{
	struct wk_sched *s = arg;
	char err[1024];
	int64_t next_due = 0, last_query = 0, last_reap = 0;
	int requery = 1, empty_claims = 0;
	const int64_t ahead = (int64_t)s->o.lookahead_ms * 1000;
	struct wk_run_ctx ctx = run_ctx(s, s->conn, 1);

	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on time, not up to 50 µs late */
	while (!stopping(s)) {
		int64_t now = cm_time_now_us();
		if (cm_pg_broken(s->conn)) {
			reconnect(s);
			requery = 1;
			continue;
		}
		if (now - last_reap > (int64_t)s->o.lease_sec * CM_US_PER_SEC / 3) {
			int n = 0;
			if (wk_store_reap(s->conn, s->o.max_attempts, &n, err, sizeof(err)) == -1)
				cm_log_warn("scheduler: reaping leases: %s", err);
			else if (n > 0) {
				cm_metric_add(&wk_m_leases_reaped, n);
				requery = 1;
			}
			last_reap = now;
		}
		if (requery || now - last_query > RECHECK_US) {
			if (wk_store_next_due(s->conn, &next_due, err, sizeof(err)) == -1) {
				cm_log_warn("scheduler: next due time: %s", err);
				next_due = now + MAX_SLEEP_US;
			}
			requery = 0;
			last_query = now;
		}
		if (next_due - ahead <= now) {
			struct wk_claimed *jobs = NULL;
			size_t n = 0;
			if (wk_store_claim(s->conn, s->o.worker_id, s->o.lease_sec, (size_t)s->o.batch,
					   s->o.lookahead_ms, s->o.events, &jobs, &n, err, sizeof(err)) == -1) {
				cm_log_warn("scheduler: claim: %s", err);
				wait_until(s, now + 50000, &next_due, &requery);
				requery = 1;
				continue;
			}
			if (n > 0) {
				empty_claims = 0;
				cm_metric_add(&wk_m_claimed, (long long)n);
				cm_metric_observe(&wk_m_claim_batch, (double)n);
				set_in_hand(s, HAND_RUNNING, jobs, n);
				struct wk_result *res = NULL;
				size_t m = 0;
				if (wk_run_jobs(&ctx, jobs, n, &res, &m, err, sizeof(err)) == -1)
					cm_log_warn(
						"scheduler: a broadcast chunk failed, it runs again after its lease: "
						"%s",
						err);
				if (m > 0) {
					complete_async(s, jobs, n, res, m);
				} else {
					set_in_hand(s, HAND_RUNNING, NULL, 0);
					wk_claimed_free(jobs, n);
				}
				requery = 1;
				continue;
			}
			/* Someone else took it, or it waits behind its lead's running job: look again, gently. */
			requery = 1;
			if (++empty_claims > 1)
				if (wait_until(s, now + 10000, &next_due, &requery) == -1)
					continue;
			continue;
		}
		if (wait_until(s, next_due - ahead, &next_due, &requery) == -1)
			continue; /* broken connection: reconnect at the top */
	}
	atomic_store(&s->ready, 0);
	/* The batch in the completer's hands commits before the thread ends (wk_sched_stop joins it). */
	return NULL;
}

/*
 * The lease heartbeat: every lease/3 it extends the leases this worker holds, on its own connection,
 * so a long run (slow api.* calls, a big broadcast chunk) is not taken over while it is alive. A dead
 * or stopped process stops beating, its leases expire, and another worker takes the jobs over; the
 * first, if it ever resumes, cannot commit (the lease token moved on).
 */
#define HOUSEKEEPING_LOCK "7474420003"
#define PRUNE_BATCH "5000"

/* Deletes finished jobs (not periodic ones waiting for their next run: those are 'scheduled') and run
 * history older than the retention, PRUNE_BATCH rows per transaction so no lock is held for long. One
 * worker at a time (an advisory lock); returns when nothing is left or after max_batches. */
static void housekeeping(struct wk_sched *s, PGconn *c, int max_batches)
{
	char err[512], days[16];
	snprintf(days, sizeof(days), "%d", s->o.retention_days);
	const char *p[] = {days};
	long jobs = 0, runs = 0;
	for (int i = 0; i < max_batches && !atomic_load(&s->stop); i++) {
		if (cm_pg_exec(c, "BEGIN", err, sizeof(err)) == -1)
			return;
		PGresult *r = cm_pg_query(c, "SELECT pg_try_advisory_xact_lock(" HOUSEKEEPING_LOCK ")", 0, NULL, err,
					  sizeof(err));
		int mine = r && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (!mine) {
			cm_pg_exec_quiet(c, "ROLLBACK");
			return; /* another worker is at it */
		}
		r = cm_pg_query(c,
				"WITH j AS (DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs"
				"   WHERE state IN ('done', 'failed', 'cancelled', 'skipped')"
				"   AND updated_at < now() - make_interval(days => $1::integer) LIMIT " PRUNE_BATCH
				") RETURNING 1),"
				" r AS (DELETE FROM job_runs WHERE id IN (SELECT id FROM job_runs"
				"   WHERE finished_at < now() - make_interval(days => $1::integer) LIMIT " PRUNE_BATCH
				") RETURNING 1)"
				" SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM r)",
				1, p, err, sizeof(err));
		if (!r) {
			cm_log_warn("housekeeping: %s", err);
			cm_pg_exec_quiet(c, "ROLLBACK");
			return;
		}
		long nj = atol(PQgetvalue(r, 0, 0)), nr = atol(PQgetvalue(r, 0, 1));
		PQclear(r);
		if (cm_pg_exec(c, "COMMIT", err, sizeof(err)) == -1)
			return;
		jobs += nj;
		runs += nr;
		if (nj + nr == 0)
			break;
	}
	if (jobs + runs > 0) {
		cm_metric_add(&wk_m_pruned, jobs);
		cm_log_info("housekeeping: deleted %ld finished job(s) and %ld run(s) older than %d day(s)", jobs, runs,
			    s->o.retention_days);
	}
}

static void *heartbeat_main(void *arg)
{
	struct wk_sched *s = arg;
	char err[512], lease[16];
	PGconn *c = NULL;
	snprintf(lease, sizeof(lease), "%d", s->o.lease_sec);
	int64_t period = (int64_t)s->o.lease_sec * CM_US_PER_SEC / 3, next = cm_time_mono_us() + period;
	int64_t next_housekeeping = cm_time_mono_us() + 5 * CM_US_PER_SEC;
	while (!atomic_load(&s->stop)) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
		int beat = cm_time_mono_us() >= next;
		int clean = s->o.retention_days > 0 && cm_time_mono_us() >= next_housekeeping;
		if (!beat && !clean)
			continue;
		if (!c || cm_pg_broken(c)) {
			cm_pg_close(c);
			c = cm_pg_connect(s->o.pg_uri, "botjobs-worker:heartbeat", err, sizeof(err));
			if (!c) {
				cm_log_warn("heartbeat: %s", err);
				next = cm_time_mono_us() + CM_US_PER_SEC;
				continue;
			}
		}
		if (clean) {
			housekeeping(s, c, 20);
			next_housekeeping = cm_time_mono_us() + (int64_t)s->o.housekeeping_sec * CM_US_PER_SEC;
		}
		if (!beat)
			continue;
		next = cm_time_mono_us() + period;
		for (int which = HAND_RUNNING; which <= HAND_COMPLETING; which++) {
			pthread_mutex_lock(&s->hand_mu);
			char *ids = s->in_hand[which] ? strdup(s->in_hand[which]) : NULL;
			pthread_mutex_unlock(&s->hand_mu);
			if (!ids)
				continue;
			const char *p[] = {s->o.worker_id, lease, ids};
			if (cm_pg_command(c,
					  "UPDATE jobs SET lease_until = clock_timestamp() + make_interval(secs => "
					  "$2::integer)"
					  " WHERE job_id IN (SELECT jsonb_array_elements_text($3::jsonb)::uuid)"
					  " AND lease_owner = $1 AND state = 'running'",
					  3, p, err, sizeof(err)) == -1)
				cm_log_warn("heartbeat: extending leases: %s", err);
			free(ids);
		}
	}
	cm_pg_close(c);
	return NULL;
}

static void stop_completer(struct wk_sched *s)
{
	if (!s->completer_started)
		return;
	pthread_mutex_lock(&s->done_mu);
	s->done_quit = 1;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->done_mu);
	pthread_join(s->completer, NULL);
	s->completer_started = 0;
}

struct wk_sched *wk_sched_start(const struct wk_sched_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_sched *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	s->o = *opts;
	pthread_mutex_init(&s->hand_mu, NULL);
	pthread_mutex_init(&s->done_mu, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	s->conn = cm_pg_connect(opts->pg_uri, "botjobs-worker:scheduler", errstr, errstr_size);
	if (!s->conn)
		goto err;
	s->done_conn = cm_pg_connect(opts->pg_uri, "botjobs-worker:completer", errstr, errstr_size);
	if (!s->done_conn || completer_conn_setup(s->done_conn, errstr, errstr_size) == -1)
		goto err;
	if (listen_jobs(s->conn, errstr, errstr_size) == -1)
		goto err;
	s->rt = wk_runtime_new(&opts->runtime, errstr, errstr_size);
	if (!s->rt)
		goto err;
	s->host = wk_host_new(s->conn, &opts->host, errstr, errstr_size);
	if (!s->host)
		goto err;
	atomic_store(&s->ready, 1);
	if (pthread_create(&s->completer, NULL, completer_main, s) != 0) {
		snprintf(errstr, errstr_size, "cannot start the completer thread");
		goto err;
	}
	s->completer_started = 1;
	if (pthread_create(&s->heartbeat, NULL, heartbeat_main, s) != 0) {
		snprintf(errstr, errstr_size, "cannot start the lease heartbeat thread");
		goto err;
	}
	if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
		snprintf(errstr, errstr_size, "cannot start the scheduler thread");
		atomic_store(&s->stop, 1);
		pthread_join(s->heartbeat, NULL);
		goto err;
	}
	return s;
err:
	stop_completer(s);
	wk_host_free(s->host);
	wk_runtime_free(s->rt);
	cm_pg_close(s->done_conn);
	cm_pg_close(s->conn);
	pthread_cond_destroy(&s->done_cv);
	pthread_mutex_destroy(&s->done_mu);
	pthread_mutex_destroy(&s->hand_mu);
	free(s);
	return NULL;
}

void wk_sched_stop(struct wk_sched *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	stop_completer(s); /* after the batch in its hands committed; the heartbeat kept its leases meanwhile */
	pthread_join(s->heartbeat, NULL);
	free(s->in_hand[HAND_RUNNING]);
	free(s->in_hand[HAND_COMPLETING]);
	pthread_cond_destroy(&s->done_cv);
	pthread_mutex_destroy(&s->done_mu);
	pthread_mutex_destroy(&s->hand_mu);
	wk_host_free(s->host);
	wk_runtime_free(s->rt);
	cm_pg_close(s->done_conn);
	cm_pg_close(s->conn);
	free(s);
}
