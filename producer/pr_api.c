/*
 * pr_api.c - the schedule call. See pr_api.h.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_id.h"
#include "cm_log.h"
#include "cm_sha256.h"
#include "cm_signal.h"
#include "cm_time.h"
#include "pr_api.h"
#include "pr_metrics.h"

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

/* "/api/v1/bots/42/jobs/schedule" or "/bots/42/jobs/schedule" -> 42 and "schedule". */
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
	if (errno || id < 1 || strncmp(end, "/jobs", 5) != 0)
		return -1;
	*bot_id = id;
	*rest = end + 5;
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

struct pending {
	struct pr_req *req;
	char job_id[CM_UUID_STRLEN + 1];
	int64_t bot_id, due_us;
	int periodic;
	json_t *warnings;
	int retry_after;
};

static void delivered(void *arg, rd_kafka_resp_err_t err)
{
	struct pending *p = arg;
	if (err) {
		cm_metric_add(&pr_m_kafka_failed, 1);
		char msg[300];
		snprintf(msg, sizeof(msg), "Kafka did not acknowledge the job (%s); nothing was accepted, try again",
			 rd_kafka_err2str(err));
		cm_log_with(CM_LOG_WARN, "job_id", p->job_id, "%s", msg);
		pr_req_error(p->req, 503, msg, NULL, p->retry_after);
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
	json_decref(p->warnings);
	free(p);
}

static void schedule(struct pr_api *api, struct pr_req *req, int64_t bot_id, int64_t business_id)
{
	char line[600];
	size_t len;
	const char *body = pr_req_body(req, &len);
	int64_t bot_business = 0;

	if (!pr_catalog_bot(api->catalog, bot_id, &bot_business)) {
		snprintf(line, sizeof(line), "bot %" PRId64 " not found", bot_id);
		pr_req_error(req, 404, line, NULL, 0);
		return;
	}
	if (bot_business != business_id) {
		snprintf(line, sizeof(line), "this token may not act on bot %" PRId64, bot_id);
		pr_req_error(req, 403, line, NULL, 0);
		return;
	}
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
		pr_req_error(req, 400, line, json_pack("{s[s]}", "body", jerr.text), 0);
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
		char field[32];
		snprintf(field, sizeof(field), "%s_%s", cm_target_kind_name(job.kind), job.target_code ? "code" : "id");
		snprintf(line, sizeof(line), "%s not found in bot %" PRId64, cm_target_kind_name(job.kind), bot_id);
		char rule[100];
		snprintf(rule, sizeof(rule), "does not exist in bot %" PRId64, bot_id);
		pr_req_error(req, 404, line, json_pack("{s[s]}", field, rule), 0);
		goto out;
	}

	/* Idempotency-Key: the same key gives the same job id, so a retried request stores nothing new. */
	const char *ikey = pr_req_header(req, "Idempotency-Key");
	if (ikey && *ikey) {
		char name[400];
		int n = snprintf(name, sizeof(name), "%" PRId64 ":%s", bot_id, ikey);
		if (n < 0 || (size_t)n >= sizeof(name)) {
			pr_req_error(req, 422, "invalid fields",
				     json_pack("{s[s]}", "Idempotency-Key", "must be at most 255 characters"), 0);
			goto out;
		}
		cm_uuid_from_name("botjobs.idempotency", name, (size_t)n, job.job_id);
		uint8_t d[CM_SHA256_LEN];
		char hex[65];
		cm_sha256(body, len, d);
		cm_hex(d, sizeof(d), hex);
		job.request_hash = strdup(hex);
	} else if (cm_uuid_v7(job.job_id) == -1) {
		pr_req_error(req, 500, "no randomness for a job id", NULL, 0);
		goto out;
	}

	json_t *env = cm_job_to_envelope(&job);
	char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	char key[48], err[256];
	cm_job_key(bot_id, job.lead_id, key, sizeof(key));
	struct pending *p = calloc(1, sizeof(*p));
	if (!text || !p) {
		free(text);
		free(p);
		pr_req_error(req, 500, "out of memory", NULL, 0);
		goto out;
	}
	p->req = req;
	memcpy(p->job_id, job.job_id, sizeof(p->job_id));
	p->bot_id = bot_id;
	p->due_us = job.due_us;
	p->periodic = job.is_periodic;
	p->warnings = json_incref(warnings);
	p->retry_after = api->retry_after_sec;
	pr_req_defer(req);
	if (pr_kafka_send(api->kafka, api->topics->jobs, key, text, strlen(text), delivered, p, err, sizeof(err)) ==
	    -1) {
		json_decref(p->warnings);
		free(p);
		char msg[400];
		snprintf(msg, sizeof(msg), "Kafka is not accepting messages (%s); nothing was accepted, try again",
			 err);
		pr_req_error(req, 503, msg, NULL, api->retry_after_sec);
	}
	free(text);
out:
	cm_job_clear(&job);
	json_decref(errors);
	json_decref(warnings);
	json_decref(doc);
}

void pr_api_handle(void *ctx, struct pr_req *req, const char *method, const char *url)
{
	struct pr_api *api = ctx;
	int64_t bot_id = 0;
	const char *rest = NULL;
	char msg[300];

	if (pr_docs_serve(api->docs, req, method, url))
		return;
	if (route(url, &bot_id, &rest) == -1 || strcmp(rest, "/schedule") != 0) {
		snprintf(msg, sizeof(msg), "no such route: %s %.200s", method, url);
		pr_req_error(req, 404, msg, NULL, 0);
		return;
	}
	if (strcmp(method, "POST") != 0) {
		snprintf(msg, sizeof(msg), "%s is not allowed here; use POST", method);
		pr_req_error(req, 405, msg, NULL, 0);
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
	int64_t business_id = 0;
	if (!pr_catalog_auth(api->catalog, token, &business_id)) {
		pr_req_error(req, 401, "invalid, expired or revoked API token", NULL, 0);
		return;
	}
	schedule(api, req, bot_id, business_id);
}
