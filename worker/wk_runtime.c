/*
 * wk_runtime.c - where bot JavaScript runs, behind the wk_runtime.h contract: the sandbox pool
 * (wk_sandbox.h), or MuJS on the caller's thread when opts.sandbox is 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cm_time.h"
#include "wk_runtime.h"
#include "wk_sandbox.h"

struct wk_runtime {
	struct wk_runtime_opts opts;
	struct wk_sandbox *sb;	     /* the sandbox pool, or NULL: in-process */
	struct wk_js_engine *engine; /* in-process */
};

struct wk_runtime *wk_runtime_new(const struct wk_runtime_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	rt->opts = *opts;
	rt->opts.sandbox_path = NULL; /* borrowed only until here */
	if (opts->sandbox) {
		struct wk_sandbox_opts so = {.path = opts->sandbox_path,
					     .children = opts->sandbox_children,
					     .max_runs = opts->sandbox_max_runs,
					     .timeout_ms = opts->timeout_ms,
					     .js = opts->js};
		rt->sb = wk_sandbox_new(&so, errstr, errstr_size);
		if (!rt->sb) {
			free(rt);
			return NULL;
		}
	} else if (!(rt->engine = wk_js_engine_new(&opts->js))) {
		free(rt);
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	return rt;
}

void wk_runtime_free(struct wk_runtime *rt)
{
	if (!rt)
		return;
	wk_sandbox_free(rt->sb);
	wk_js_engine_free(rt->engine);
	free(rt);
}

json_t *wk_runtime_run(struct wk_runtime *rt, const json_t *req, const struct wk_js_host *host, char *errstr,
		       size_t errstr_size)
{
	if (rt->sb)
		return wk_sandbox_run(rt->sb, req, host, errstr, errstr_size);
	json_t *reply = wk_js_engine_run(rt->engine, req, host);
	if (!reply)
		snprintf(errstr, errstr_size, "runtime: out of memory");
	return reply;
}

int wk_runtime_run_leads(struct wk_runtime *rt, const json_t *req, const json_t *leads, const struct wk_js_host *host,
			 json_t *replies, char *errstr, size_t errstr_size)
{
	if (rt->sb)
		return wk_sandbox_run_leads(rt->sb, req, leads, host, replies, errstr, errstr_size);
	size_t i;
	const json_t *lead;
	json_array_foreach(leads, i, lead)
	{
		json_t *r = wk_js_lead_request(req, lead);
		json_t *reply = r ? wk_js_engine_run(rt->engine, r, host) : NULL;
		json_decref(r);
		if (!reply || json_array_append_new(replies, reply) == -1) {
			snprintf(errstr, errstr_size, "runtime: out of memory");
			return -1;
		}
	}
	return 0;
}

int wk_runtime_run_reqs(struct wk_runtime *rt, const json_t *reqs, const struct wk_js_host *const *hosts,
			json_t *replies, char *errstr, size_t errstr_size)
{
	if (rt->sb)
		return wk_sandbox_run_reqs(rt->sb, reqs, hosts, replies, errstr, errstr_size);
	size_t i;
	const json_t *req;
	json_array_foreach(reqs, i, req)
	{
		int64_t started = cm_time_now_us();
		json_t *reply = wk_js_engine_run(rt->engine, req, hosts[i]);
		if (!reply || json_object_set_new(reply, "started_us", json_integer(started)) == -1 ||
		    json_object_set_new(reply, "finished_us", json_integer(cm_time_now_us())) == -1 ||
		    json_array_append_new(replies, reply) == -1) {
			snprintf(errstr, errstr_size, "runtime: out of memory");
			return -1;
		}
	}
	return 0;
}
