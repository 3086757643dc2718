/*
 * pr_metrics.c - see pr_metrics.h.
 */
#include <stddef.h>

#include "pr_metrics.h"

#define REQ(code)                                                                                             \
	{                                                                                                     \
		.name = "botjobs_producer_http_requests_total", .help = "HTTP requests answered, by status.", \
		.type = CM_METRIC_COUNTER, .labels = "code=\"" #code "\""                                     \
	}
static struct cm_metric by_code[] = {REQ(200), REQ(202), REQ(400), REQ(401), REQ(403), REQ(404), REQ(405),
				     REQ(409), REQ(413), REQ(415), REQ(422), REQ(429), REQ(500), REQ(503)};
static const unsigned codes[] = {200, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503};
static struct cm_metric other = {.name = "botjobs_producer_http_requests_total",
				 .help = "HTTP requests answered, by status.",
				 .type = CM_METRIC_COUNTER,
				 .labels = "code=\"other\""};
static struct cm_metric seconds = {
	.name = "botjobs_producer_http_request_seconds",
	.help = "Time from the request's headers to its answer (202 includes the Kafka ack).",
	.type = CM_METRIC_HISTOGRAM};
struct cm_metric pr_m_accepted = {.name = "botjobs_producer_jobs_accepted_total",
				  .help = "Jobs acknowledged by Kafka and answered 202.",
				  .type = CM_METRIC_COUNTER};
struct cm_metric pr_m_kafka_failed = {.name = "botjobs_producer_kafka_failures_total",
				      .help = "Jobs Kafka did not acknowledge (answered 503).",
				      .type = CM_METRIC_COUNTER};

void pr_metrics_init(void)
{
	seconds.bounds = cm_buckets_latency;
	seconds.nbounds = cm_buckets_latency_n;
	for (size_t i = 0; i < sizeof(by_code) / sizeof(by_code[0]); i++)
		cm_metrics_register(&by_code[i]);
	cm_metrics_register(&other);
	cm_metrics_register(&seconds);
	cm_metrics_register(&pr_m_accepted);
	cm_metrics_register(&pr_m_kafka_failed);
}

void pr_metrics_request(unsigned status, double secs)
{
	struct cm_metric *m = &other;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == status)
			m = &by_code[i];
	cm_metric_add(m, 1);
	cm_metric_observe(&seconds, secs);
}
