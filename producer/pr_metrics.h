/*
 * pr_metrics.h - the producer's Prometheus metrics.
 */
#ifndef PR_METRICS_H
#define PR_METRICS_H

#include "cm_metrics.h"

extern struct cm_metric pr_m_accepted, pr_m_in_flight;

void pr_metrics_init(void);
/* An answered HTTP request: counted by route and status, its duration recorded by route. */
void pr_metrics_request(const char *route, unsigned status, double seconds);
/* A request refused, by reason: auth, tenancy, validation, not_found, too_large, rate_limited, kafka, ... */
void pr_metrics_rejected(const char *reason);
/* Time from handing a message to librdkafka to its delivery report. */
void pr_metrics_kafka_delivery(double seconds, int ok);

#endif
