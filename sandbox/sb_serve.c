/*
 * sb_serve.c - the child's frame loop and its host proxy. See sb_serve.h and wk_sandbox.h.
 *
 * The socket is blocking here: the child has nothing else to do while it waits, and it needs no
 * poll(2) in its seccomp allow-list. The parent's watchdog is the only clock that matters.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_frame.h"
#include "cm_log.h"
#include "cm_time.h"
#include "sb_serve.h"
#include "wk_sandbox.h"

enum { EXIT_EOF = 0, EXIT_PROTOCOL = 3 };

/* A run of many leads sends its replies together, at most this long after the first of them was ready
 * (and before any host call): fewer frames, and the watchdog still sees progress at least that often. */
#define REPLIES_HOLD_US 1000

/* Warm-up: the time zone (Date, run_at), qsort's one-time memory probe, number formatting, the
 * compile check of a condition, a UUID, an error with a line number. */
static const char WARM_CODE[] =
	"var d = new Date(Date.now() + 86400000), p = function (n) { return (n < 10 ? '0' : '') + n; };\n"
	"var at = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) +\n"
	"  ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());\n"
	"bot.scheduleJob({trigger_code: 'warm', lead_id: 1, run_at: at, condition_script_code: 'return 1 < 2;'});\n"
	"var a = []; for (var i = 0; i < 500; i++) a.push({k: Math.random(), s: 'x' + i});\n"
	"a.sort(function (x, y) { return x.k - y.k; }); a.sort();\n"
	"lead.setAttr('w', JSON.stringify(JSON.parse(JSON.stringify(a.slice(0, 3)))) + (1 / 3) + 1e21 + d);\n"
	"console.log(/a(b+)c/.exec('xabbc')[1], String(d), d.toISOString(), d.getTimezoneOffset());\n"
	"return [1.5, -0, 2e-7, 'ü'];";

void sb_serve_warm(const struct wk_js_limits *lim)
{
	static const char *codes[] = {WARM_CODE, "var a = 1;\nnull.x = a;"};
	for (size_t i = 0; i < CM_ARRAY_LEN(codes); i++) {
		json_t *req = json_pack("{s{sisiss} s{sisss{}s[]} s{sis{}} s{} ss ss}", "context", "botId", 1, "leadId",
					1, "jobId", "00000000-0000-7000-8000-000000000000", "lead", "id", 1, "name",
					"warm", "attributes", "tags", "bot", "id", 1, "attributes", "params", "name",
					"sandbox warm-up", "code", codes[i]);
		json_decref(wk_js_run(req, lim, NULL));
		json_decref(req);
	}
}

struct proxy {
	int fd;
	json_t *held;	  /* replies of a many-lead run not sent yet (an array) */
	int64_t held_us;  /* when the first of them was ready */
	const char *name; /* the running request's name, for errors */
	int called;	  /* the running request made a host call */
};

/*
 * Sends one reply (stolen; NULL = out of memory) as a "reply" frame, or in a many-lead run as a
 * "replies" frame of one; a reply too large for a frame becomes a failed run that says so.
 */
static int send_one(int fd, json_t *reply, const char *name, int many)
{
	char err[300];
	if (!reply)
		reply = json_pack("{ssss}", "outcome", "failed", "error", "the sandbox ran out of memory");
	json_t *m = many ? json_pack("{sss[o]}", "type", "replies", "replies", reply)
			 : json_pack("{ssso}", "type", "reply", "reply", reply);
	int rc = cm_frame_write(fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err));
	json_decref(m);
	if (rc == CM_FRAME_TOO_LARGE) {
		char msg[400];
		snprintf(msg, sizeof(msg), "%s: the run's result and effects are too large (over %zu MiB)",
			 name ? name : "code", WK_SANDBOX_FRAME_MAX >> 20);
		m = many ? json_pack("{sss[{ssss}]}", "type", "replies", "replies", "outcome", "failed", "error", msg)
			 : json_pack("{sss{ssss}}", "type", "reply", "reply", "outcome", "failed", "error", msg);
		rc = cm_frame_write(fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err));
		json_decref(m);
	}
	return rc;
}

