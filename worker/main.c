/*
 * botjobs-worker - stores scheduled jobs from Kafka in PostgreSQL, runs them when due, relays their
 * messages and events back to Kafka.
 *
 * Threads: consumer (botjobs.jobs -> jobs table), scheduler (due jobs -> runs -> effects), outbox
 * relay (outbox -> botjobs.outbound/events), and libmicrohttpd's for /healthz, /readyz, /metrics.
 * main() parses the config, starts them, waits for SIGTERM, and stops them in an order that loses
 * nothing: stop consuming (offsets committed), finish the runs in hand, relay the outbox, flush.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <time.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_http.h"
#include "cm_kafka.h"
#include "cm_log.h"
#include "cm_pg.h"
#include "cm_signal.h"
#include "cm_time.h"
#include "wk_consumer.h"
#include "wk_host.h"
#include "wk_kafka.h"
#include "wk_metrics.h"
#include "wk_outbox.h"
#include "wk_sched.h"

struct cfg {
	char *brokers, *pg_uri, *topic_prefix, *group_id, *worker_id, *http_host, *timezone, *log_format, *log_level;
	long http_port, batch, lookahead_ms, consume_batch, consume_window_ms, lease_sec, max_attempts, retry_base_ms,
		partitions, replication;
	long outbox_batch, heap_mb, script_timeout_ms, min_interval_sec, horizon_days, bcast_chunk;
	long retention_days, housekeeping_sec;
	int migrate, create_topics, events;
	/* bot.findLeads and api.* (wk_host.h) */
	char *api_allow_hosts;
	long find_leads_limit, api_connect_timeout_ms, api_timeout_ms, api_max_kb;
	int api_allow_private;
	int sandbox;
	char *sandbox_path;
	long sandbox_children, sandbox_max_runs;
};

