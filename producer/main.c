/*
 * botjobs-producer - the HTTP ingest of botjobs: authenticates and validates schedule requests,
 * publishes them to Kafka, and answers 202 only once Kafka has them durably.
 *
 * Threads: libmicrohttpd's pool (requests), the Kafka delivery thread (answers), the catalog refresher.
 * Shutdown loses nothing: stop accepting, flush Kafka (every waiting request gets its answer), stop HTTP.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_kafka.h"
#include "cm_log.h"
#include "cm_signal.h"
#include "cm_time.h"
#include "pr_api.h"
#include "pr_catalog.h"
#include "pr_http.h"
#include "pr_kafka.h"
#include "pr_metrics.h"

struct cfg {
	char *brokers, *pg_uri, *topic_prefix, *http_host, *timezone, *log_format, *log_level, *unknown_fields;
	char *docs_dir;
	long http_port, http_threads, max_body_kb, read_timeout_sec, max_connections, kafka_timeout_ms;
	long catalog_refresh_sec, retry_after_sec, min_interval_sec, horizon_days, params_max_kb, condition_max_kb;
	long partitions, replication, store_threads, statement_timeout_ms, max_per_ip;
	long rate_limit, rate_burst;
	int create_topics, access_log;
};

/* one line per setting reads best */
/* clang-format off */
#define S(f) offsetof(struct cfg, f)
static const struct cm_opt opts[] = {
	{"kafka-brokers", "BOTJOBS_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap servers", CM_OPT_STR, S(brokers), 0, 0, 0},
	{"pg-uri", "BOTJOBS_PG_URI", "postgresql:///botjobs", "PostgreSQL URI (catalog: tokens, bots, targets)", CM_OPT_STR, S(pg_uri), 0, 0, 1},
	{"topic-prefix", "BOTJOBS_TOPIC_PREFIX", "botjobs.", "prefix of the topic names", CM_OPT_STR, S(topic_prefix), 0, 0, 0},
	{"http-host", "BOTJOBS_HTTP_HOST", "0.0.0.0", "address to listen on", CM_OPT_STR, S(http_host), 0, 0, 0},
	{"http-port", "BOTJOBS_HTTP_PORT", "8080", "port to listen on", CM_OPT_INT, S(http_port), 1, 65535, 0},
	{"http-threads", "BOTJOBS_HTTP_THREADS", "2", "HTTP worker threads", CM_OPT_INT, S(http_threads), 1, 256, 0},
	{"max-body-kb", "BOTJOBS_MAX_BODY_KB", "256", "largest request body (KiB); more is 413", CM_OPT_INT, S(max_body_kb), 1, 65536, 0},
	{"read-timeout-sec", "BOTJOBS_READ_TIMEOUT_SEC", "10", "a connection idle, or slower than this to send its request headers or body, is closed", CM_OPT_INT, S(read_timeout_sec), 1, 3600, 0},
	{"max-connections", "BOTJOBS_MAX_CONNECTIONS", "4096", "concurrent connections", CM_OPT_INT, S(max_connections), 1, 1000000, 0},
	{"kafka-timeout-ms", "BOTJOBS_KAFKA_TIMEOUT_MS", "10000", "how long a job may wait for Kafka's ack before the answer is 503", CM_OPT_INT, S(kafka_timeout_ms), 100, 600000, 0},
	{"retry-after-sec", "BOTJOBS_RETRY_AFTER_SEC", "5", "Retry-After of 503 answers", CM_OPT_INT, S(retry_after_sec), 1, 3600, 0},
	{"catalog-refresh-sec", "BOTJOBS_CATALOG_REFRESH_SEC", "30", "full catalog reload period (changes also arrive by NOTIFY)", CM_OPT_INT, S(catalog_refresh_sec), 1, 86400, 0},
	{"unknown-fields", "BOTJOBS_UNKNOWN_FIELDS", "warn", "unknown request fields: reject (422) or warn (202 with warnings)", CM_OPT_STR, S(unknown_fields), 0, 0, 0},
	{"params-max-kb", "BOTJOBS_PARAMS_MAX_KB", "64", "largest script_request_params (KiB)", CM_OPT_INT, S(params_max_kb), 1, 65536, 0},
	{"condition-max-kb", "BOTJOBS_CONDITION_MAX_KB", "64", "largest condition_script_code (KiB)", CM_OPT_INT, S(condition_max_kb), 1, 65536, 0},
	{"min-interval-sec", "BOTJOBS_MIN_INTERVAL_SEC", "10", "floor of repeat_interval_sec", CM_OPT_INT, S(min_interval_sec), 1, 86400, 0},
	{"horizon-days", "BOTJOBS_HORIZON_DAYS", "366", "how far ahead a job may be due", CM_OPT_INT, S(horizon_days), 1, 36600, 0},
	{"docs-dir", "BOTJOBS_DOCS_DIR", "", "directory of /api/docs and /api/openapi.json (default: ../share/botjobs/docs or ../build/docs next to the " "binary)", CM_OPT_STR, S(docs_dir), 0, 0, 0},
	{"max-per-ip", "BOTJOBS_MAX_PER_IP", "256", "concurrent connections from one address (0 = no limit)", CM_OPT_INT, S(max_per_ip), 0, 1000000, 0},
	{"rate-limit", "BOTJOBS_RATE_LIMIT", "200", "requests per second per API token (0 = no limit); more is 429", CM_OPT_INT, S(rate_limit), 0, 10000000, 0},
	{"rate-burst", "BOTJOBS_RATE_BURST", "400", "requests a token may send at once before the rate applies", CM_OPT_INT, S(rate_burst), 1, 10000000, 0},
	{"store-threads", "BOTJOBS_STORE_THREADS", "2", "PostgreSQL connections for the read and cancel endpoints", CM_OPT_INT, S(store_threads), 1, 64, 0},
	{"statement-timeout-ms", "BOTJOBS_STATEMENT_TIMEOUT_MS", "2000", "PostgreSQL statement timeout of those endpoints", CM_OPT_INT, S(statement_timeout_ms), 10, 600000, 0},
	{"access-log", "BOTJOBS_ACCESS_LOG", "true", "one log line per HTTP request", CM_OPT_BOOL, S(access_log), 0, 0, 0},
	{"create-topics", "BOTJOBS_CREATE_TOPICS", "true", "create missing topics at start-up", CM_OPT_BOOL, S(create_topics), 0, 0, 0},
	{"partitions", "BOTJOBS_PARTITIONS", "6", "partitions of topics created at start-up", CM_OPT_INT, S(partitions), 1, 10000, 0},
	{"replication", "BOTJOBS_REPLICATION", "1", "replication factor of topics created at start-up", CM_OPT_INT, S(replication), 1, 100, 0},
	{"timezone", "BOTJOBS_TIMEZONE", "UTC", "platform time zone of run_at values without an offset", CM_OPT_STR, S(timezone), 0, 0, 0},
	{"log-format", "BOTJOBS_LOG_FORMAT", "json", "json or text", CM_OPT_STR, S(log_format), 0, 0, 0},
	{"log-level", "BOTJOBS_LOG_LEVEL", "info", "debug, info, warn or error", CM_OPT_STR, S(log_level), 0, 0, 0},
};
#undef S
/* clang-format on */

