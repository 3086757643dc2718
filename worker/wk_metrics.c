/*
 * wk_metrics.c - see wk_metrics.h.
 */
#include "wk_metrics.h"

static const double claim_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

struct cm_metric wk_m_consumed = {.name = "botjobs_worker_messages_consumed_total",
				  .help = "Messages read from the jobs topic.",
				  .type = CM_METRIC_COUNTER};
struct cm_metric wk_m_deadlettered = {.name = "botjobs_worker_messages_deadlettered_total",
				      .help = "Invalid messages sent to the dead-letter topic.",
				      .type = CM_METRIC_COUNTER};
struct cm_metric wk_m_stored = {.name = "botjobs_worker_jobs_stored_total",
				.help = "New jobs stored in PostgreSQL (redeliveries not counted).",
				.type = CM_METRIC_COUNTER};
#define RUNS(var, outcome)                                           \
	struct cm_metric var = {.name = "botjobs_worker_runs_total", \
				.help = "Finished runs by outcome.", \
				.type = CM_METRIC_COUNTER,           \
				.labels = "outcome=\"" outcome "\""}
RUNS(wk_m_runs_done, "done");
RUNS(wk_m_runs_failed, "failed");
RUNS(wk_m_runs_skipped, "skipped");
RUNS(wk_m_runs_cancelled, "cancelled");
RUNS(wk_m_runs_retry, "retry");
struct cm_metric wk_m_lateness = {
	.name = "botjobs_worker_lateness_seconds", .help = "Run start minus due time.", .type = CM_METRIC_HISTOGRAM};
struct cm_metric wk_m_run_seconds = {.name = "botjobs_worker_run_seconds",
				     .help = "Duration of a run (state load and code).",
				     .type = CM_METRIC_HISTOGRAM};
struct cm_metric wk_m_claim_batch = {.name = "botjobs_worker_claim_batch_size",
				     .help = "Jobs per claim.",
				     .type = CM_METRIC_HISTOGRAM,
				     .bounds = claim_buckets,
				     .nbounds = sizeof(claim_buckets) / sizeof(claim_buckets[0])};
struct cm_metric wk_m_outbox_relayed = {.name = "botjobs_worker_outbox_relayed_total",
					.help = "Outbox messages delivered to Kafka.",
					.type = CM_METRIC_COUNTER};
struct cm_metric wk_m_outbox_parsed = {
	.name = "botjobs_worker_outbox_batches_parsed_total",
	.help = "Outbox batch rows the batch reader refused, relayed after parsing them in full (expected: 0).",
	.type = CM_METRIC_COUNTER};
struct cm_metric wk_m_claimed = {.name = "botjobs_worker_jobs_claimed_total",
				 .help = "Due jobs claimed (leased) by this worker.",
				 .type = CM_METRIC_COUNTER};
struct cm_metric wk_m_outbox_backlog = {
	.name = "botjobs_worker_outbox_backlog",
	.help = "Outbox messages waiting for Kafka (measured by the worker that relays).",
	.type = CM_METRIC_GAUGE};
struct cm_metric wk_m_consumer_lag = {
	.name = "botjobs_worker_consumer_lag",
	.help = "Messages of the jobs topic behind this worker's position, over its partitions.",
	.type = CM_METRIC_GAUGE};
struct cm_metric wk_m_pruned = {.name = "botjobs_worker_jobs_pruned_total",
				.help = "Finished jobs deleted after the retention period.",
				.type = CM_METRIC_COUNTER};
struct cm_metric wk_m_bcast_leads = {.name = "botjobs_worker_broadcast_leads_total",
				     .help = "Leads gone through by broadcasts.",
				     .type = CM_METRIC_COUNTER};
struct cm_metric wk_m_leases_reaped = {.name = "botjobs_worker_leases_expired_total",
				       .help = "Leases that expired (a worker died or stalled).",
				       .type = CM_METRIC_COUNTER};

#define HOST_CALL(method, outcome)                                                                         \
	{                                                                                                  \
		.name = "botjobs_worker_host_calls_total",                                                 \
		.help = "Calls of bot JavaScript to the worker (findLeads, api.*) by method and outcome.", \
		.type = CM_METRIC_COUNTER, .labels = "method=\"" method "\",outcome=\"" outcome "\""       \
	}
#define HOST_CALLS(method)                                                                           \
	{                                                                                            \
		HOST_CALL(method, "ok"), HOST_CALL(method, "invalid"), HOST_CALL(method, "refused"), \
			HOST_CALL(method, "failed")                                                  \
	}
struct cm_metric wk_m_host_calls[WK_M_HOST_METHODS][WK_M_HOST_OUTCOMES] = {
	HOST_CALLS("findLeads"), HOST_CALLS("api.getJson"), HOST_CALLS("api.postJson")};
#define API_SECONDS(method)                                                                 \
	{                                                                                   \
		.name = "botjobs_worker_api_request_seconds",                               \
		.help = "Duration of api.getJson/api.postJson calls (redirects included).", \
		.type = CM_METRIC_HISTOGRAM, .labels = "method=\"" method "\""              \
	}
struct cm_metric wk_m_api_seconds[2] = {API_SECONDS("api.getJson"), API_SECONDS("api.postJson")};

void wk_metrics_init(void)
{
	wk_m_lateness.bounds = cm_buckets_latency;
	wk_m_lateness.nbounds = cm_buckets_latency_n;
	wk_m_run_seconds.bounds = cm_buckets_latency;
	wk_m_run_seconds.nbounds = cm_buckets_latency_n;
	struct cm_metric *all[] = {&wk_m_consumed,	&wk_m_deadlettered, &wk_m_stored,	  &wk_m_runs_done,
				   &wk_m_runs_failed,	&wk_m_runs_skipped, &wk_m_runs_cancelled, &wk_m_runs_retry,
				   &wk_m_lateness,	&wk_m_run_seconds,  &wk_m_claim_batch,	  &wk_m_outbox_relayed,
				   &wk_m_leases_reaped, &wk_m_bcast_leads,  &wk_m_claimed,	  &wk_m_outbox_backlog,
				   &wk_m_consumer_lag,	&wk_m_pruned,	    &wk_m_outbox_parsed};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		cm_metrics_register(all[i]);
	for (size_t m = 0; m < WK_M_HOST_METHODS; m++)
		for (size_t o = 0; o < WK_M_HOST_OUTCOMES; o++)
			cm_metrics_register(&wk_m_host_calls[m][o]);
	for (size_t m = 0; m < 2; m++) {
		wk_m_api_seconds[m].bounds = cm_buckets_latency;
		wk_m_api_seconds[m].nbounds = cm_buckets_latency_n;
		cm_metrics_register(&wk_m_api_seconds[m]);
	}
}
