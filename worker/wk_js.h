/*
 * wk_js.h - runs one unit of bot JavaScript with MuJS: a state snapshot in, a list of effects out.
 *
 * This is the code that runs *inside* a sandbox child (or in-process behind wk_runtime until the
 * sandbox is used). It never touches the database, the network or files: everything it reads is in
 * the request, everything it changes comes back as effects for the worker to apply in the run's
 * transaction.
 *
 * Request (a JSON object, borrowed):
 *   {"context":   {"botId":1, "leadId":2, "ticketId":null, "jobId":"…"},
 *    "lead":      {"id":2, "name":"Ann", "channel":"telegram", "attributes":{…}, "tags":["a"], "status_id":null} | null,
 *    "bot":       {"id":1, "name":"demo", "attributes":{…}},
 *    "ticket":    {"id":7, "data":{…}} | null,
 *    "params":    {…},                           script_request_params, seen as request.json
 *    "condition": "return lead.getAttr('x') == 1;" | null,   the job's condition (a function body)
 *    "tags":      {"remove":["a"], "add":["b"]},  the job's tag changes, after the condition
 *    "code":      "lead.setAttr('echo', request.json.text);" | null,  the target (a function body)
 *    "code_condition": "…" | null,               the target's own condition (triggers, broadcasts)
 *    "name":      "trigger demo_echo"}            for error messages
 *
 * Reply (a new JSON object):
 *   {"outcome": "done" | "skipped" | "failed",
 *    "error": "trigger demo_echo, line 3: TypeError: …", "error_line": 3,    when failed
 *    "result": <the code's return value, JSON> ,
 *    "effects": {"lead":   {"set":{k:v}, "del":[k], "tags_add":[t], "tags_del":[t], "status_name":"…"},
 *                "bot":    {"set":{k:v}, "del":[k]},
 *                "ticket": {"set":{k:v}},
 *                "messages": [{"text":"…"}],
 *                "jobs":   [{…schedule request fields…}],
 *                "log":    ["…"]}}
 * A skipped or failed run carries no effects (nothing of it is applied).
 */
#ifndef WK_JS_H
#define WK_JS_H

#include <jansson.h>
#include <stddef.h>

/*
 * Calls that need the outside world go to the host (the worker): bot.findLeads and api.*. In a sandbox
 * child the host is a proxy that sends the call to the parent over the sandbox protocol and waits.
 *   method "findLeads":   args {"columns":[…]|null, "where":[…]|null, "order_by":"…"|null, "limit":N, "offset":N}
 *                         result [{column: value, …}, …]
 *   method "api.getJson": args {"url":"…", "headers":{…}}              result {"status":200, "body":<JSON>}
 *   method "api.postJson": args {"url":"…", "headers":{…}, "body":<JSON>}  result {"status":…, "body":…}
 * call() returns a new reference, or NULL with one line in errstr (thrown as a JS Error to the script).
 * A NULL host (or call) makes these functions throw "not available".
 */
typedef json_t *(*wk_js_call_fn)(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size);
struct wk_js_host {
	wk_js_call_fn call;
	void *ctx;
};

struct wk_js_limits {
	size_t heap_max;     /* bytes the MuJS allocator may hold, 0 = unlimited */
	size_t messages_max; /* sendText calls per run */
	size_t jobs_max;     /* scheduleJob calls per run */
	size_t log_max;	     /* log lines per run */
	size_t calls_max;    /* host calls (findLeads, api.*) per run */
	size_t states;	     /* MuJS states kept for reuse, one bot each (8) */
	int runs_per_state;  /* a state is rebuilt after this many runs (1000) */
};
extern const struct wk_js_limits wk_js_default_limits;

/*
 * The engine: a few MuJS states reused across runs, one bot per state (so no bot sees another's
 * data), the globals a run creates deleted after it, a state rebuilt after runs_per_state runs or when
 * it ran out of memory. One caller at a time. limits is copied (NULL = defaults).
 */
struct wk_js_engine;
struct wk_js_engine *wk_js_engine_new(const struct wk_js_limits *limits);
void wk_js_engine_free(struct wk_js_engine *e); /* NULL-safe */
/* Runs the request (borrowed). host may be NULL. Returns the reply (new reference); NULL only when out
 * of memory outside MuJS. */
json_t *wk_js_engine_run(struct wk_js_engine *e, const json_t *req, const struct wk_js_host *host);

/*
 * The request of one lead's run when one request runs for many leads (a broadcast's chunk): req
 * (borrowed) with "lead" set to lead (borrowed) and context.leadId to its id. A new reference that
 * shares everything else with req; NULL when out of memory.
 */
json_t *wk_js_lead_request(const json_t *req, const json_t *lead);

/* One run on a fresh engine (tests, tools). */
json_t *wk_js_run(const json_t *req, const struct wk_js_limits *limits, const struct wk_js_host *host);

#endif
