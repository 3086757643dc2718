/*
 * botjobs-sandbox - runs bot JavaScript for botjobs-worker in a locked-down process: no database,
 * no network, no files (SPEC §4). The worker's sandbox pool (worker/wk_sandbox.h) starts it, talks
 * to it over fd 3 and reuses it for many runs; it is not meant to be started by hand.
 *
 * Start-up: options (from the worker, never from the environment) -> time zone, logs -> descriptors,
 * lifeline, resource limits -> a warm-up run -> PR_SET_NO_NEW_PRIVS + seccomp -> hello -> serve.
 * Exit status: 0 when the worker closed the socket, 2 bad options, 3 protocol error, 4 set-up failed;
 * --selftest: 1 the forbidden call went through, 5 it failed with ENOSYS/EPERM (or SIGSYS kills it).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_log.h"
#include "cm_time.h"
#include "sb_jail.h"
#include "sb_serve.h"
#include "wk_sandbox.h"

struct cfg {
	long heap_max, messages_max, jobs_max, log_max, calls_max, states, runs_per_state;
	char *timezone, *log_format, *log_level, *selftest;
};

/* one line per setting reads best */
/* clang-format off */
#define S(f) offsetof(struct cfg, f)
static const struct cm_opt opts[] = {
	{"heap-max", NULL, "67108864", "bytes the MuJS allocator may hold per run (0 = no cap)", CM_OPT_INT, S(heap_max), 0, 1L << 40, 0},
	{"messages-max", NULL, "100", "sendText calls per run", CM_OPT_INT, S(messages_max), 0, 1000000, 0},
	{"jobs-max", NULL, "100", "scheduleJob calls per run", CM_OPT_INT, S(jobs_max), 0, 1000000, 0},
	{"log-max", NULL, "100", "console.log lines kept per run", CM_OPT_INT, S(log_max), 0, 1000000, 0},
	{"calls-max", NULL, "50", "host calls (findLeads, api.*) per run", CM_OPT_INT, S(calls_max), 0, 1000000, 0},
	{"states", NULL, "4", "MuJS states kept for reuse, one bot each (at most 4 in a child)", CM_OPT_INT, S(states), 1, 4, 0},
	{"runs-per-state", NULL, "1000", "a state is rebuilt after this many runs", CM_OPT_INT, S(runs_per_state), 1, 1000000, 0},
	{"timezone", NULL, "UTC", "platform time zone of run_at values without an offset", CM_OPT_STR, S(timezone), 0, 0, 0},
	{"log-format", NULL, "json", "json or text", CM_OPT_STR, S(log_format), 0, 0, 0},
	{"log-level", NULL, "info", "debug, info, warn or error", CM_OPT_STR, S(log_level), 0, 0, 0},
	{"selftest", NULL, "", "tests only: lock down, then make this forbidden system call (see sb_jail.h)", CM_OPT_STR, S(selftest), 0, 0, 0},
};
#undef S
/* clang-format on */

int main(int argc, char **argv)
{
	struct cfg cfg = {0};
	char err[512];
	int rc = 4;

	switch (cm_config_load(opts, CM_ARRAY_LEN(opts), &cfg, NULL, "botjobs-sandbox",
			       "[options] (started by "
			       "botjobs-worker)",
			       argc, argv, NULL, err, sizeof(err))) {
	case CM_CONFIG_EXIT:
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, NULL);
		return 0;
	case CM_CONFIG_ERROR:
		fprintf(stderr, "botjobs-sandbox: %s\n", err);
		cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, NULL);
		return 2;
	}
	int lf = cm_log_format_parse(cfg.log_format), ll = cm_log_level_parse(cfg.log_level);
	cm_log_setup("sandbox", lf < 0 ? CM_LOG_JSON : (enum cm_log_format)lf,
		     ll < 0 ? CM_LOG_INFO : (enum cm_log_level)ll);
	struct wk_js_limits lim = {.heap_max = (size_t)cfg.heap_max,
				   .messages_max = (size_t)cfg.messages_max,
				   .jobs_max = (size_t)cfg.jobs_max,
				   .log_max = (size_t)cfg.log_max,
				   .calls_max = (size_t)cfg.calls_max,
				   .states = (size_t)cfg.states,
				   .runs_per_state = (int)cfg.runs_per_state};

	if (cm_time_set_zone(cfg.timezone, err, sizeof(err)) == -1 ||
	    sb_jail_prepare(lim.heap_max, err, sizeof(err)) == -1) {
		cm_log_error("sandbox %d: set-up: %s", (int)getpid(), err);
		goto out;
	}
	sb_serve_warm(&lim);
	if (sb_jail_lock(err, sizeof(err)) == -1) {
		cm_log_error("sandbox %d: locking down: %s", (int)getpid(), err);
		goto out;
	}
	if (cfg.selftest[0]) {
		errno = 0;
		int r = sb_jail_try(cfg.selftest);
		int e = errno;
		cm_log_error("sandbox %d: selftest %s: the call returned %d (%s)", (int)getpid(), cfg.selftest, r,
			     strerror(e));
		rc = r == -1 && (e == ENOSYS || e == EPERM) ? 5 : 1; /* 5: refused without a kill */
		goto out;
	}
	rc = sb_serve(WK_SANDBOX_FD, &lim);
out:
	cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, NULL);
	return rc;
}