/* one line per setting reads best */
/* clang-format off */
#define S(f) offsetof(struct cfg, f)
static const struct cm_opt opts[] = {
	{"kafka-brokers", "BOTJOBS_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap servers", CM_OPT_STR, S(brokers), 0, 0, 0},
	{"pg-uri", "BOTJOBS_PG_URI", "postgresql:///botjobs", "PostgreSQL connection URI or key=value string", CM_OPT_STR, S(pg_uri), 0, 0, 1},
	{"topic-prefix", "BOTJOBS_TOPIC_PREFIX", "botjobs.", "prefix of the topic names (jobs, outbound, events, deadletter)", CM_OPT_STR, S(topic_prefix), 0, 0, 0},
	{"group-id", "BOTJOBS_GROUP_ID", "botjobs-worker", "Kafka consumer group of the workers", CM_OPT_STR, S(group_id), 0, 0, 0},
	{"worker-id", "BOTJOBS_WORKER_ID", "", "lease owner name (default: hostname-pid)", CM_OPT_STR, S(worker_id), 0, 0, 0},
	{"http-host", "BOTJOBS_WORKER_HTTP_HOST", "0.0.0.0", "address for /healthz, /readyz, /metrics", CM_OPT_STR, S(http_host), 0, 0, 0},
	{"http-port", "BOTJOBS_WORKER_HTTP_PORT", "9091", "port for /healthz, /readyz, /metrics (0 = off)", CM_OPT_INT, S(http_port), 0, 65535, 0},
	{"batch", "BOTJOBS_BATCH", "256", "due jobs claimed per batch", CM_OPT_INT, S(batch), 1, 10000, 0},
	{"lookahead-ms", "BOTJOBS_LOOKAHEAD_MS", "20", "claim jobs this long before they are due (each still starts at its due time; 0 = claim when due)", CM_OPT_INT, S(lookahead_ms), 0, 1000, 0},
	{"consume-batch", "BOTJOBS_CONSUME_BATCH", "1000", "Kafka messages stored per transaction, at most", CM_OPT_INT, S(consume_batch), 1, 100000, 0},
	{"consume-window-ms", "BOTJOBS_CONSUME_WINDOW_MS", "5", "after a message, wait this long for more to store with it (0: store what has arrived at once)", CM_OPT_INT, S(consume_window_ms), 0, 1000, 0},
	{"lease-sec", "BOTJOBS_LEASE_SEC", "30", "lease on claimed jobs; a dead worker's jobs run again after it", CM_OPT_INT, S(lease_sec), 2, 86400, 0},
	{"max-attempts", "BOTJOBS_MAX_ATTEMPTS", "5", "infrastructure retries of a run before the job fails", CM_OPT_INT, S(max_attempts), 1, 1000, 0},
	{"retry-base-ms", "BOTJOBS_RETRY_BASE_MS", "1000", "first retry delay (doubles per attempt, with jitter)", CM_OPT_INT, S(retry_base_ms), 1, 3600000, 0},
	{"broadcast-chunk", "BOTJOBS_BROADCAST_CHUNK", "2000", "leads per broadcast chunk (one transaction, one checkpoint)", CM_OPT_INT, S(bcast_chunk), 1, 100000, 0},
	{"retention-days", "BOTJOBS_RETENTION_DAYS", "7", "finished jobs and run history are deleted after this many days (0 = keep)", CM_OPT_INT, S(retention_days), 0, 36500, 0},
	{"housekeeping-sec", "BOTJOBS_HOUSEKEEPING_SEC", "600", "how often one worker looks for finished jobs to delete", CM_OPT_INT, S(housekeeping_sec), 1, 86400, 0},
	{"outbox-batch", "BOTJOBS_OUTBOX_BATCH", "1000", "outbox rows relayed per transaction", CM_OPT_INT, S(outbox_batch), 1, 100000, 0},
	{"heap-mb", "BOTJOBS_SCRIPT_HEAP_MB", "64", "memory cap of one script run (MiB)", CM_OPT_INT, S(heap_mb), 1, 4096, 0},
	{"script-timeout-ms", "BOTJOBS_SCRIPT_TIMEOUT_MS", "5000", "wall-clock cap of one script run (sandbox)", CM_OPT_INT, S(script_timeout_ms), 10, 600000, 0},
	{"sandbox", "BOTJOBS_SANDBOX", "true", "run bot JavaScript in sandbox processes (false: in the worker, for debugging only)", CM_OPT_BOOL, S(sandbox), 0, 0, 0},
	{"sandbox-path", "BOTJOBS_SANDBOX_PATH", "", "the botjobs-sandbox binary (default: next to botjobs-worker)", CM_OPT_STR, S(sandbox_path), 0, 0, 0},
	{"sandbox-children", "BOTJOBS_SANDBOX_CHILDREN", "2", "sandbox processes kept ready", CM_OPT_INT, S(sandbox_children), 1, 256, 0},
	{"sandbox-max-runs", "BOTJOBS_SANDBOX_MAX_RUNS", "1000", "runs a sandbox process serves before it is replaced", CM_OPT_INT, S(sandbox_max_runs), 1, 100000000, 0},
	{"min-interval-sec", "BOTJOBS_MIN_INTERVAL_SEC", "10", "floor of repeat_interval_sec", CM_OPT_INT, S(min_interval_sec), 1, 86400, 0},
	{"horizon-days", "BOTJOBS_HORIZON_DAYS", "366", "how far ahead a job may be due", CM_OPT_INT, S(horizon_days), 1, 36600, 0},
	{"events", "BOTJOBS_EVENTS", "true", "publish job lifecycle events to the events topic", CM_OPT_BOOL, S(events), 0, 0, 0},
	{"migrate", "BOTJOBS_MIGRATE", "false", "apply database migrations at start-up", CM_OPT_BOOL, S(migrate), 0, 0, 0},
	{"create-topics", "BOTJOBS_CREATE_TOPICS", "true", "create missing topics at start-up", CM_OPT_BOOL, S(create_topics), 0, 0, 0},
	{"partitions", "BOTJOBS_PARTITIONS", "6", "partitions of topics created at start-up", CM_OPT_INT, S(partitions), 1, 10000, 0},
	{"replication", "BOTJOBS_REPLICATION", "1", "replication factor of topics created at start-up", CM_OPT_INT, S(replication), 1, 100, 0},
	{"find-leads-limit", "BOTJOBS_FIND_LEADS_LIMIT", "100", "most leads one bot.findLeads call returns (also its default limit)", CM_OPT_INT, S(find_leads_limit), 1, WK_HOST_FIND_LIMIT_MAX, 0},
	{"api-connect-timeout-ms", "BOTJOBS_API_CONNECT_TIMEOUT_MS", "2000", "connect timeout of api.getJson/postJson", CM_OPT_INT, S(api_connect_timeout_ms), 1, 60000, 0},
	{"api-timeout-ms", "BOTJOBS_API_TIMEOUT_MS", "4000", "total time of one api.getJson/postJson call, redirects included", CM_OPT_INT, S(api_timeout_ms), 1, 600000, 0},
	{"api-max-kb", "BOTJOBS_API_MAX_KB", "1024", "largest api.* response body (KiB); a bigger one fails the call", CM_OPT_INT, S(api_max_kb), 1, 65536, 0},
	{"api-allow-private", "BOTJOBS_API_ALLOW_PRIVATE", "false", "let api.* reach private, loopback, link-local and other non-public addresses", CM_OPT_BOOL, S(api_allow_private), 0, 0, 0},
	{"api-allow-hosts", "BOTJOBS_API_ALLOW_HOSTS", "", "hosts api.* may call, comma-separated (a.example,*.b.example); empty = any public host", CM_OPT_STR, S(api_allow_hosts), 0, 0, 0},
	{"timezone", "BOTJOBS_TIMEZONE", "UTC", "platform time zone of run_at values without an offset", CM_OPT_STR, S(timezone), 0, 0, 0},
	{"log-format", "BOTJOBS_LOG_FORMAT", "json", "json or text", CM_OPT_STR, S(log_format), 0, 0, 0},
	{"log-level", "BOTJOBS_LOG_LEVEL", "info", "debug, info, warn or error", CM_OPT_STR, S(log_level), 0, 0, 0},
};
#undef S
/* clang-format on */