/* Sends the held replies as one "replies" frame, or one frame each when together they are too large. */
static int flush_held(struct proxy *p)
{
	char err[300];
	size_t n = json_array_size(p->held);
	if (!n)
		return CM_FRAME_OK;
	json_t *m = json_pack("{sssO}", "type", "replies", "replies", p->held);
	int rc = m ? cm_frame_write(p->fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err)) : CM_FRAME_TOO_LARGE;
	json_decref(m);
	if (rc == CM_FRAME_TOO_LARGE) {
		rc = CM_FRAME_OK;
		for (size_t i = 0; i < n && rc == CM_FRAME_OK; i++)
			rc = send_one(p->fd, json_incref(json_array_get(p->held, i)), p->name, 1);
	}
	json_array_clear(p->held);
	return rc;
}

/* wk_js_host.call in the child: the call goes to the parent, the script waits for the answer. */
static json_t *proxy_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size)
{
	struct proxy *p = ctx;
	char err[300];
	if (flush_held(p) != CM_FRAME_OK)
		_exit(EXIT_EOF); /* the replies before the call reach the parent first */
	p->called = 1;
	json_t *m =
		json_pack("{sssssO}", "type", "call", "method", method, "args", args ? (json_t *)args : json_null());
	int rc = m ? cm_frame_write(p->fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err)) : CM_FRAME_TOO_LARGE;
	json_decref(m);
	if (rc == CM_FRAME_TOO_LARGE) {
		snprintf(errstr, errstr_size, "the arguments are too large");
		return NULL;
	}
	if (rc != CM_FRAME_OK)
		_exit(EXIT_EOF); /* the parent is gone: nothing to finish */
	rc = cm_frame_read(p->fd, WK_SANDBOX_FRAME_MAX, 0, &m, err, sizeof(err));
	if (rc == CM_FRAME_EOF)
		_exit(EXIT_EOF);
	if (rc != CM_FRAME_OK) {
		cm_log_error("sandbox %d: reading the answer to %s: %s", (int)getpid(), method, err);
		_exit(EXIT_PROTOCOL);
	}
	const char *type = json_string_value(json_object_get(m, "type"));
	json_t *res = NULL;
	if (type && strcmp(type, "result") == 0 && json_object_get(m, "result")) {
		res = json_incref(json_object_get(m, "result"));
	} else if (type && strcmp(type, "error") == 0) {
		const char *e = json_string_value(json_object_get(m, "error"));
		snprintf(errstr, errstr_size, "%s", e ? e : "failed");
	} else {
		cm_log_error("sandbox %d: the answer to %s is not a result or an error frame", (int)getpid(), method);
		_exit(EXIT_PROTOCOL);
	}
	json_decref(m);
	return res;
}

static int send_hello(int fd)
{
	char err[300];
	json_t *m = json_pack("{sssisi}", "type", "hello", "v", WK_SANDBOX_PROTO, "pid", (int)getpid());
	int rc = cm_frame_write(fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err));
	json_decref(m);
	return rc;
}

/*
 * One run frame: the request once, or once per lead of "leads", or each request of "reqs" (stamped
 * with its start time); the replies of many held and sent together, see REPLIES_HOLD_US. Returns a
 * cm_frame_rc of the last write.
 */
static int serve_run(struct wk_js_engine *engine, struct proxy *px, const json_t *req, const json_t *leads,
		     const json_t *reqs, const struct wk_js_host *host)
{
	if (!json_is_array(leads) && !json_is_array(reqs)) {
		px->name = json_string_value(json_object_get(req, "name"));
		return send_one(px->fd, wk_js_engine_run(engine, req, host), px->name, 0);
	}
	size_t n = json_array_size(reqs ? reqs : leads);
	for (size_t i = 0; i < n; i++) {
		if (json_array_size(px->held) && cm_time_mono_us() - px->held_us >= REPLIES_HOLD_US &&
		    flush_held(px) != CM_FRAME_OK)
			return CM_FRAME_ERROR;
		json_t *r =
			reqs ? json_incref(json_array_get(reqs, i)) : wk_js_lead_request(req, json_array_get(leads, i));
		px->name = json_string_value(json_object_get(r, "name"));
		px->called = 0;
		int64_t started = reqs ? cm_time_now_us() : 0; /* a request's own start; a lead's is unused */
		json_t *reply = r ? wk_js_engine_run(engine, r, host) : NULL;
		json_decref(r);
		if (!reply)
			reply = json_pack("{ssss}", "outcome", "failed", "error", "the sandbox ran out of memory");
		if (reqs && json_object_set_new(reply, "started_us", json_integer(started)) == -1) {
			json_decref(reply);
			return CM_FRAME_ERROR;
		}
		if (!json_array_size(px->held))
			px->held_us = cm_time_mono_us();
		if (json_array_append_new(px->held, reply) == -1)
			return CM_FRAME_ERROR;
		/* After a call the parent waits for this run's reply before any other: it knows whose run
		 * a time-out or a crash then ends. */
		if (px->called && flush_held(px) != CM_FRAME_OK)
			return CM_FRAME_ERROR;
	}
	return flush_held(px);
}

