/*
 * cm_config.h - one settings table per binary drives flags, BOTJOBS_* environment variables,
 * --help and --print-config. Precedence: flag beats environment beats default.
 *
 * Each binary declares   static const struct cm_opt opts[] = {
 *     {"http-port", "BOTJOBS_HTTP_PORT", "8080", "HTTP listen port", CM_OPT_INT, offsetof(struct cfg, http_port), 1, 65535},
 *     ... };
 * and calls cm_config_load() once at start-up. Values land in the caller's struct at `off`:
 * CM_OPT_STR -> char * (owned by the struct, freed by cm_config_free), CM_OPT_INT -> long,
 * CM_OPT_BOOL -> int (0/1). librdkafka properties pass through with -X key=value (repeatable) or
 * BOTJOBS_KAFKA_PROPERTIES="key=value,key=value".
 */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <stddef.h>
#include "cm_compiler.h"

enum cm_opt_type { CM_OPT_STR, CM_OPT_INT, CM_OPT_BOOL };

struct cm_opt {
	const char *flag; /* long option name without the leading "--" */
	const char *env;  /* environment variable, or NULL */
	const char *def;  /* default as text, NULL = empty */
	const char *help;
	enum cm_opt_type type;
	size_t off;    /* offsetof() the field in the caller's config struct */
	long min, max; /* range for CM_OPT_INT */
	int secret;    /* masked by --print-config */
};

#define CM_PROPS_MAX 64
struct cm_props {
	size_t n;
	char *key[CM_PROPS_MAX];
	char *val[CM_PROPS_MAX];
};

enum { CM_CONFIG_OK = 0, CM_CONFIG_EXIT = 1, CM_CONFIG_ERROR = -1 };

/*
 * Fills cfg from defaults, environment and argv[1..]. Parsing stops at the first argument that is
 * not an option (or after "--"); its index goes to *argi when argi is not NULL (otherwise any
 * positional argument is an error). Returns CM_CONFIG_OK; CM_CONFIG_EXIT after printing --help,
 * --print-config or --version (the caller exits 0); CM_CONFIG_ERROR with one line in errstr (the
 * caller exits 2). props may be NULL when the binary takes no -X.
 */
int cm_config_load(const struct cm_opt *opts, size_t nopts, void *cfg, struct cm_props *props, const char *prog,
		   const char *usage, int argc, char **argv, int *argi, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* Frees the CM_OPT_STR fields and the props. NULL-safe. */
void cm_config_free(const struct cm_opt *opts, size_t nopts, void *cfg, struct cm_props *props);

/* Adds or replaces key=value in props. Returns -1 when full. */
int cm_props_set(struct cm_props *props, const char *key, const char *val) CM_MUSTCHECK;

#define CM_VERSION "0.1.0"

#endif
