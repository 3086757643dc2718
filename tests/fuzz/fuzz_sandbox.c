/*
 * fuzz_sandbox.c - libFuzzer target: the worker's side of the sandbox protocol (worker/wk_sandbox.c),
 * reading what a sandbox child says. The child runs bot code and may have been subverted, so every
 * frame it sends is hostile input: its hello, its host calls (findLeads, api.*) and their arguments,
 * and its reply.
 *
 * The pool's own code is compiled into this file (#include of wk_sandbox.c: its conversation with a
 * child is static), and a child is a socket whose other end already holds the input and is then
 * shut for writing. No process is started.
 *
 * Input: one child message per line, each framed here as cm_frame.h does (fuzz_frame fuzzes the
 * framing itself): the first is the greeting, the rest the run's conversation. Each input is one
 * conversation of a single run, one of a run for 3 leads and one of 3 requests (replies in "replies"
 * frames; each request with a host of its own).
 *   {"type":"hello","v":3,"pid":1}
 *   {"type":"call","method":"findLeads","args":{"where":[["attr.x",">",1]],"limit":5}}
 *   {"type":"reply","reply":{"outcome":"done","result":1}}
 *   {"type":"replies","replies":[{"outcome":"done"},{"outcome":"skipped"}]}
 * The host answers the calls as the worker's does up to the point where it would reach out:
 * findLeads builds its SQL (wk_host_find_build) and api.* checks its URL (wk_host_url_check), then
 * a fixed result comes back.
 * Checks beyond "no crash, no leak, no undefined behaviour":
 *   - a run ends with a valid reply only when the child sent one (all of them, for the leads), never
 *     after more calls than calls_max; any other end is a failure with a reason and fewer replies;
 *   - each reply to a request of many has a start and an end time between the run frame and its
 *     arrival, in that order;
 *   - findLeads SQL: placeholders only up to its parameter count, no statement separator, comment
 *     or unbalanced quote (the script's strings go into parameters, never into the text).
 * Seeds: tests/fuzz/corpus/sandbox/ (the conversations of tests/unit/test_sandbox.c and test_host.c).
 */
#include "../../worker/wk_sandbox.c" /* NOLINT(bugprone-suspicious-include): its statics are the target */

#include <ctype.h>

#include "wk_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CALLS_MAX 20

static struct wk_host *policy; /* api.* URL policy: the defaults (no private targets) */
static int calls;	       /* host calls answered in this input's run */

static void check_sql(const struct wk_host_query *q)
{
	int quotes = 0;
	for (const char *p = q->sql; *p; p++) {
		if (*p == '\'')
			quotes++;
		if (*p == ';' || (p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
			fprintf(stderr, "findLeads SQL: %s\n", q->sql);
			abort();
		}
		if (*p == '$' && isdigit((unsigned char)p[1]) && atoi(p + 1) > q->nparams) {
			fprintf(stderr, "findLeads SQL: $%d of %d parameters: %s\n", atoi(p + 1), q->nparams, q->sql);
			abort();
		}
	}
	if (quotes % 2) {
		fprintf(stderr, "findLeads SQL: unbalanced quotes: %s\n", q->sql);
		abort();
	}
}

static json_t *host_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size)
{
	(void)ctx;
	if (++calls > CALLS_MAX)
		abort();
	if (strcmp(method, "findLeads") == 0) {
		struct wk_host_query q;
		if (wk_host_find_build(args, 42, 100, &q, errstr, errstr_size) == -1) {
			if (!errstr[0])
				abort();
			return NULL;
		}
		check_sql(&q);
		wk_host_query_clear(&q);
		return json_pack("[{sisssb}]", "id", 1, "name", "Ann", "muted", 0);
	}
	if (strcmp(method, "api.getJson") == 0 || strcmp(method, "api.postJson") == 0) {
		char host[256];
		const char *url = json_string_value(json_object_get(args, "url"));
		if (wk_host_url_check(policy, url, host, sizeof(host), errstr, errstr_size) != WK_HOST_OK) {
			if (!errstr[0])
				abort();
			return NULL;
		}
		return json_pack("{sis{sb}}", "status", 200, "body", "ok", 1);
	}
	snprintf(errstr, errstr_size, "unknown host call");
	return NULL;
}