struct parts {
	struct pr_catalog *catalog;
	struct pr_kafka *kafka;
};

static int ready(void *arg, char *why, size_t why_size)
{
	struct parts *p = arg;
	if (!pr_catalog_ready(p->catalog)) {
		snprintf(why, why_size, "catalog not loaded (database unavailable)");
		return 0;
	}
	return !pr_kafka_down(p->kafka, why, why_size);
}

/* ../share/botjobs/docs next to the binary (installed), else build/docs of a source tree (bin/ or build/san/bin/). */
static void default_docs_dir(char *out, size_t n)
{
	char exe[2048];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	out[0] = '\0';
	if (len <= 0)
		return;
	exe[len] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(out, n, "%s/../share/botjobs/docs", exe);
	if (access(out, R_OK) == 0)
		return;
	snprintf(out, n, "%s/../build/docs", exe);
	if (access(out, R_OK) == 0)
		return;
	snprintf(out, n, "%s/../../docs", exe);
}

int main(int argc, char **argv)
{
	struct cfg cfg = {0};
	struct cm_props props = {0};
	char err[1024];
	int rc = 1;
	struct parts parts = {0};
	struct pr_http *http = NULL;
	struct pr_docs *docs = NULL;
	struct pr_store *store = NULL;
	struct pr_ratelimit *ratelimit = NULL;
	struct pr_api api = {0};

	switch (cm_config_load(opts, CM_ARRAY_LEN(opts), &cfg, &props, "botjobs-producer", "[options]", argc, argv,
			       NULL, err, sizeof(err))) {
	case CM_CONFIG_EXIT:
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 0;
	case CM_CONFIG_ERROR:
		fprintf(stderr, "botjobs-producer: %s\n", err);
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	int lf = cm_log_format_parse(cfg.log_format), ll = cm_log_level_parse(cfg.log_level);
	enum cm_unknown_fields unknown = !strcmp(cfg.unknown_fields, "reject") ? CM_UNKNOWN_REJECT
					 : !strcmp(cfg.unknown_fields, "warn") ? CM_UNKNOWN_WARN
									       : (enum cm_unknown_fields) - 1;
	if (lf < 0 || ll < 0 || (int)unknown < 0) {
		fprintf(stderr, "botjobs-producer: --log-format json|text, --log-level debug|info|warn|error, "
				"--unknown-fields reject|warn\n");
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	cm_log_setup("producer", (enum cm_log_format)lf, (enum cm_log_level)ll);
	if (cm_time_set_zone(cfg.timezone, err, sizeof(err)) == -1) {
		fprintf(stderr, "botjobs-producer: --timezone: %s\n", err);
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
		return 2;
	}
	cm_signal_setup();
	pr_metrics_init();
	cm_log_with(CM_LOG_INFO, "version", CM_VERSION, "botjobs-producer starting");

	struct cm_topics topics;
	cm_topics_init(&topics, cfg.topic_prefix);
	char client_id[256], host[200] = "producer";
	gethostname(host, sizeof(host) - 1);
	snprintf(client_id, sizeof(client_id), "botjobs-producer-%s-%d", host, (int)getpid());

	parts.kafka = pr_kafka_start(cfg.brokers, client_id, &props, (int)cfg.kafka_timeout_ms, err, sizeof(err));
	if (!parts.kafka) {
		cm_log_error("kafka: %s", err);
		goto out;
	}
	if (cfg.create_topics) {
		rd_kafka_t *rk = pr_kafka_handle(parts.kafka);
		if (cm_kafka_wait_ready(rk, 30000, err, sizeof(err)) == -1 ||
		    cm_kafka_ensure_topics(rk, &topics, (int)cfg.partitions, (int)cfg.replication, 15000, err,
					   sizeof(err)) == -1)
			cm_log_warn("kafka topics: %s (requests get 503 until Kafka is back)", err);
	}
	parts.catalog = pr_catalog_start(cfg.pg_uri, (int)cfg.catalog_refresh_sec, err, sizeof(err));
	if (!parts.catalog) {
		cm_log_error("catalog: %s", err);
		goto out;
	}
	char docs_dir[4096];
	if (cfg.docs_dir[0])
		snprintf(docs_dir, sizeof(docs_dir), "%s", cfg.docs_dir);
	else
		default_docs_dir(docs_dir, sizeof(docs_dir));
	docs = pr_docs_load(docs_dir);
	store = pr_store_start(cfg.pg_uri, (int)cfg.store_threads, (int)cfg.statement_timeout_ms, 4096, err,
			       sizeof(err));
	ratelimit = pr_ratelimit_new((double)cfg.rate_limit, (double)cfg.rate_burst);
	if (!store || !ratelimit) {
		cm_log_error("start-up: %s", store ? "out of memory" : err);
		goto out;
	}
	api = (struct pr_api){.catalog = parts.catalog,
			      .store = store,
			      .ratelimit = ratelimit,
			      .docs = docs,
			      .kafka = parts.kafka,
			      .topics = &topics,
			      .limits = cm_job_default_limits,
			      .unknown = unknown,
			      .retry_after_sec = (int)cfg.retry_after_sec};
	if (pr_api_init(&api) == -1) {
		cm_log_error("start-up: out of memory");
		goto out;
	}
	api.limits.min_interval_sec = cfg.min_interval_sec;
	api.limits.horizon_sec = cfg.horizon_days * 86400;
	api.limits.params_max = cfg.params_max_kb * 1024;
	api.limits.condition_max = cfg.condition_max_kb * 1024;
	struct pr_http_opts ho = {.host = cfg.http_host,
				  .port = (int)cfg.http_port,
				  .threads = (int)cfg.http_threads,
				  .max_body = (size_t)cfg.max_body_kb * 1024,
				  .read_timeout_sec = (int)cfg.read_timeout_sec,
				  .max_connections = (int)cfg.max_connections,
				  .max_per_ip = (int)cfg.max_per_ip,
				  .access_log = cfg.access_log};
	http = pr_http_start(&ho, pr_api_handle, &api, ready, &parts, err, sizeof(err));
	if (!http) {
		cm_log_error("http: %s", err);
		goto out;
	}
	char listen[300];
	snprintf(listen, sizeof(listen), "%s:%ld", cfg.http_host, cfg.http_port);
	cm_log_kv(CM_LOG_INFO, (const struct cm_kv[]){{"listen", listen}, {"topic", topics.jobs}}, 2,
		  "botjobs-producer running");
	while (!cm_signal_stopping()) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	cm_log_info("stopping: no new connections; answering requests in flight");
	rc = 0;
out:
	pr_http_quiesce(http);
	pr_store_stop(store); /* runs what is queued: those requests get their answers (or send to Kafka) */
	pr_kafka_stop(parts.kafka, (int)cfg.kafka_timeout_ms + 1000); /* every waiting request gets its answer */
	pr_http_stop(http, 2000);
	pr_api_clear(&api);
	pr_ratelimit_free(ratelimit);
	pr_catalog_stop(parts.catalog);
	pr_docs_free(docs);
	cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &props);
	if (rc == 0)
		cm_log_info("botjobs-producer stopped");
	return rc;
}
