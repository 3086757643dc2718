/*
 * wk_sandbox.h - the sandbox pool: bot JavaScript runs in pre-started, locked-down child processes
 * (bin/botjobs-sandbox, sources in sandbox/), never in the worker itself (SPEC §4).
 *
 * The pool, in the worker
 *   - starts its children with posix_spawn (never a bare fork of the multi-threaded worker: only the
 *     C library's own async-signal-safe steps run between its clone and the exec) and keeps
 *     `children` of them idle and ready. A child serves one run at a time and up to `max_runs` runs;
 *     then it is retired (that bounds its memory growth) and a fresh one takes its place.
 *   - watches every run: a run that takes longer than timeout_ms gets its child SIGKILLed and fails
 *     with "<name>: timed out after N ms". The clock stops while the worker answers the run's host
 *     calls (findLeads, api.*), which have their own limits. A child that dies (a signal, an exit)
 *     fails only its own run ("<name>: the sandbox crashed (signal 11, SIGSEGV)"); a child that
 *     breaks the protocol is killed and its run fails. Each is replaced at once.
 *   - is thread-safe: any number of threads may call wk_sandbox_run at the same time (a mutex guards
 *     the free list). A caller that finds no idle child starts one; a child coming back to a full
 *     free list is retired.
 *
 * A child (sandbox/main.c) gets fd 0 and 1 on /dev/null, fd 2 the worker's stderr, fd 3 the
 * protocol socket and fd 4 its lifeline: the read end of a pipe of its own whose write end only the
 * pool holds. When the worker process goes away for any reason, that end closes and the child gets
 * SIGIO, which kills it even in a busy loop. It gets no environment but the
 * sanitizers' options. Before it greets, it sets RLIMIT_CORE 0 and RLIMIT_AS (a backstop behind
 * the MuJS allocator cap), PR_SET_NO_NEW_PRIVS and a seccomp allow-list: no open, socket,
 * connect, execve, fork or clone, nothing on other file descriptors (sandbox/sb_jail.c).
 *
 * The protocol, version WK_SANDBOX_PROTO: frames of cm_frame.h (a 4-byte big-endian length, then
 * that many bytes of JSON; at most WK_SANDBOX_FRAME_MAX in either direction) over the socket.
 *   child -> parent, once, when ready:   {"type":"hello","v":3,"pid":1234}
 *       Another "v" (a binary of another release), no hello within 10 s, or anything else first:
 *       the child is refused (killed) and replaced.
 *   parent -> child, one run:            {"type":"run","v":3,"host":true,"req":{…the wk_js.h request…}}
 *       "host" false means the caller has no host: findLeads and api.* say "not available here".
 *   child -> parent, during the run, for each bot.findLeads or api.* call (wk_js.h):
 *                                        {"type":"call","method":"findLeads","args":{…}}
 *       parent -> child, the answer:     {"type":"result","result":<JSON>}  or  {"type":"error","error":"one line"}
 *       then the child continues the run. More calls than the run's calls_max is a protocol error.
 *   child -> parent, the end of the run: {"type":"reply","reply":{…the wk_js.h reply…}}
 *       The reply must be an object whose "outcome" is "done", "skipped" or "failed".
 *   parent -> child, the runs of many requests (the due jobs of a claim), a non-empty array:
 *                                        {"type":"run","v":3,"host":true,"reqs":[{…request…}, …]}
 *       Each runs in order; "host" is true when any of them has a host (a call from one without gets
 *       "not available here"). Each reply (in "replies" frames, below) gets "started_us": when that run
 *       started, on the child's wall clock (the parent keeps it between the run frame and the reply).
 *   parent -> child, one run per lead (a broadcast's chunk), a non-empty array of leads:
 *                                        {"type":"run","v":3,"host":true,"req":{…},"leads":[{…lead…}, …]}
 *       Each lead runs in order as req with "lead" and context.leadId set to it (wk_js_lead_request).
 *   child -> parent, then (as for reqs), instead of "reply": the replies of the next leads, in order, held at
 *       most 1 ms after the first of them was ready, always sent before a call frame and right after
 *       the reply of a run that made a call (so after a call the next reply is the caller's):
 *                                        {"type":"replies","replies":[{…reply…}, …]}
 *       until every lead has one. The run's time limit counts again from each "replies" frame (a lead
 *       may thus get up to 1 ms less), and its calls_max is per lead.
 *   A frame over the cap or not a JSON object, an unknown "type" or a malformed one is a protocol
 *   error: the child is killed and the run fails. A host result too large for a frame is answered
 *   as an error; a reply too large is replaced by the child with a failed one. The child exits 0
 *   when the socket closes (that is how the pool retires it), 3 when the parent breaks the protocol.
 */
#ifndef WK_SANDBOX_H
#define WK_SANDBOX_H

