/*
 * pr_api.c - routing, the checks every route shares, and the schedule call. See pr_api.h.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_id.h"
#include "cm_log.h"
#include "cm_map.h"
#include "cm_pg.h"
#include "cm_sha256.h"
#include "cm_signal.h"
#include "cm_time.h"
#include "cm_utf8.h"
#include "pr_api.h"
#include "pr_metrics.h"

/* ---- recent Idempotency-Keys: job id -> the first 8 bytes of the body's hash ----
 * Two generations of maps: lookups see both, inserts go to the current one, and when it is full the
 * older one is dropped. A key is remembered for at least IDEM_GENERATION requests with keys. */
#define IDEM_GENERATION 50000

struct pr_idem {
	pthread_mutex_t mu;
	struct cm_map *cur, *old;
};

int pr_api_init(struct pr_api *api)
{
	api->idem = calloc(1, sizeof(*api->idem));
	if (!api->idem || !(api->idem->cur = cm_map_new(1024))) {
		free(api->idem);
		api->idem = NULL;
		return -1;
	}
	pthread_mutex_init(&api->idem->mu, NULL);
	return 0;
}

void pr_api_clear(struct pr_api *api)
{
	if (!api->idem)
		return;
	cm_map_free(api->idem->cur);
	cm_map_free(api->idem->old);
	pthread_mutex_destroy(&api->idem->mu);
	free(api->idem);
	api->idem = NULL;
}

/* Records job_id -> hash; returns 1 when the key is known with another hash (a conflict). */
static int idem_check_and_put(struct pr_idem *m, const char *job_id, int64_t hash)
{
	int64_t seen;
	int conflict = 0;
	pthread_mutex_lock(&m->mu);
	if (cm_map_get(m->cur, job_id, &seen) || (m->old && cm_map_get(m->old, job_id, &seen))) {
		conflict = seen != hash;
	} else {
		if (cm_map_size(m->cur) >= IDEM_GENERATION) {
			struct cm_map *fresh = cm_map_new(1024);
			if (fresh) {
				cm_map_free(m->old);
				m->old = m->cur;
				m->cur = fresh;
			}
		}
		if (cm_map_put(m->cur, job_id, hash) == -1)
			cm_log_warn("idempotency: out of memory remembering a key");
	}
	pthread_mutex_unlock(&m->mu);
	return conflict;
}

const char *pr_api_token(const char *authorization, const char *authentication)
{
	const char *h = authorization && *authorization ? authorization : authentication;
	if (!h)
		return NULL;
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "Bearer ", 7) == 0)
		h += 7;
	else if (h == authorization)
		return NULL; /* Authorization must say Bearer */
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

/* "/api/v1/bots/42/…" or "/bots/42/…" -> 42 and "/…". */
static int route(const char *url, int64_t *bot_id, const char **rest)
{
	if (strncmp(url, "/api/v1", 7) == 0)
		url += 7;
	if (strncmp(url, "/bots/", 6) != 0)
		return -1;
	url += 6;
	if (!isdigit((unsigned char)*url))
		return -1;
	char *end;
	errno = 0;
	long long id = strtoll(url, &end, 10);
	if (errno || id < 1 || (*end && *end != '/'))
		return -1;
	*bot_id = id;
	*rest = end;
	return 0;
}

