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
#include "sb_serve.h"
#include "wk_sandbox.h"

enum { EXIT_EOF = 0, EXIT_PROTOCOL = 3 };

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
};

/* wk_js_host.call in the child: the call goes to the parent, the script waits for the answer. */
static json_t *proxy_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size)
{
	struct proxy *p = ctx;
	char err[300];
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

/* Sends the reply (stolen); one too large for a frame becomes a failed run that says so. */
static int send_reply(int fd, json_t *reply, const json_t *req)
{
	char err[300];
	if (!reply)
		reply = json_pack("{ssss}", "outcome", "failed", "error", "the sandbox ran out of memory");
	json_t *m = json_pack("{ssso}", "type", "reply", "reply", reply);
	int rc = cm_frame_write(fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err));
	json_decref(m);
	if (rc == CM_FRAME_TOO_LARGE) {
		const char *name = json_string_value(json_object_get(req, "name"));
		char msg[400];
		snprintf(msg, sizeof(msg), "%s: the run's result and effects are too large (over %zu MiB)",
			 name ? name : "code", WK_SANDBOX_FRAME_MAX >> 20);
		m = json_pack("{sss{ssss}}", "type", "reply", "reply", "outcome", "failed", "error", msg);
		rc = cm_frame_write(fd, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err));
		json_decref(m);
	}
	return rc;
}

int sb_serve(int fd, const struct wk_js_limits *lim)
{
	char err[300];
	struct proxy px = {.fd = fd};
	const struct wk_js_host host = {.call = proxy_call, .ctx = &px};
	/* One engine for the child's life: MuJS states are reused, one bot each (wk_js.h). A child keeps
	 * fewer states than the in-process engine: RLIMIT_AS bounds its whole heap. */
	struct wk_js_limits el = *lim;
	if (el.states > 4)
		el.states = 4;
	struct wk_js_engine *engine = wk_js_engine_new(&el);
	if (!engine)
		return EXIT_PROTOCOL;

	if (send_hello(fd) != CM_FRAME_OK) {
		wk_js_engine_free(engine);
		return EXIT_EOF;
	}
	for (;;) {
		json_t *m = NULL;
		int rc = cm_frame_read(fd, WK_SANDBOX_FRAME_MAX, 0, &m, err, sizeof(err));
		if (rc == CM_FRAME_EOF) {
			wk_js_engine_free(engine);
			return EXIT_EOF;
		}
		if (rc != CM_FRAME_OK) {
			cm_log_error("sandbox %d: %s", (int)getpid(), err);
			wk_js_engine_free(engine);
			return EXIT_PROTOCOL;
		}
		const char *type = json_string_value(json_object_get(m, "type"));
		json_t *v = json_object_get(m, "v");
		const json_t *req = json_object_get(m, "req");
		if (!type || strcmp(type, "run") != 0 || !json_is_object(req)) {
			cm_log_error("sandbox %d: expected a run frame, got type %s", (int)getpid(),
				     type ? type : "none");
			json_decref(m);
			wk_js_engine_free(engine);
			return EXIT_PROTOCOL;
		}
		if (json_integer_value(v) != WK_SANDBOX_PROTO) {
			cm_log_error("sandbox %d: run frame of protocol version %" JSON_INTEGER_FORMAT ", mine is %d",
				     (int)getpid(), json_integer_value(v), WK_SANDBOX_PROTO);
			json_decref(m);
			wk_js_engine_free(engine);
			return EXIT_PROTOCOL;
		}
		json_t *reply = wk_js_engine_run(engine, req, json_is_true(json_object_get(m, "host")) ? &host : NULL);
		rc = send_reply(fd, reply, req);
		json_decref(m);
		if (rc != CM_FRAME_OK) {
			wk_js_engine_free(engine);
			return EXIT_EOF; /* the parent stopped listening (it kills us anyway) */
		}
	}
}
