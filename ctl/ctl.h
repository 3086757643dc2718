/*
 * ctl.h - botjobsctl, the admin CLI: shared configuration and the commands (one file per area).
 * Every command returns the process exit status: 0 ok, 1 failed (with a message on stderr), 2 usage.
 */
#ifndef CTL_H
#define CTL_H

#include <libpq-fe.h>
#include "cm_compiler.h"
#include "cm_config.h"

struct ctl_cfg {
	char *pg_uri, *brokers, *topic_prefix, *log_format, *log_level;
	long partitions, replication, count, timeout_ms, expires_days;
	int prune;
	struct cm_props props;
};

/* Connects to PostgreSQL or prints why and returns NULL. */
PGconn *ctl_connect(const struct ctl_cfg *cfg);

int ctl_migrate(const struct ctl_cfg *cfg);
int ctl_topics(const struct ctl_cfg *cfg);
/* load DIR / check DIR: a bot folder with manifest.json (see examples/demo-bot). */
int ctl_load(const struct ctl_cfg *cfg, const char *dir, int check_only);
int ctl_token(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_lead(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_job(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_tail(const struct ctl_cfg *cfg, const char *topic);
/* validate [request|envelope]: the schedule rules' verdict on JSON from stdin. */
int ctl_validate(const struct ctl_cfg *cfg, const char *what);

#endif
