/*
 * wk_runtime.h - where bot JavaScript runs: the worker asks, the runtime answers.
 *
 * The contract is wk_js.h's request/reply (a state snapshot in, effects out). Implementations:
 * the sandbox pool (pre-started, locked-down children with a watchdog; wk_sandbox.h), the default,
 * and in-process (MuJS called on the worker's own thread: a runaway script stalls the thread and a
 * crash takes the worker down; for unit tests and debugging). Callers do not know which one they use.
 */
#ifndef WK_RUNTIME_H
#define WK_RUNTIME_H

#include <jansson.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "wk_js.h"

struct wk_runtime_opts {
	struct wk_js_limits js;	  /* per-run limits */
	int timeout_ms;		  /* wall-clock limit of one run (sandbox only) */
	int sandbox;		  /* 1: the sandbox pool; 0 (as zeroed): in-process */
	const char *sandbox_path; /* botjobs-sandbox; NULL = next to the executable. Borrowed during new. */
	int sandbox_children;	  /* idle children kept ready */
	int sandbox_max_runs;	  /* runs per child before it is replaced */
};

struct wk_runtime;

struct wk_runtime *wk_runtime_new(const struct wk_runtime_opts *opts, char *errstr, size_t errstr_size) CM_MUSTCHECK;
void wk_runtime_free(struct wk_runtime *rt); /* NULL-safe */

/*
 * Runs one request (borrowed) and returns the reply (new reference, see wk_js.h); calls the code makes
 * to the outside world (findLeads, api.*) are answered by host (may be NULL). A reply with
 * outcome "failed" is a script error: the run failed. NULL means the runtime itself failed
 * (errstr set): an infrastructure error, and the run should be retried. A sandboxed run that times
 * out or crashes is a "failed" reply (wk_sandbox.h). Any number of threads may call it at once.
 */
json_t *wk_runtime_run(struct wk_runtime *rt, const json_t *req, const struct wk_js_host *host, char *errstr,
		       size_t errstr_size) CM_MUSTCHECK;

/*
 * Runs req (borrowed) once for each lead of leads (borrowed, an array of lead objects), as if each were
 * req with "lead" and context.leadId set to it (wk_js_lead_request), and appends one reply per lead to
 * replies, in order. Cheaper than a wk_runtime_run per lead through the sandbox (one exchange for
 * many runs). -1 (errstr set) as for wk_runtime_run's NULL: replies may hold some of them; run all again.
 */
int wk_runtime_run_leads(struct wk_runtime *rt, const json_t *req, const json_t *leads, const struct wk_js_host *host,
			 json_t *replies, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * Runs each request of reqs (borrowed, an array) with the host of the same index (hosts[i], may be NULL)
 * and appends one reply per request to replies, in order; each reply has "started_us" and "finished_us",
 * when its run started and ended (wall clock, µs). Cheaper than a wk_runtime_run each through the sandbox (one exchange).
 * -1 (errstr set) as for wk_runtime_run_leads.
 */
int wk_runtime_run_reqs(struct wk_runtime *rt, const json_t *reqs, const struct wk_js_host *const *hosts,
			json_t *replies, char *errstr, size_t errstr_size) CM_MUSTCHECK;

#endif
