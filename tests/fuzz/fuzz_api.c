/*
 * fuzz_api.c - libFuzzer target: the producer's request handling after the HTTP server (pr_api.c:
 * routing, the token headers, tenancy, Content-Type, the body, Idempotency-Key, then the schedule
 * rules; pr_jobs.c: job ids, lead ids and the list's query parameters), without a server.
 *
 * The modules around it are stubbed here, so the real pr_api.o and pr_jobs.o link against these
 * instead: the request (pr_http.h), the catalog (token "good" is business 1 with bot 1, token
 * "rival" business 2 with bot 2; bot 1 has trigger_code "demo_echo" and ids 1-3 of every kind),
 * Kafka (acknowledges at once, after checking that the worker accepts the message: cm_envelope_parse)
 * and the store (no database: its routes answer 503).
 *
 * Input: an HTTP request in text, as libmicrohttpd hands it over (path and query parameters are
 * %-decoded; header names are case-insensitive):
 *   POST /api/v1/bots/1/jobs/schedule?a=b
 *   Authorization: Bearer good
 *   Content-Type: application/json
 *
 *   {"trigger_code":"demo_echo","lead_id":1}
 * Checks beyond "no crash, no leak, no undefined behaviour": every request is answered exactly once
 * with a status of the API's list and its one error shape ({"success":false,"message":"…","errors":{…}},
 * "errors" naming what is at fault for every 4xx); what is published is a valid envelope.
 * Seeds: tests/fuzz/corpus/api/ (the requests of tests/integration/test_api.py, test_thin_path.py
 * and test_boundaries.py).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_job.h"
#include "cm_time.h"
#include "pr_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_KV 32

struct kv {
	char *k, *v;
};

struct pr_req {
	struct kv headers[MAX_KV], query[MAX_KV];
	int nheaders, nquery;
	const char *body;
	size_t len;
	int deferred, answers;
	unsigned status;
	json_t *answer;
};

/* ---- pr_http.h ---- */

static const char *lookup(const struct kv *kv, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(kv[i].k, name) == 0)
			return kv[i].v;
	return NULL;
}

const char *pr_req_header(struct pr_req *r, const char *name)
{
	return lookup(r->headers, r->nheaders, name);
}

const char *pr_req_query(struct pr_req *r, const char *name)
{
	for (int i = 0; i < r->nquery; i++)
		if (strcmp(r->query[i].k, name) == 0)
			return r->query[i].v;
	return NULL;
}

const char *pr_req_body(struct pr_req *r, size_t *len)
{
	*len = r->len;
	return r->body;
}

void pr_req_set_route(struct pr_req *r, const char *route)
{
	(void)r;
	(void)route;
}

void pr_req_set_subject(struct pr_req *r, const char *key, const char *value)
{
	(void)r;
	(void)key;
	(void)value;
}

void pr_req_defer(struct pr_req *r)
{
	r->deferred = 1;
}

void pr_req_answer(struct pr_req *r, unsigned status, json_t *body, int retry_after_sec)
{
	(void)retry_after_sec;
	if (r->answers++) {
		fprintf(stderr, "a second answer (%u) to a request answered %u\n", status, r->status);
		abort();
	}
	r->status = status;
	r->answer = body;
}

void pr_req_answer_text(struct pr_req *r, unsigned status, const char *content_type, const char *text, size_t len)
{
	(void)content_type;
	(void)text;
	(void)len;
	pr_req_answer(r, status, NULL, 0);
}

void pr_req_error(struct pr_req *r, unsigned status, const char *message, json_t *errors, int retry_after_sec)
{
	pr_req_answer(r, status, pr_error_body(message, errors), retry_after_sec); /* as pr_http.c does */
}

/* ---- pr_catalog.h, pr_docs.h, pr_kafka.h, pr_store.h ---- */

int pr_catalog_ready(struct pr_catalog *c)
{
	(void)c;
	return 1;
}

int pr_catalog_auth(struct pr_catalog *c, const char *token, int64_t *business_id)
{
	(void)c;
	if (strcmp(token, "good") == 0)
		*business_id = 1;
	else if (strcmp(token, "rival") == 0)
		*business_id = 2;
	else
		return 0;
	return 1;
}

int pr_catalog_bot(struct pr_catalog *c, int64_t bot_id, int64_t *business_id)
{
	(void)c;
	if (bot_id != 1 && bot_id != 2)
		return 0;
	*business_id = bot_id;
	return 1;
}

int pr_catalog_target(struct pr_catalog *c, int64_t bot_id, enum cm_target_kind kind, int64_t id, const char *code)
{
	(void)c;
	(void)kind;
	return bot_id == 1 && (code ? strcmp(code, "demo_echo") == 0 : id >= 1 && id <= 3);
}

int pr_docs_serve(struct pr_docs *d, struct pr_req *req, const char *method, const char *url)
{
	(void)d;
	(void)req;
	(void)method;
	(void)url;
	return 0;
}

static int64_t published;

