/*
 * pr_metrics.h - the producer's Prometheus metrics.
 */
#ifndef PR_METRICS_H
#define PR_METRICS_H

#include "cm_metrics.h"

extern struct cm_metric pr_m_accepted, pr_m_kafka_failed;

void pr_metrics_init(void);
/* One answered HTTP request: counts it by status and records its duration. */
void pr_metrics_request(unsigned status, double seconds);

#endif
