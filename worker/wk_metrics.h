/*
 * wk_metrics.h - the worker's Prometheus metrics (registered by wk_metrics_init at start-up).
 */
#ifndef WK_METRICS_H
#define WK_METRICS_H

#include "cm_metrics.h"

extern struct cm_metric wk_m_consumed, wk_m_deadlettered, wk_m_stored;
extern struct cm_metric wk_m_runs_done, wk_m_runs_failed, wk_m_runs_skipped, wk_m_runs_cancelled, wk_m_runs_retry;
extern struct cm_metric wk_m_lateness, wk_m_run_seconds, wk_m_claim_batch;
extern struct cm_metric wk_m_outbox_relayed, wk_m_leases_reaped, wk_m_bcast_leads;

void wk_metrics_init(void);

#endif