/* What is wrong with a frame that should be a run frame ("" for another type), or NULL. */
static const char *run_frame_error(const char *type, const json_t *req, const json_t *leads, const json_t *reqs)
{
	if (!type || strcmp(type, "run") != 0)
		return "";
	if (reqs) {
		if (req || leads)
			return " with reqs and req or leads";
		if (!json_is_array(reqs) || !json_array_size(reqs))
			return " with reqs not a non-empty array";
		for (size_t i = 0; i < json_array_size(reqs); i++)
			if (!json_is_object(json_array_get(reqs, i)))
				return " with a request in reqs that is not an object";
		return NULL;
	}
	if (!json_is_object(req))
		return " without a req";
	if (leads && !json_is_array(leads))
		return " with leads not an array";
	return NULL;
}

/* Serves run frames until the parent closes the socket; returns the exit status. */
static int serve_loop(struct wk_js_engine *engine, struct proxy *px, const struct wk_js_host *host)
{
	char err[300];
	if (send_hello(px->fd) != CM_FRAME_OK)
		return EXIT_EOF;
	for (;;) {
		json_t *m = NULL;
		int rc = cm_frame_read(px->fd, WK_SANDBOX_FRAME_MAX, 0, &m, err, sizeof(err));
		if (rc == CM_FRAME_EOF)
			return EXIT_EOF;
		if (rc != CM_FRAME_OK) {
			cm_log_error("sandbox %d: %s", (int)getpid(), err);
			return EXIT_PROTOCOL;
		}
		const char *type = json_string_value(json_object_get(m, "type"));
		json_t *v = json_object_get(m, "v");
		const json_t *req = json_object_get(m, "req"), *leads = json_object_get(m, "leads");
		const json_t *reqs = json_object_get(m, "reqs");
		const char *bad = run_frame_error(type, req, leads, reqs);
		if (bad) {
			cm_log_error("sandbox %d: expected a run frame, got type %s%s", (int)getpid(),
				     type ? type : "none", bad);
			json_decref(m);
			return EXIT_PROTOCOL;
		}
		if (json_integer_value(v) != WK_SANDBOX_PROTO) {
			cm_log_error("sandbox %d: run frame of protocol version %" JSON_INTEGER_FORMAT ", mine is %d",
				     (int)getpid(), json_integer_value(v), WK_SANDBOX_PROTO);
			json_decref(m);
			return EXIT_PROTOCOL;
		}
		rc = serve_run(engine, px, req, leads, reqs, json_is_true(json_object_get(m, "host")) ? host : NULL);
		json_decref(m);
		if (rc != CM_FRAME_OK)
			return EXIT_EOF; /* the parent stopped listening (it kills us anyway) */
	}
}

int sb_serve(int fd, const struct wk_js_limits *lim)
{
	struct proxy px = {.fd = fd, .held = json_array()};
	const struct wk_js_host host = {.call = proxy_call, .ctx = &px};
	/* One engine for the child's life: MuJS states are reused, one bot each (wk_js.h). A child keeps
	 * fewer states than the in-process engine: RLIMIT_AS bounds its whole heap. */
	struct wk_js_limits el = *lim;
	if (el.states > 4)
		el.states = 4;
	struct wk_js_engine *engine = wk_js_engine_new(&el);
	int rc = engine && px.held ? serve_loop(engine, &px, &host) : EXIT_PROTOCOL;
	wk_js_engine_free(engine);
	json_decref(px.held);
	return rc;
}
