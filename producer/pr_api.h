/*
 * pr_api.h - the Bot API routes of the producer (SPEC §1):
 *   POST /api/v1/bots/{botId}/jobs/schedule   (also /bots/{botId}/jobs/schedule)
 * Order of checks, each with its status: route (404/405) -> token (401) -> bot (404) and tenancy (403)
 * -> content type (415) -> JSON (400) -> fields (422, every bad field named) -> target (404)
 * -> Kafka (202 once acknowledged, 503 with Retry-After when not).
 */
#ifndef PR_API_H
#define PR_API_H

#include "cm_job.h"
#include "cm_kafka.h"
#include "pr_catalog.h"
#include "pr_docs.h"
#include "pr_http.h"
#include "pr_kafka.h"

struct pr_api {
	struct pr_catalog *catalog; /* borrowed */
	struct pr_kafka *kafka;	    /* borrowed */
	struct pr_docs *docs;	    /* borrowed, may be NULL */
	const struct cm_topics *topics;
	struct cm_job_limits limits;
	enum cm_unknown_fields unknown;
	int retry_after_sec; /* Retry-After of 503 answers */
};

/* The pr_http handler; ctx is a struct pr_api. */
void pr_api_handle(void *ctx, struct pr_req *req, const char *method, const char *url);

/* The token of a request: "Authorization: Bearer <t>", "Authentication: <t>" or "Authentication: Bearer <t>".
 * Returns NULL when none is given. Exposed for tests. */
const char *pr_api_token(const char *authorization, const char *authentication);

#endif