#include <jansson.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "wk_js.h"

#define WK_SANDBOX_PROTO 3
#define WK_SANDBOX_FRAME_MAX ((size_t)32 << 20)
#define WK_SANDBOX_BINARY "botjobs-sandbox"
#define WK_SANDBOX_FD 3	       /* the protocol socket, in the child */
#define WK_SANDBOX_LIFELINE 4  /* the lifeline pipe's read end, in the child */
#define WK_SANDBOX_PARTS_MAX 4 /* wk_sandbox_run_leads: children that share one call's leads, at most */
#define WK_SANDBOX_PART_MIN 64 /* and leads per child, at least */

struct wk_sandbox_opts {
	const char *path;	/* the binary; NULL or "" = botjobs-sandbox next to /proc/self/exe. Borrowed. */
	int children;		/* idle children kept ready, >= 1 */
	int max_runs;		/* runs a child serves before it is retired, >= 1 */
	int timeout_ms;		/* time limit of one run, >= 1 */
	struct wk_js_limits js; /* per-run limits, given to every child */
};

/* Counters since wk_sandbox_new (for tests, benchmarks and logs). */
struct wk_sandbox_stats {
	unsigned long spawned;	       /* children started */
	unsigned long runs;	       /* runs that got a reply */
	unsigned long retired;	       /* children retired after max_runs, or surplus */
	unsigned long timeouts;	       /* children killed by the watchdog */
	unsigned long crashes;	       /* children that died during a run */
	unsigned long protocol_errors; /* children killed for breaking the protocol */
	unsigned long refused;	       /* children that never greeted properly */
	int idle;		       /* children ready now */
};

struct wk_sandbox;

/*
 * Starts opts->children children and waits for their greetings, so a missing or wrong binary is
 * a start-up error. Fails with one line in errstr. opts is copied.
 */
struct wk_sandbox *wk_sandbox_new(const struct wk_sandbox_opts *opts, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * Closes every idle child (they exit 0), waits a little for them, kills the rest. NULL-safe.
 * No run may be in progress.
 */
void wk_sandbox_free(struct wk_sandbox *sb);

/*
 * Runs one request (borrowed) in a child and returns the reply (a new reference, wk_js.h). host
 * (borrowed, may be NULL) answers the run's host calls, on the calling thread; their method and
 * args come from the child, which may have been subverted, so the host checks them as untrusted
 * input (an unknown method gets an error answer). A timeout, a crash or a protocol error is a
 * reply with outcome "failed" and the reason in "error": the run failed and retrying would not help. NULL (errstr set) means no child could be had: an
 * infrastructure error, the run should be retried later.
 */
json_t *wk_sandbox_run(struct wk_sandbox *sb, const json_t *req, const struct wk_js_host *host, char *errstr,
		       size_t errstr_size) CM_MUSTCHECK;

/*
 * Runs req (borrowed) once for each lead of leads (borrowed, an array; see the "leads" run frame)
 * and appends the replies to replies, in order: one frame to a child and a few back, instead of a
 * round trip per lead. With enough leads they are shared among up to `children` children at once
 * (WK_SANDBOX_PARTS_MAX, WK_SANDBOX_PART_MIN each), one thread each; host calls are then answered one
 * at a time, so host need not be thread-safe but may be called from those threads. Each run is watched and fails alone as in wk_sandbox_run; after a time-out,
 * crash or protocol error the leads still without a reply run one by one (a lead that had made a host
 * call gets the failure, its call is not made again). Returns 0, or -1 (errstr set) when no child
 * could be had: some replies may have been appended; the caller runs them all again later.
 */
/*
 * Runs each request of reqs (borrowed, a non-empty array) with the host of the same index (hosts, borrowed,
 * entries may be NULL) and appends one reply per request to replies, in order: the due jobs of a claim in
 * one frame (the "reqs" run frame). Each reply has "started_us", when its run started (wall clock, µs;
 * the child's word, kept between the run frame and the reply's arrival), and "finished_us" (the arrival). Each run is watched and fails
 * alone as in wk_sandbox_run, with the same fall-back as wk_sandbox_run_leads. Returns 0, or -1 (errstr
 * set) when no child could be had: some replies may have been appended; the caller runs them all again.
 */
int wk_sandbox_run_reqs(struct wk_sandbox *sb, const json_t *reqs, const struct wk_js_host *const *hosts,
			json_t *replies, char *errstr, size_t errstr_size) CM_MUSTCHECK;

int wk_sandbox_run_leads(struct wk_sandbox *sb, const json_t *req, const json_t *leads, const struct wk_js_host *host,
			 json_t *replies, char *errstr, size_t errstr_size) CM_MUSTCHECK;

void wk_sandbox_stats(struct wk_sandbox *sb, struct wk_sandbox_stats *out);

#endif
