/*
 * ctl.h - botjobsctl, the admin CLI: the shared configuration, output helpers and the commands
 * (one file per area: ctl_business.c, ctl_bot.c, ctl_apply.c, ctl_token.c, ctl_lead.c, ctl_job.c,
 * ctl_misc.c). main.c holds the settings table and the command table that drives dispatch and help.
 *
 * Every command returns the process exit status: 0 ok, 1 failed (with a message on stderr), 2 usage.
 * Results go to stdout (a table or "key: value" lines for people, JSON with --json); progress and
 * problems go to stderr.
 */
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"
#include "cm_config.h"

struct ctl_cfg {
	char *pg_uri, *brokers, *topic_prefix, *log_format, *log_level;
	char *business, *status, *tag;
	long partitions, replication, count, timeout_ms, expires_days, lead, limit;
	int prune, json, dry_run;
	struct cm_props props;
};

/* A command, run with the positional arguments that follow its words (argv[0] is the first one). */
typedef int (*ctl_run_fn)(const struct ctl_cfg *cfg, int argc, char **argv);

/* ---- ctl_out.c: connections and output ---- */

/* Connects to PostgreSQL or prints why and returns NULL. */
PGconn *ctl_connect(const struct ctl_cfg *cfg);

/*
 * Runs a query whose first row's first cell is JSON text and returns it parsed (a new reference).
 * No row or SQL NULL gives JSON null. On failure prints "botjobsctl: what: error" and returns NULL.
 */
json_t *ctl_query_json(PGconn *c, const char *sql, int nparams, const char *const *params,
		       const char *what) CM_MUSTCHECK;

/* Prints v to stdout as indented JSON, keys in their order, and a newline. */
void ctl_json_print(const json_t *v);

/* One column of a table: the key in each row object, its title, and a width cap (0 = none). */
struct ctl_col {
	const char *key;
	const char *title;
	int max_width;
};
/* Prints rows (an array of objects) as an aligned table with a title line; "(none)" when empty.
 * Strings print as they are (control characters as spaces), null as "-", arrays of strings as "a,b",
 * anything else as compact JSON. */
void ctl_table_print(const json_t *rows, const struct ctl_col *cols, size_t ncols);

/* Prints an object as aligned "key: value" lines (values as in tables), leaving out the keys in skip
 * (a NULL-terminated list, may be NULL). */
void ctl_show_print(const json_t *obj, const char *const *skip);

/* A value as table text (see ctl_table_print). Returns a malloc'd string. */
char *ctl_value_text(const json_t *v);

/* Parses a positive decimal id. Returns 0, or -1 when s is not one. */
int ctl_parse_id(const char *s, int64_t *out) CM_MUSTCHECK;

/*
 * Finds a business by name, or by id when no business has that name. Writes its id (decimal) to
 * id_out. Returns 1 when found, 0 when not, -1 on a database error (printed with what).
 */
int ctl_business_find(PGconn *c, const char *name_or_id, char *id_out, size_t id_size, const char *what) CM_MUSTCHECK;

/* ---- the commands ---- */

int ctl_migrate(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_topics(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_tail(const struct ctl_cfg *cfg, int argc, char **argv);
/* validate [request|envelope]: the schedule rules' verdict on JSON from stdin. */
int ctl_validate(const struct ctl_cfg *cfg, int argc, char **argv);

int ctl_business_create(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_business_list(const struct ctl_cfg *cfg, int argc, char **argv);

int ctl_bot_create(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_bot_list(const struct ctl_cfg *cfg, int argc, char **argv);
/* bot apply DIR / bot check DIR: a bot folder with manifest.json (see ctl_manifest.h). */
int ctl_bot_apply(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_bot_check(const struct ctl_cfg *cfg, int argc, char **argv);

int ctl_token_create(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_token_list(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_token_revoke(const struct ctl_cfg *cfg, int argc, char **argv);

int ctl_lead_import(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_lead_show(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_lead_list(const struct ctl_cfg *cfg, int argc, char **argv);

int ctl_job_show(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_job_list(const struct ctl_cfg *cfg, int argc, char **argv);
int ctl_job_cancel(const struct ctl_cfg *cfg, int argc, char **argv);

#endif