/* Frames each line of the input into one buffer (*len bytes, malloc'd). */
static unsigned char *frame_lines(const uint8_t *data, size_t size, size_t *len)
{
	const uint8_t *p = data, *end = data + size;
	unsigned char *out = malloc(size + 4 * (size + 1)), *w = out;
	if (!out)
		abort();
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		*w++ = (unsigned char)(n >> 24);
		*w++ = (unsigned char)(n >> 16);
		*w++ = (unsigned char)(n >> 8);
		*w++ = (unsigned char)n;
		memcpy(w, p, n);
		w += n;
		p += n + (nl ? 1 : 0);
	}
	*len = (size_t)(w - out);
	return out;
}

/*
 * One conversation over the framed input: a single run (leads and reqs NULL), a run for 3 leads or one
 * of 3 requests. It ends with every reply only when the child sent them all, valid; otherwise with a
 * reason.
 */
static void converse_over(const unsigned char *stream, size_t len, const json_t *leads, const json_t *reqs)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	if (len && write(sv[1], stream, len) != (ssize_t)len)
		abort();
	shutdown(sv[1], SHUT_WR); /* open for reading: what the pool writes stays in the buffer */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);

	struct wk_sandbox sb = {.o = {.children = 1, .max_runs = 1, .timeout_ms = 10000}};
	sb.o.js.calls_max = CALLS_MAX;
	/* No such process: reap_dying's waitpid fails at once and nothing is ever killed. */
	struct child c = {.pid = INT_MAX, .fd = sv[0], .lifeline = -1, .spawned_us = cm_time_mono_us()};
	char why[512] = "";
	calls = 0;
	if (child_greet(&c, why, sizeof(why)) == 0) {
		const struct wk_js_host host = {.call = host_call};
		const struct wk_js_host *hosts[] = {&host, NULL, &host};
		json_t *req = json_pack("{ss ss}", "name", "trigger t", "code", "return 1;"), *replies = json_array();
		const struct batch b = {
			.req = reqs ? NULL : req, .leads = leads, .reqs = reqs, .host = &host, .hosts = hosts};
		size_t want = batch_size(&b), i;
		int called;
		int64_t from = cm_time_now_us();
		enum end e = converse(&sb, &c, &b, replies, &called, why, sizeof(why));
		int64_t to = cm_time_now_us();
		json_t *r;
		json_array_foreach(replies, i, r)
		{
			json_t *t = json_object_get(r, "started_us"), *f = json_object_get(r, "finished_us");
			if (!valid_reply(r) ||
			    (reqs && (!json_is_integer(t) || json_integer_value(t) < from || !json_is_integer(f) ||
				      json_integer_value(f) < json_integer_value(t) || json_integer_value(f) > to)))
				abort();
		}
		if (e == END_REPLY ? json_array_size(replies) != want : (json_array_size(replies) >= want || !why[0])) {
			fprintf(stderr, "end %d, %zu of %zu replies, reason '%s'\n", (int)e, json_array_size(replies),
				want, why);
			abort();
		}
		json_decref(replies);
		json_decref(req);
	} else if (!why[0]) {
		abort();
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	unsigned char *stream = frame_lines(data, size, &len);
	if (len > 100000) {
		free(stream); /* all of it must fit in the socket's buffer, in one write */
		return 0;
	}
	if (!policy) {
		char err[200];
		cm_log_setup("fuzz", CM_LOG_TEXT, CM_LOG_ERROR);
		if (!(policy = wk_host_new(NULL, &wk_host_default_opts, err, sizeof(err))))
			abort();
	}
	json_t *leads = json_pack("[{si}{si}{si}]", "id", 1, "id", 2, "id", 3);
	json_t *reqs = json_pack("[{ss}{ss}{ss}]", "name", "trigger a", "name", "trigger b", "name", "trigger c");
	converse_over(stream, len, NULL, NULL);
	converse_over(stream, len, leads, NULL);
	converse_over(stream, len, NULL, reqs);
	json_decref(leads);
	json_decref(reqs);
	free(stream);
	return 0;
}
