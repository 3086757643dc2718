/*
 * bench_sandbox - the cost of the sandbox (workload w7 of bench/bench.py; no database, no Kafka).
 *
 * Pinned to one CPU (the children inherit it), it runs the benchmark's trivial trigger (read one
 * parameter, set one lead attribute) N times in-process with wk_js_run, then N times through a
 * pool of one child, and reports runs/s and the p50/p99 of one run's round trip; then the cost of
 * a respawn: a child started until it has greeted (wk_sandbox_new with one child), and runs/s
 * when every run gets a fresh child (max_runs = 1, what forking per job would cost).
 *
 *   build/rel/bench/bench_sandbox [--runs N] [--respawns M] [--cpu C] [--sandbox PATH]
 * Prints one JSON object.
 */
#define _GNU_SOURCE /* sched_setaffinity */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_time.h"
#include "wk_js.h"
#include "wk_sandbox.h"

static const char TRIVIAL[] = "lead.setAttr('n', request.getParam('n', 0));";

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct_us(int64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	size_t k = (size_t)((double)(n - 1) * p / 100.0 + 0.5);
	return (double)v[k];
}

static json_t *request(int n)
{
	return json_pack("{s{sisiss} s{sisss{}s[]} s{sis{}} s{si} ss ss}", "context", "botId", 900, "leadId", 1,
			 "jobId", "01a212f2-b91c-7e27-83e4-9f71b82b0035", "lead", "id", 1, "name", "bench",
			 "attributes", "tags", "bot", "id", 900, "attributes", "params", "n", n, "name",
			 "trigger 'trivial'", "code", TRIVIAL);
}

struct series {
	double runs_per_sec, p50_us, p99_us;
};

/* Times n runs of one way of running; sb NULL = in-process, on one engine (its MuJS state reused across
 * runs, as the worker's in-process runtime and every sandbox child do). */
static int measure(struct wk_sandbox *sb, struct wk_js_engine *eng, int n, struct series *out)
{
	int64_t *t = calloc((size_t)n, sizeof(int64_t));
	if (!t)
		return -1;
	int64_t start = cm_time_mono_us();
	for (int i = 0; i < n; i++) {
		char err[512];
		json_t *req = request(i);
		int64_t t0 = cm_time_mono_us();
		json_t *r = sb ? wk_sandbox_run(sb, req, NULL, err, sizeof(err)) : wk_js_engine_run(eng, req, NULL);
		t[i] = cm_time_mono_us() - t0;
		const char *o = json_string_value(json_object_get(r, "outcome"));
		if (!o || strcmp(o, "done") != 0) {
			fprintf(stderr, "bench_sandbox: run %d: %s\n", i,
				r ? json_string_value(json_object_get(r, "error")) : err);
			json_decref(r), json_decref(req);
			free(t);
			return -1;
		}
		json_decref(r), json_decref(req);
	}
	int64_t total = cm_time_mono_us() - start;
	out->runs_per_sec = (double)n * 1e6 / (double)total;
	out->p50_us = pct_us(t, (size_t)n, 50);
	out->p99_us = pct_us(t, (size_t)n, 99);
	free(t);
	return 0;
}

static struct wk_sandbox *pool(const char *path, int max_runs, const struct wk_js_limits *lim)
{
	char err[512];
	struct wk_sandbox_opts o = {.path = path, .children = 1, .max_runs = max_runs, .timeout_ms = 5000, .js = *lim};
	struct wk_sandbox *sb = wk_sandbox_new(&o, err, sizeof(err));
	if (!sb)
		fprintf(stderr, "bench_sandbox: %s\n", err);
	return sb;
}

int main(int argc, char **argv)
{
	int runs = 20000, respawns = 200, cpu = -1;
	const char *path = "bin/botjobs-sandbox";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--runs") == 0)
			runs = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--respawns") == 0)
			respawns = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--cpu") == 0)
			cpu = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--sandbox") == 0)
			path = argv[i + 1];
	}
	if (runs < 100 || respawns < 10) {
		fprintf(stderr, "usage: bench_sandbox [--runs N>=100] [--respawns M>=10] [--cpu C] [--sandbox PATH]\n");
		return 2;
	}
	cm_log_setup("bench", CM_LOG_TEXT, CM_LOG_WARN);
	cpu_set_t set;
	CPU_ZERO(&set);
	if (cpu < 0 && sched_getaffinity(0, sizeof(set), &set) == 0)
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set); cpu++)
			;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		perror("sched_setaffinity");
		return 1;
	}

	struct wk_js_limits lim = wk_js_default_limits;
	struct series inproc, sandbox, fresh;
	struct wk_sandbox *sb = pool(path, 1000000000, &lim);
	struct wk_js_engine *eng = wk_js_engine_new(&lim);
	if (!sb || !eng || measure(NULL, eng, 500, &inproc) == -1 || measure(sb, NULL, 500, &sandbox) == -1 ||
	    /* warm-up */ measure(NULL, eng, runs, &inproc) == -1 || measure(sb, NULL, runs, &sandbox) == -1)
		return 1;
	wk_sandbox_free(sb);
	wk_js_engine_free(eng);

	/* Respawn: a child from posix_spawn until its hello (exec, dynamic linking, warm-up, seccomp). */
	int64_t *t = calloc((size_t)respawns, sizeof(int64_t));
	if (!t)
		return 1;
	for (int i = 0; i < respawns; i++) {
		int64_t t0 = cm_time_mono_us();
		sb = pool(path, 1000, &lim);
		t[i] = cm_time_mono_us() - t0;
		if (!sb) {
			free(t);
			return 1;
		}
		wk_sandbox_free(sb);
	}
	double spawn_p50 = pct_us(t, (size_t)respawns, 50), spawn_p99 = pct_us(t, (size_t)respawns, 99);
	free(t);
	sb = pool(path, 1, &lim);
	if (!sb || measure(sb, NULL, respawns, &fresh) == -1)
		return 1;
	wk_sandbox_free(sb);

	printf("{\"cpu\":%d,\"runs\":%d,\"respawns\":%d,"
	       "\"in_process\":{\"runs_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f},"
	       "\"sandbox\":{\"runs_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f},"
	       "\"respawn\":{\"p50_us\":%.0f,\"p99_us\":%.0f},"
	       "\"fresh_child_per_run\":{\"runs_per_sec\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f}}\n",
	       cpu, runs, respawns, inproc.runs_per_sec, inproc.p50_us, inproc.p99_us, sandbox.runs_per_sec,
	       sandbox.p50_us, sandbox.p99_us, spawn_p50, spawn_p99, fresh.runs_per_sec, fresh.p50_us, fresh.p99_us);
	return 0;
}
