/*
 * wk_host.c - the host of bot JavaScript's outside calls: per-run binding to the job's bot, dispatch,
 * metrics and log lines, and running findLeads. See wk_host.h for the contract; the findLeads SQL
 * builder is wk_host_find.c, api.* is wk_host_api.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "wk_host_int.h"
#include "wk_metrics.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const struct wk_host_opts wk_host_default_opts = {
	.find_limit = 100,
	.api_connect_timeout_ms = 2000,
	.api_timeout_ms = 4000,
	.api_max_bytes = 1u << 20,
	.api_allow_private = 0,
	.api_allow_hosts = NULL,
};

_Static_assert(WK_M_HOST_OUTCOMES == WK_HOST_FAILED + 1, "one host-call counter per outcome");

/* ---- running findLeads ---- */

/* Errors the database has that are not the script's doing: the run is retried. */
static int infrastructure(const char *state)
{
	return state[0] == '\0' || strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	       strncmp(state, "58", 2) == 0 || strncmp(state, "40", 2) == 0 ||
	       (strncmp(state, "57", 2) == 0 && strcmp(state, "57014") != 0);
}

/* After a failed findLeads statement: ends our transaction, says why (errstr: for the script), logs it. */
static void find_failed(struct wk_host_run *run, int own, const char *err, char *errstr, size_t errstr_size)
{
	char state[6], bot[24];
	snprintf(state, sizeof(state), "%s", cm_pg_last_sqlstate());
	if (own)
		cm_pg_exec_quiet(run->host->conn, "ROLLBACK");
	if (strcmp(state, "57014") == 0) {
		snprintf(errstr, errstr_size, "the query took longer than %d ms (cancelled)", WK_HOST_FIND_TIMEOUT_MS);
	} else if (infrastructure(state) || cm_pg_broken(run->host->conn)) {
		run->db_failed = 1;
		snprintf(errstr, errstr_size, "database unavailable (the run will be retried)");
	} else {
		snprintf(errstr, errstr_size, "the query failed (SQLSTATE %s)", state);
	}
	snprintf(bot, sizeof(bot), "%" PRId64, run->bot_id);
	cm_log_kv(CM_LOG_WARN, (const struct cm_kv[]){{"job_id", run->job_id}, {"bot_id", bot}}, 2,
		  "findLeads failed: %s", err);
}

static json_t *find_leads(struct wk_host_run *run, const json_t *args, enum wk_host_outcome *oc, char *errstr,
			  size_t errstr_size)
{
	struct wk_host *h = run->host;
	struct wk_host_query q;
	char err[600];
	*oc = WK_HOST_INVALID;
	if (wk_host_find_build(args, run->bot_id, h->o.find_limit, &q, errstr, errstr_size) == -1)
		return NULL;
	*oc = WK_HOST_FAILED;
	if (!h->conn) {
		wk_host_query_clear(&q);
		snprintf(errstr, errstr_size, "not available here");
		return NULL;
	}
	/* Read only and time-boxed, in a transaction of its own (unless the caller already has one). */
	int own = PQtransactionStatus(h->conn) == PQTRANS_IDLE;
	json_t *out = NULL;
	if (own && cm_pg_exec(h->conn, "BEGIN READ ONLY; SET LOCAL statement_timeout = " STR(WK_HOST_FIND_TIMEOUT_MS),
			      err, sizeof(err)) == -1) {
		find_failed(run, own, err, errstr, errstr_size);
		goto out;
	}
	PGresult *res = cm_pg_query(h->conn, q.sql, q.nparams, (const char *const *)q.params, err, sizeof(err));
	if (!res) {
		find_failed(run, own, err, errstr, errstr_size);
		goto out;
	}
	out = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *row = json_loads(PQgetvalue(res, i, 0), 0, NULL);
		if (row)
			json_array_append_new(out, row);
	}
	PQclear(res);
	if (own && cm_pg_exec(h->conn, "COMMIT", err, sizeof(err)) == -1) {
		find_failed(run, own, err, errstr, errstr_size);
		json_decref(out);
		out = NULL;
		goto out;
	}
	*oc = WK_HOST_OK;
out:
	wk_host_query_clear(&q);
	return out;
}

struct wk_host *wk_host_new(PGconn *conn, const struct wk_host_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_host *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	h->conn = conn;
	h->o = opts ? *opts : wk_host_default_opts;
	if (h->o.find_limit < 1 || h->o.find_limit > WK_HOST_FIND_LIMIT_MAX) {
		snprintf(errstr, errstr_size, "the findLeads limit must be 1-%d", WK_HOST_FIND_LIMIT_MAX);
		goto err;
	}
	if (wk_host_allow_parse(h, h->o.api_allow_hosts, errstr, errstr_size) == -1)
		goto err;
	h->o.api_allow_hosts = NULL;
	return h;
err:
	wk_host_free(h);
	return NULL;
}

void wk_host_free(struct wk_host *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nallow; i++)
		free(h->allow[i]);
	free(h->allow);
	free(h);
}

const struct wk_js_host *wk_host_bind(struct wk_host *h, int64_t bot_id, const char *job_id, struct wk_host_run *run)
{
	memset(run, 0, sizeof(*run));
	if (!h)
		return NULL;
	run->host = h;
	run->bot_id = bot_id;
	run->job_id = job_id;
	run->js.call = wk_host_call;
	run->js.ctx = run;
	return &run->js;
}

static const char *const methods[WK_M_HOST_METHODS] = {"findLeads", "api.getJson", "api.postJson"};

json_t *wk_host_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size)
{
	struct wk_host_run *run = ctx;
	enum wk_host_outcome oc = WK_HOST_FAILED;
	int m = 0;
	while (m < WK_M_HOST_METHODS && strcmp(methods[m], method ? method : "") != 0)
		m++;
	if (m == WK_M_HOST_METHODS) {
		snprintf(errstr, errstr_size, "unknown host call");
		return NULL;
	}
	json_t *res;
	if (!json_is_object(args)) {
		oc = WK_HOST_INVALID;
		snprintf(errstr, errstr_size, "bad arguments");
		res = NULL;
	} else if (m == WK_M_HOST_FIND) {
		res = find_leads(run, args, &oc, errstr, errstr_size);
	} else {
		res = wk_host_api_call(run->host, m == WK_M_HOST_POST, args, &oc, errstr, errstr_size);
	}
	cm_metric_add(&wk_m_host_calls[m][oc], 1);
	if (!res) {
		char bot[24];
		snprintf(bot, sizeof(bot), "%" PRId64, run->bot_id);
		cm_log_kv(oc == WK_HOST_REFUSED ? CM_LOG_INFO : CM_LOG_DEBUG,
			  (const struct cm_kv[]){{"job_id", run->job_id}, {"bot_id", bot}}, 2, "%s: %s", method,
			  errstr);
	}
	return res;
}