int pr_kafka_send(struct pr_kafka *k, const char *topic, const char *key, const char *value, size_t len,
		  pr_kafka_done_fn done, void *arg, char *errstr, size_t errstr_size)
{
	(void)k;
	(void)topic;
	(void)errstr;
	(void)errstr_size;
	enum cm_command cmd;
	struct cm_job job;
	struct cm_cancel cancel;
	char err[1024], want[48];
	cm_job_init(&job);
	if (cm_envelope_parse(value, len, cm_time_now_us(), &cm_job_default_limits, &cmd, &job, &cancel, err,
			      sizeof(err)) == -1) {
		fprintf(stderr, "the worker refuses what the producer publishes: %s\n%.*s\n", err, (int)len, value);
		abort();
	}
	if (cmd == CM_CMD_SCHEDULE)
		cm_job_key(job.bot_id, job.lead_id, want, sizeof(want));
	else
		cm_job_key(cancel.bot_id, cancel.lead_id, want, sizeof(want));
	if (strcmp(key, want) != 0)
		abort(); /* the key keeps a lead's commands in one partition, in order */
	cm_job_clear(&job);
	published++;
	done(arg, RD_KAFKA_RESP_ERR_NO_ERROR);
	return 0;
}

int pr_store_submit(struct pr_store *s, pr_store_fn fn, void *arg)
{
	(void)s;
	fn(NULL, arg); /* no connection: the task answers 503 (or goes on without the database) */
	return 0;
}

/* ---- the request ---- */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* %XX and + decoding in place, as MHD_http_unescape does (a NUL ends the value). */
static void unescape(char *s, int plus)
{
	char *w = s;
	for (char *p = s; *p; p++) {
		if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
			*w++ = (char)(hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]));
			p += 2;
		} else {
			*w++ = plus && *p == '+' ? ' ' : *p;
		}
	}
	*w = '\0';
}

static void check_answer(const struct pr_req *r, const char *method)
{
	static const unsigned ok[] = {200, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503};
	int known = 0;
	for (size_t i = 0; i < CM_ARRAY_LEN(ok); i++)
		known |= r->status == ok[i];
	if (r->answers != 1 || !known || !json_is_object(r->answer)) {
		fprintf(stderr, "%s: %d answers, status %u\n", method, r->answers, r->status);
		abort();
	}
	json_t *success = json_object_get(r->answer, "success");
	if (!json_is_boolean(success) || json_is_true(success) != (r->status < 300))
		abort();
	if (r->status < 300)
		return;
	const char *msg = json_string_value(json_object_get(r->answer, "message"));
	json_t *errors = json_object_get(r->answer, "errors");
	if (!msg || !*msg)
		abort();
	if (r->status < 500 && json_object_size(errors) == 0) {
		fprintf(stderr, "%u without the field at fault: %s\n", r->status, msg);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct pr_req r = {0};
	/* The request line, then headers up to an empty line, then the body (its real length). */
	char *line_end = strchr(text, '\n');
	if (line_end)
		*line_end = '\0';
	char slash[] = "/", *method = text, *url = strchr(text, ' ');
	if (url)
		*url++ = '\0';
	else
		url = slash;
	char *q = strchr(url, '?');
	if (q)
		*q++ = '\0';
	unescape(url, 0);
	for (char *a = q; a && *a && r.nquery < MAX_KV;) {
		char *amp = strchr(a, '&'), *eq;
		if (amp)
			*amp = '\0';
		if ((eq = strchr(a, '=')))
			*eq++ = '\0';
		unescape(a, 1);
		if (eq)
			unescape(eq, 1);
		r.query[r.nquery++] = (struct kv){a, eq ? eq : (char *)""};
		a = amp ? amp + 1 : NULL;
	}
	char *p = line_end ? line_end + 1 : text + size;
	while (p < text + size) {
		char *nl = memchr(p, '\n', (size_t)(text + size - p));
		if (nl)
			*nl = '\0';
		if (*p == '\0' || (*p == '\r' && p[1] == '\0')) {
			p = nl ? nl + 1 : text + size;
			break;
		}
		char *colon = strchr(p, ':');
		if (colon && r.nheaders < MAX_KV) {
			*colon = '\0';
			char *v = colon + 1;
			while (*v == ' ')
				v++;
			size_t vn = strlen(v);
			if (vn && v[vn - 1] == '\r')
				v[vn - 1] = '\0';
			r.headers[r.nheaders++] = (struct kv){p, v};
		}
		p = nl ? nl + 1 : text + size;
	}
	r.body = p;
	r.len = (size_t)(text + size - p);

	static const struct cm_topics topics = {.jobs = "botjobs.jobs"};
	/* A store (never dereferenced by the stubs), so an Idempotency-Key is also checked "in the database". */
	struct pr_api api = {.store = (struct pr_store *)&r,
			     .topics = &topics,
			     .limits = cm_job_default_limits,
			     .unknown = CM_UNKNOWN_WARN,
			     .retry_after_sec = 1};
	if (pr_api_init(&api) == -1)
		abort();
	pr_api_handle(&api, &r, method, url);
	check_answer(&r, method);
	json_decref(r.answer);
	pr_api_clear(&api);
	free(text);
	return 0;
}
