/*
 * pr_api.h - the Bot API routes of the producer (SPEC §1), each also served without /api/v1:
 *   POST   /api/v1/bots/{botId}/jobs/schedule      schedule a job (202 once Kafka has it)
 *   GET    /api/v1/bots/{botId}/jobs/{jobId}        a job's status
 *   GET    /api/v1/bots/{botId}/jobs?lead_id=&status=&limit=&cursor=   list, newest first
 *   DELETE /api/v1/bots/{botId}/jobs/{jobId}        cancel a job (through botjobs.jobs)
 *   DELETE /api/v1/bots/{botId}/leads/{leadId}/jobs cancel a lead's pending jobs
 *   GET    /api/openapi.json, /api/docs             the contract (pr_docs.h)
 * Order of checks, each with its status: route (404/405) -> token (401) -> rate limit (429) ->
 * bot (404) and tenancy (403) -> the route's own checks (415/400/422/404/409) -> Kafka or PostgreSQL
 * (503 with Retry-After when unavailable: nothing was accepted).
 */
#ifndef PR_API_H
#define PR_API_H

#include "cm_job.h"
#include "cm_kafka.h"
#include "pr_catalog.h"
#include "pr_docs.h"
#include "pr_http.h"
#include "pr_kafka.h"
#include "pr_ratelimit.h"
#include "pr_store.h"

struct pr_idem;

struct pr_api {
	struct pr_catalog *catalog;	/* borrowed */
	struct pr_kafka *kafka;		/* borrowed */
	struct pr_store *store;		/* borrowed */
	struct pr_docs *docs;		/* borrowed, may be NULL */
	struct pr_ratelimit *ratelimit; /* borrowed, may be NULL */
	struct pr_idem *idem;		/* recent Idempotency-Keys, owned (pr_api_init / pr_api_clear) */
	const struct cm_topics *topics;
	struct cm_job_limits limits;
	enum cm_unknown_fields unknown;
	int retry_after_sec; /* Retry-After of 503 answers */
};

int pr_api_init(struct pr_api *api) CM_MUSTCHECK;
void pr_api_clear(struct pr_api *api);

/* The pr_http handler; ctx is a struct pr_api. */
void pr_api_handle(void *ctx, struct pr_req *req, const char *method, const char *url);

/* The token of a request: "Authorization: Bearer <t>", "Authentication: <t>" or "Authentication: Bearer <t>".
 * Returns NULL when none is given. Exposed for tests. */
const char *pr_api_token(const char *authorization, const char *authentication);

/* pr_jobs.c: the read and cancel routes, after auth and tenancy. rest is the path after
 * /bots/{botId} ("/jobs/<uuid>", "/jobs", "/leads/7/jobs"). */
void pr_jobs_handle(struct pr_api *api, struct pr_req *req, const char *method, int64_t bot_id, const char *rest);

#endif
