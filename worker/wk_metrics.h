/*
 * wk_metrics.h - the worker's Prometheus metrics (registered by wk_metrics_init at start-up).
 */
#ifndef WK_METRICS_H
#define WK_METRICS_H

#include "cm_metrics.h"

extern struct cm_metric wk_m_consumed, wk_m_deadlettered, wk_m_stored;
extern struct cm_metric wk_m_runs_done, wk_m_runs_failed, wk_m_runs_skipped, wk_m_runs_cancelled, wk_m_runs_retry;
extern struct cm_metric wk_m_lateness, wk_m_run_seconds, wk_m_claim_batch;
extern struct cm_metric wk_m_outbox_relayed, wk_m_outbox_parsed, wk_m_leases_reaped, wk_m_bcast_leads;
extern struct cm_metric wk_m_claimed, wk_m_outbox_backlog, wk_m_consumer_lag, wk_m_pruned;

/* Calls of bot JavaScript to the host (wk_host.c): [method][outcome]. */
enum { WK_M_HOST_FIND, WK_M_HOST_GET, WK_M_HOST_POST, WK_M_HOST_METHODS };
#define WK_M_HOST_OUTCOMES 4 /* enum wk_host_outcome: ok, invalid, refused, failed */
extern struct cm_metric wk_m_host_calls[WK_M_HOST_METHODS][WK_M_HOST_OUTCOMES];
/* Duration of api.getJson / api.postJson requests, redirects included: [WK_M_HOST_GET - 1 or POST - 1]. */
extern struct cm_metric wk_m_api_seconds[2];

void wk_metrics_init(void);

#endif
