/*
 * wk_runtime.c - the in-process runtime: MuJS on the caller's thread, behind the wk_runtime.h contract.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wk_runtime.h"

struct wk_runtime {
	struct wk_runtime_opts opts;
	struct wk_js_engine *engine;
};

struct wk_runtime *wk_runtime_new(const struct wk_runtime_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	rt->opts = *opts;
	rt->engine = wk_js_engine_new(&opts->js);
	if (!rt->engine) {
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
	wk_js_engine_free(rt->engine);
	free(rt);
}

json_t *wk_runtime_run(struct wk_runtime *rt, const json_t *req, const struct wk_js_host *host, char *errstr,
		       size_t errstr_size)
{
	json_t *reply = wk_js_engine_run(rt->engine, req, host);
	if (!reply)
		snprintf(errstr, errstr_size, "runtime: out of memory");
	return reply;
}