static int is_json(const char *ct)
{
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	size_t n = strcspn(ct, "; ");
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return 1;
	return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* ---- schedule ---- */

struct pending {
	struct pr_api *api;
	struct pr_req *req;
	char job_id[CM_UUID_STRLEN + 1];
	int64_t bot_id, lead_id, due_us, sent_us;
	int periodic;
	json_t *warnings;
	char *envelope; /* what goes to Kafka */
	char *request_hash;
};

static void pending_free(struct pending *p)
{
	json_decref(p->warnings);
	free(p->envelope);
	free(p->request_hash);
	free(p);
}

static void delivered(void *arg, rd_kafka_resp_err_t err)
{
	struct pending *p = arg;
	pr_metrics_kafka_delivery((double)(cm_time_mono_us() - p->sent_us) / 1e6, !err);
	if (err) {
		char msg[300];
		snprintf(msg, sizeof(msg), "Kafka did not acknowledge the job (%s); nothing was accepted, try again",
			 rd_kafka_err2str(err));
		cm_log_with(CM_LOG_WARN, "job_id", p->job_id, "%s", msg);
		pr_req_error(p->req, 503, msg, NULL, p->api->retry_after_sec);
	} else {
		char due[CM_TIME_BUFSZ];
		cm_metric_add(&pr_m_accepted, 1);
		json_t *body = json_pack("{sb ss sI ss ss sb}", "success", 1, "job_id", p->job_id, "bot_id",
					 (json_int_t)p->bot_id, "status", "scheduled", "due_at",
					 cm_time_format(p->due_us, due), "is_periodic", p->periodic);
		if (p->warnings && json_object_size(p->warnings))
			json_object_set(body, "warnings", p->warnings);
		pr_req_answer(p->req, 202, body, 0);
	}
	pending_free(p);
}

/* Hands the envelope to Kafka; the delivery report answers. Takes p. */
static void send_job(struct pending *p)
{
	char key[48], err[256];
	cm_job_key(p->bot_id, p->lead_id, key, sizeof(key));
	p->sent_us = cm_time_mono_us();
	if (pr_kafka_send(p->api->kafka, p->api->topics->jobs, key, p->envelope, strlen(p->envelope), delivered, p, err,
			  sizeof(err)) == -1) {
		char msg[400];
		snprintf(msg, sizeof(msg), "Kafka is not accepting messages (%s); nothing was accepted, try again",
			 err);
		pr_req_error(p->req, 503, msg, NULL, p->api->retry_after_sec);
		pending_free(p);
	}
}

static void idem_conflict(struct pr_req *req)
{
	pr_req_error(req, 422, "Idempotency-Key reused with a different request",
		     json_pack("{s[s]}", "Idempotency-Key", "was already used with a different request body"), 0);
}

/* Store task: is this Idempotency-Key's job already stored with another body? */
static void idem_check_stored(PGconn *conn, void *arg)
{
	struct pending *p = arg;
	if (conn) {
		char err[256];
		const char *params[] = {p->job_id};
		PGresult *r = cm_pg_query(conn, "SELECT request_hash FROM jobs WHERE job_id = $1::uuid", 1, params, err,
					  sizeof(err));
		int conflict = r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
			       strcmp(PQgetvalue(r, 0, 0), p->request_hash) != 0;
		PQclear(r);
		if (conflict) {
			idem_conflict(p->req);
			pending_free(p);
			return;
		}
	}
	/* Without the database the check rests on the in-memory keys; the worker keeps the first job anyway. */
	send_job(p);
}

static void schedule(struct pr_api *api, struct pr_req *req, int64_t bot_id)
{
	char line[600];
	size_t len;
	const char *body = pr_req_body(req, &len);

	if (!is_json(pr_req_header(req, "Content-Type"))) {
		json_t *e = json_pack("{s[s]}", "Content-Type", "must be application/json");
		pr_req_error(req, 415, "the request body must be JSON (Content-Type: application/json)", e, 0);
		return;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		snprintf(line, sizeof(line), "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
			 jerr.column);
		pr_req_error(req, 400, line, json_pack("{s[o]}", "body", cm_json_text(jerr.text)), 0);
		return;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		pr_req_error(req, 400, "the request body must be a JSON object",
			     json_pack("{s[s]}", "body", "must be a JSON object"), 0);
		return;
	}

	json_t *errors = json_object(), *warnings = json_object();
	struct cm_job job;
	cm_job_init(&job);
	struct pending *p = NULL;
	struct cm_job_parse_ctx pc = {.now_us = cm_time_now_us(),
				      .limits = &api->limits,
				      .unknown = api->unknown,
				      .warnings = warnings,
				      .check_condition_compiles = 1};
	if (cm_job_from_request(doc, bot_id, &pc, &job, errors) == -1) {
		pr_req_error(req, 422, "invalid fields", errors, 0);
		errors = NULL;
		goto out;
	}
	if (job.kind != CM_TARGET_NONE &&
	    !pr_catalog_target(api->catalog, bot_id, job.kind, job.target_id, job.target_code)) {
		char field[32], rule[100];
		snprintf(field, sizeof(field), "%s_%s", cm_target_kind_name(job.kind), job.target_code ? "code" : "id");
		snprintf(line, sizeof(line), "%s not found in bot %" PRId64, cm_target_kind_name(job.kind), bot_id);
		snprintf(rule, sizeof(rule), "does not exist in bot %" PRId64, bot_id);
		pr_req_error(req, 404, line, json_pack("{s[s]}", field, rule), 0);
		goto out;
	}

	/* Idempotency-Key: the same key gives the same job id, so a retried request stores nothing new;
	 * the same key with another body is refused. */
	const char *ikey = pr_req_header(req, "Idempotency-Key");
	int64_t hash64 = 0;
	if (ikey && *ikey) {
		char name[400];
		int n = snprintf(name, sizeof(name), "%" PRId64 ":%s", bot_id, ikey);
		if (n < 0 || (size_t)n >= sizeof(name) || strlen(ikey) > 255) {
			pr_req_error(req, 422, "invalid fields",
				     json_pack("{s[s]}", "Idempotency-Key", "must be at most 255 characters"), 0);
			goto out;
		}
		cm_uuid_from_name("botjobs.idempotency", name, (size_t)n, job.job_id);
		uint8_t d[CM_SHA256_LEN];
		char hex[65];
		cm_sha256(body, len, d);
		cm_hex(d, sizeof(d), hex);
		memcpy(&hash64, d, sizeof(hash64));
		job.request_hash = strdup(hex);
		if (idem_check_and_put(api->idem, job.job_id, hash64)) {
			idem_conflict(req);
			goto out;
		}
	} else if (cm_uuid_v7(job.job_id) == -1) {
		pr_req_error(req, 500, "no randomness for a job id", NULL, 0);
		goto out;
	}
	pr_req_set_subject(req, "job_id", job.job_id);

	json_t *env = cm_job_to_envelope(&job);
	p = calloc(1, sizeof(*p));
	if (!p || !env || !(p->envelope = json_dumps(env, JSON_COMPACT))) {
		json_decref(env);
		free(p);
		p = NULL;
		pr_req_error(req, 500, "out of memory", NULL, 0);
		goto out;
	}
	json_decref(env);
	p->api = api;
	p->req = req;
	memcpy(p->job_id, job.job_id, sizeof(p->job_id));
	p->bot_id = bot_id;
	p->lead_id = job.lead_id;
	p->due_us = job.due_us;
	p->periodic = job.is_periodic;
	p->warnings = json_incref(warnings);
	if (job.request_hash)
		p->request_hash = strdup(job.request_hash);
	pr_req_defer(req);
	if (p->request_hash && api->store) {
		if (pr_store_submit(api->store, idem_check_stored, p) == -1)
			send_job(p); /* queue full: the in-memory check stands */
	} else {
		send_job(p);
	}
out:
	cm_job_clear(&job);
	json_decref(errors);
	json_decref(warnings);
	json_decref(doc);
}

/* ---- routing ---- */

static int is_uuid_path(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 && cm_uuid_valid(s + n);
}

void pr_api_handle(void *ctx, struct pr_req *req, const char *method, const char *url)
{
	struct pr_api *api = ctx;
	int64_t bot_id = 0;
	const char *rest = NULL, *name = NULL, *allowed = NULL;
	char msg[300];

	if (pr_docs_serve(api->docs, req, method, url)) {
		pr_req_set_route(req, "docs");
		return;
	}
	if (route(url, &bot_id, &rest) == 0) {
		if (strcmp(rest, "/jobs/schedule") == 0)
			name = "schedule", allowed = "POST";
		else if (strcmp(rest, "/jobs") == 0)
			name = "jobs", allowed = "GET";
		else if (is_uuid_path(rest, "/jobs/"))
			name = "job", allowed = "GET DELETE";
		else if (strncmp(rest, "/leads/", 7) == 0 && strlen(rest) > 12 &&
			 !strcmp(rest + strlen(rest) - 5, "/jobs"))
			name = "lead_jobs", allowed = "DELETE";
	}
	if (!name) {
		snprintf(msg, sizeof(msg), "no such route: %s %.200s", method, url);
		pr_req_error(req, 404, msg, json_pack("{s[s]}", "path", "no such route"), 0);
		return;
	}
	pr_req_set_route(req, name);
	char bot[24];
	snprintf(bot, sizeof(bot), "%" PRId64, bot_id);
	pr_req_set_subject(req, "bot_id", bot);
	char m[16];
	snprintf(m, sizeof(m), "%s", method);
	const char *hit = strstr(allowed, m);
	if (!hit || (hit[strlen(m)] != '\0' && hit[strlen(m)] != ' ')) {
		snprintf(msg, sizeof(msg), "%s is not allowed here; use %s", method, allowed);
		pr_req_error(req, 405, msg, json_pack("{s[o]}", "method", cm_json_text(msg)), 0);
		return;
	}
	if (cm_signal_stopping()) {
		pr_req_error(req, 503, "shutting down; try again", NULL, api->retry_after_sec);
		return;
	}
	const char *token = pr_api_token(pr_req_header(req, "Authorization"), pr_req_header(req, "Authentication"));
	if (!token) {
		pr_req_error(req, 401, "missing API token",
			     json_pack("{s[s]}", "Authorization", "send Authorization: Bearer <token>"), 0);
		return;
	}
	if (!pr_catalog_ready(api->catalog)) {
		pr_req_error(req, 503, "the catalog is not loaded yet (database unavailable); try again", NULL,
			     api->retry_after_sec);
		return;
	}
	int64_t business_id = 0, bot_business = 0;
	if (!pr_catalog_auth(api->catalog, token, &business_id)) {
		pr_req_error(req, 401, "invalid, expired or revoked API token",
			     json_pack("{s[s]}", "Authorization", "is not a valid, unexpired and unrevoked token"), 0);
		return;
	}
	char hex[65];
	int retry_after = 1;
	cm_token_hash_hex(token, hex);
	if (!pr_ratelimit_take(api->ratelimit, hex, cm_time_mono_us(), &retry_after)) {
		pr_req_error(
			req, 429, "rate limit exceeded for this token; slow down",
			json_pack("{s[s]}", "Authorization", "this token's rate limit is exceeded; see Retry-After"),
			retry_after);
		return;
	}
	if (!pr_catalog_bot(api->catalog, bot_id, &bot_business)) {
		snprintf(msg, sizeof(msg), "bot %" PRId64 " not found", bot_id);
		pr_req_error(req, 404, msg, json_pack("{s[s]}", "bot_id", "no such bot"), 0);
		return;
	}
	if (bot_business != business_id) {
		snprintf(msg, sizeof(msg), "this token may not act on bot %" PRId64, bot_id);
		pr_req_error(req, 403, msg, json_pack("{s[s]}", "bot_id", "is not a bot of this token's business"), 0);
		return;
	}
	if (!strcmp(name, "schedule"))
		schedule(api, req, bot_id);
	else
		pr_jobs_handle(api, req, method, bot_id, rest);
}
