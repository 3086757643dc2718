/*
 * pr_metrics.c - see pr_metrics.h.
 */
#include <stdio.h>

#include "pr_metrics.h"

static struct cm_family requests =
	CM_FAMILY("botjobs_producer_http_requests_total", "HTTP requests answered, by route and status.",
		  CM_METRIC_COUNTER, NULL, 0);
static struct cm_family seconds = CM_FAMILY("botjobs_producer_http_request_seconds",
					    "From the request's headers to its answer (a 202 includes Kafka's ack).",
					    CM_METRIC_HISTOGRAM, NULL, 0);
static struct cm_family rejected =
	CM_FAMILY("botjobs_producer_rejected_total", "Requests refused, by reason.", CM_METRIC_COUNTER, NULL, 0);
static struct cm_family delivery =
	CM_FAMILY("botjobs_producer_kafka_delivery_seconds", "From produce to Kafka's delivery report, by result.",
		  CM_METRIC_HISTOGRAM, NULL, 0);
struct cm_metric pr_m_accepted = {.name = "botjobs_producer_jobs_accepted_total",
				  .help = "Jobs acknowledged by Kafka and answered 202.",
				  .type = CM_METRIC_COUNTER};
struct cm_metric pr_m_in_flight = {.name = "botjobs_producer_requests_in_flight",
				   .help = "Requests being read, handled or waiting for Kafka or PostgreSQL.",
				   .type = CM_METRIC_GAUGE};

void pr_metrics_init(void)
{
	seconds.bounds = delivery.bounds = cm_buckets_latency;
	seconds.nbounds = delivery.nbounds = cm_buckets_latency_n;
	cm_metrics_register(&pr_m_accepted);
	cm_metrics_register(&pr_m_in_flight);
	cm_metrics_register_family(&requests);
	cm_metrics_register_family(&seconds);
	cm_metrics_register_family(&rejected);
	cm_metrics_register_family(&delivery);
}

void pr_metrics_request(const char *route, unsigned status, double secs)
{
	char labels[96];
	snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%u\"", route, status);
	cm_metric_add(cm_family_get(&requests, labels), 1);
	snprintf(labels, sizeof(labels), "route=\"%s\"", route);
	cm_metric_observe(cm_family_get(&seconds, labels), secs);
}

void pr_metrics_rejected(const char *reason)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	cm_metric_add(cm_family_get(&rejected, labels), 1);
}

void pr_metrics_kafka_delivery(double secs, int ok)
{
	cm_metric_observe(cm_family_get(&delivery, ok ? "result=\"ok\"" : "result=\"failed\""), secs);
}