struct parts {
	struct wk_consumer *consumer;
	struct wk_sched *sched;
};

static int ready(void *arg, char *why, size_t why_size)
{
	struct parts *p = arg;
	if (!wk_sched_ready(p->sched)) {
		snprintf(why, why_size, "scheduler: no database connection");
		return 0;
	}
	return wk_consumer_ready(p->consumer, why, why_size);
}

static int fatal(const char *what, const char *err)
{
	cm_log_error("%s: %s", what, err);
	return 1;
}

int main(int argc, char **argv)
{
	struct cfg cfg = {0};
	struct cm_props props = {0};
	char err[1024], worker_id[256];
	int rc = 1;
	rd_kafka_t *producer = NULL;
	struct cm_httpd *httpd = NULL;
	struct wk_outbox *outbox = NULL;
	struct parts parts = {0};

	switch (cm_config_load(opts, CM_ARRAY_LEN(opts), &cfg, &props, "botjobs-worker", "[options]", argc, argv, NULL,
			       err, sizeof(err))) {
	case CM_CONFIG_EXIT:
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 0;
	case CM_CONFIG_ERROR:
		fprintf(stderr, "botjobs-worker: %s\n", err);
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	int lf = cm_log_format_parse(cfg.log_format), ll = cm_log_level_parse(cfg.log_level);
	if (lf < 0 || ll < 0) {
		fprintf(stderr,
			"botjobs-worker: --log-format must be json or text, --log-level debug/info/warn/error\n");
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	cm_log_setup("worker", (enum cm_log_format)lf, (enum cm_log_level)ll);
	if (cm_time_set_zone(cfg.timezone, err, sizeof(err)) == -1) {
		fprintf(stderr, "botjobs-worker: --timezone: %s\n", err);
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	if (cfg.worker_id[0])
		snprintf(worker_id, sizeof(worker_id), "%s", cfg.worker_id);
	else {
		char host[200] = "worker";
		gethostname(host, sizeof(host) - 1);
		snprintf(worker_id, sizeof(worker_id), "%s-%d", host, (int)getpid());
	}
	struct wk_host_opts ho = {.find_limit = cfg.find_leads_limit,
				  .api_connect_timeout_ms = cfg.api_connect_timeout_ms,
				  .api_timeout_ms = cfg.api_timeout_ms,
				  .api_max_bytes = (size_t)cfg.api_max_kb << 10,
				  .api_allow_private = cfg.api_allow_private,
				  .api_allow_hosts = cfg.api_allow_hosts};
	struct wk_host *probe = wk_host_new(NULL, &ho, err, sizeof(err)); /* checks the allow-list */
	if (!probe) {
		fprintf(stderr, "botjobs-worker: %s\n", err);
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	wk_host_free(probe);
	curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread starts */
	cm_signal_setup();
	wk_metrics_init();

	struct cm_topics topics;
	cm_topics_init(&topics, cfg.topic_prefix);
	struct cm_job_limits limits = cm_job_default_limits;
	limits.min_interval_sec = cfg.min_interval_sec;
	limits.horizon_sec = cfg.horizon_days * 86400;

	cm_log_kv(CM_LOG_INFO, (const struct cm_kv[]){{"worker_id", worker_id}, {"version", CM_VERSION}}, 2,
		  "botjobs-worker starting");

	if (cfg.migrate) {
		PGconn *c = cm_pg_connect(cfg.pg_uri, "botjobs-worker:migrate", err, sizeof(err));
		int applied = 0;
		if (!c || cm_pg_migrate(c, &applied, err, sizeof(err)) == -1) {
			cm_pg_close(c);
			rc = fatal("migrations", err);
			goto out;
		}
		cm_pg_close(c);
		cm_log_info("migrations: %d applied", applied);
	}

	producer = wk_kafka_producer_new(cfg.brokers, worker_id, &props, err, sizeof(err));
	if (!producer) {
		rc = fatal("kafka", err);
		goto out;
	}
	if (cfg.create_topics) {
		if (cm_kafka_wait_ready(producer, 30000, err, sizeof(err)) == -1 ||
		    cm_kafka_ensure_topics(producer, &topics, (int)cfg.partitions, (int)cfg.replication, 15000, err,
					   sizeof(err)) == -1) {
			rc = fatal("kafka topics", err);
			goto out;
		}
	}

	struct wk_outbox_opts oo = {
		.pg_uri = cfg.pg_uri, .producer = producer, .topics = &topics, .batch = (int)cfg.outbox_batch};
	outbox = wk_outbox_start(&oo, err, sizeof(err));
	if (!outbox) {
		rc = fatal("outbox relay", err);
		goto out;
	}
	struct wk_sched_opts so = {
		.pg_uri = cfg.pg_uri,
		.worker_id = worker_id,
		.lease_sec = (int)cfg.lease_sec,
		.batch = (int)cfg.batch,
		.lookahead_ms = (int)cfg.lookahead_ms,
		.events = cfg.events,
		.max_attempts = (int)cfg.max_attempts,
		.retry_base_ms = (int)cfg.retry_base_ms,
		.bcast_chunk = (int)cfg.bcast_chunk,
		.retention_days = (int)cfg.retention_days,
		.housekeeping_sec = (int)cfg.housekeeping_sec,
		.runtime = {.js = wk_js_default_limits,
			    .timeout_ms = (int)cfg.script_timeout_ms,
			    .sandbox = cfg.sandbox,
			    .sandbox_path = cfg.sandbox_path,
			    .sandbox_children = (int)cfg.sandbox_children,
			    .sandbox_max_runs = (int)cfg.sandbox_max_runs},
		.host = ho,
	};
	so.runtime.js.heap_max = (size_t)cfg.heap_mb << 20;
	parts.sched = wk_sched_start(&so, err, sizeof(err));
	if (!parts.sched) {
		rc = fatal("scheduler", err);
		goto out;
	}
	struct wk_consumer_opts co = {.brokers = cfg.brokers,
				      .group_id = cfg.group_id,
				      .client_id = worker_id,
				      .pg_uri = cfg.pg_uri,
				      .worker_id = worker_id,
				      .topics = &topics,
				      .props = &props,
				      .producer = producer,
				      .limits = &limits,
				      .batch = (int)cfg.consume_batch,
				      .window_us = (int)cfg.consume_window_ms * 1000,
				      .events = cfg.events};
	parts.consumer = wk_consumer_start(&co, err, sizeof(err));
	if (!parts.consumer) {
		rc = fatal("consumer", err);
		goto out;
	}
	if (cfg.http_port > 0) {
		httpd = cm_httpd_start(cfg.http_host, (int)cfg.http_port, ready, &parts, err, sizeof(err));
		if (!httpd) {
			rc = fatal("http", err);
			goto out;
		}
	}
	cm_log_kv(CM_LOG_INFO,
		  (const struct cm_kv[]){{"worker_id", worker_id}, {"brokers", cfg.brokers}, {"topic", topics.jobs}}, 3,
		  "botjobs-worker running");

	while (!cm_signal_stopping()) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	cm_log_info("stopping: no new claims; finishing runs in hand, committing offsets, relaying the outbox");
	rc = 0;
out:
	/* Order matters: stop taking work, finish it, then relay what it produced. */
	wk_consumer_stop(parts.consumer);
	wk_sched_stop(parts.sched);
	wk_outbox_stop(outbox);
	cm_httpd_stop(httpd);
	if (producer) {
		rd_kafka_flush(producer, 10000);
		rd_kafka_destroy(producer);
	}
	cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
	curl_global_cleanup();
	if (rc == 0)
		cm_log_info("botjobs-worker stopped");
	return rc;
}
