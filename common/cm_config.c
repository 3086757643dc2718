/*
 * cm_config.c - table-driven flags / environment / defaults. See cm_config.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_config.h"

static char **str_field(void *cfg, const struct cm_opt *o)
{
	return (char **)(void *)((char *)cfg + o->off);
}

static long *int_field(void *cfg, const struct cm_opt *o)
{
	return (long *)(void *)((char *)cfg + o->off);
}

static int *bool_field(void *cfg, const struct cm_opt *o)
{
	return (int *)(void *)((char *)cfg + o->off);
}

static int parse_bool(const char *s, int *out)
{
	if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) {
		*out = 1;
		return 0;
	}
	if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) {
		*out = 0;
		return 0;
	}
	return -1;
}

/* Sets one option from text; `from` names the source for the error ("--x", "BOTJOBS_X", "default"). */
static int set_value(void *cfg, const struct cm_opt *o, const char *val, const char *from, char *errstr,
		     size_t errstr_size)
{
	switch (o->type) {
	case CM_OPT_STR: {
		char **f = str_field(cfg, o);
		char *dup = strdup(val ? val : "");
		if (!dup) {
			snprintf(errstr, errstr_size, "out of memory");
			return -1;
		}
		free(*f);
		*f = dup;
		return 0;
	}
	case CM_OPT_INT: {
		char *end;
		errno = 0;
		long v = strtol(val ? val : "", &end, 10);
		if (!val || !*val || *end || errno) {
			snprintf(errstr, errstr_size, "%s: '%s' is not an integer", from, val ? val : "");
			return -1;
		}
		if (v < o->min || v > o->max) {
			snprintf(errstr, errstr_size, "%s: %ld is out of range [%ld, %ld]", from, v, o->min, o->max);
			return -1;
		}
		*int_field(cfg, o) = v;
		return 0;
	}
	case CM_OPT_BOOL: {
		int b;
		if (!val || parse_bool(val, &b) == -1) {
			snprintf(errstr, errstr_size, "%s: '%s' is not a boolean (true/false)", from, val ? val : "");
			return -1;
		}
		*bool_field(cfg, o) = b;
		return 0;
	}
	}
	return -1;
}

int cm_props_set(struct cm_props *props, const char *key, const char *val)
{
	for (size_t i = 0; i < props->n; i++) {
		if (strcmp(props->key[i], key) == 0) {
			char *v = strdup(val);
			if (!v)
				return -1;
			free(props->val[i]);
			props->val[i] = v;
			return 0;
		}
	}
	if (props->n == CM_PROPS_MAX)
		return -1;
	char *k = strdup(key), *v = strdup(val);
	if (!k || !v) {
		free(k);
		free(v);
		return -1;
	}
	props->key[props->n] = k;
	props->val[props->n] = v;
	props->n++;
	return 0;
}

static int add_prop(struct cm_props *props, const char *kv, const char *from, char *errstr, size_t errstr_size)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		snprintf(errstr, errstr_size, "%s: '%s' is not key=value", from, kv);
		return -1;
	}
	char key[256];
	size_t kl = (size_t)(eq - kv);
	if (kl >= sizeof(key)) {
		snprintf(errstr, errstr_size, "%s: key too long", from);
		return -1;
	}
	memcpy(key, kv, kl);
	key[kl] = '\0';
	if (cm_props_set(props, key, eq + 1) == -1) {
		snprintf(errstr, errstr_size, "%s: too many properties", from);
		return -1;
	}
	return 0;
}

static void print_help(const struct cm_opt *opts, size_t nopts, const char *prog, const char *usage, int has_props)
{
	printf("Usage: %s %s\n\nOptions (flag / environment variable / default):\n", prog, usage);
	for (size_t i = 0; i < nopts; i++) {
		const struct cm_opt *o = &opts[i];
		printf("  --%s%s\n      %s\n      env %s, default: %s\n", o->flag,
		       o->type == CM_OPT_BOOL  ? "[=BOOL]"
		       : o->type == CM_OPT_INT ? "=N"
					       : "=VALUE",
		       o->help, o->env ? o->env : "-", o->def && *o->def ? o->def : "(empty)");
	}
	if (has_props)
		printf("  -X key=value\n      librdkafka property, repeatable; env "
		       "BOTJOBS_KAFKA_PROPERTIES=\"k=v,k=v\"\n");
	printf("  --print-config\n      print the effective configuration and exit\n"
	       "  --version\n      print the version and exit\n  -h, --help\n      this help\n");
}

/* The table as Markdown, for the README (tools/readme-config.sh keeps it in step). */
static void print_markdown(const struct cm_opt *opts, size_t nopts, int has_props)
{
	printf("| flag | environment | default | meaning |\n|---|---|---|---|\n");
	for (size_t i = 0; i < nopts; i++)
		printf("| `--%s` | %s%s%s | %s%s%s | %s |\n", opts[i].flag, opts[i].env ? "`" : "",
		       opts[i].env ? opts[i].env : "-", opts[i].env ? "`" : "", opts[i].def && *opts[i].def ? "`" : "",
		       opts[i].def && *opts[i].def ? opts[i].def : "(empty)", opts[i].def && *opts[i].def ? "`" : "",
		       opts[i].help);
	if (has_props)
		printf("| `-X key=value` | `BOTJOBS_KAFKA_PROPERTIES` (`k=v,k=v`) | | any librdkafka property |\n");
}

static void print_config(const struct cm_opt *opts, size_t nopts, void *cfg, const struct cm_props *props)
{
	for (size_t i = 0; i < nopts; i++) {
		const struct cm_opt *o = &opts[i];
		switch (o->type) {
		case CM_OPT_STR: {
			const char *v = *str_field(cfg, o);
			printf("%s=%s\n", o->flag, o->secret && v && *v ? "********" : (v ? v : ""));
			break;
		}
		case CM_OPT_INT:
			printf("%s=%ld\n", o->flag, *int_field(cfg, o));
			break;
		case CM_OPT_BOOL:
			printf("%s=%s\n", o->flag, *bool_field(cfg, o) ? "true" : "false");
			break;
		}
	}
	for (size_t i = 0; props && i < props->n; i++)
		printf("X %s=%s\n", props->key[i], strstr(props->key[i], "password") ? "********" : props->val[i]);
}

static const struct cm_opt *find_opt(const struct cm_opt *opts, size_t nopts, const char *name, size_t len)
{
	for (size_t i = 0; i < nopts; i++)
		if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, name, len) == 0)
			return &opts[i];
	return NULL;
}

int cm_config_load(const struct cm_opt *opts, size_t nopts, void *cfg, struct cm_props *props, const char *prog,
		   const char *usage, int argc, char **argv, int *argi, char *errstr, size_t errstr_size)
{
	char from[128];
	int want_print = 0;

	for (size_t i = 0; i < nopts; i++) {
		snprintf(from, sizeof(from), "default of --%s", opts[i].flag);
		if (set_value(cfg, &opts[i], opts[i].def ? opts[i].def : "", from, errstr, errstr_size) == -1)
			return CM_CONFIG_ERROR;
	}
	for (size_t i = 0; i < nopts; i++) {
		const char *ev = opts[i].env ? getenv(opts[i].env) : NULL;
		if (ev && set_value(cfg, &opts[i], ev, opts[i].env, errstr, errstr_size) == -1)
			return CM_CONFIG_ERROR;
	}
	const char *pe = props ? getenv("BOTJOBS_KAFKA_PROPERTIES") : NULL;
	if (pe && *pe) {
		char *copy = strdup(pe), *save = NULL;
		if (!copy) {
			snprintf(errstr, errstr_size, "out of memory");
			return CM_CONFIG_ERROR;
		}
		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (add_prop(props, tok, "BOTJOBS_KAFKA_PROPERTIES", errstr, errstr_size) == -1) {
				free(copy);
				return CM_CONFIG_ERROR;
			}
		}
		free(copy);
	}

	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			print_help(opts, nopts, prog, usage, props != NULL);
			return CM_CONFIG_EXIT;
		}
		if (strcmp(a, "--version") == 0) {
			printf("%s %s\n", prog, CM_VERSION);
			return CM_CONFIG_EXIT;
		}
		if (strcmp(a, "--help-markdown") == 0) {
			print_markdown(opts, nopts, props != NULL);
			return CM_CONFIG_EXIT;
		}
		if (strcmp(a, "--print-config") == 0) {
			want_print = 1;
			continue;
		}
		if (props && strncmp(a, "-X", 2) == 0) {
			const char *kv = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!kv) {
				snprintf(errstr, errstr_size, "-X needs key=value");
				return CM_CONFIG_ERROR;
			}
			if (add_prop(props, kv, "-X", errstr, errstr_size) == -1)
				return CM_CONFIG_ERROR;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			if (a[0] == '-' && a[1]) {
				snprintf(errstr, errstr_size, "unknown option '%s' (see --help)", a);
				return CM_CONFIG_ERROR;
			}
			break; /* first positional argument */
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct cm_opt *o = find_opt(opts, nopts, name, len);
		if (!o) {
			snprintf(errstr, errstr_size, "unknown option '--%.*s' (see --help)", (int)len, name);
			return CM_CONFIG_ERROR;
		}
		const char *val;
		if (eq)
			val = eq + 1;
		else if (o->type == CM_OPT_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(errstr, errstr_size, "--%s needs a value", o->flag);
			return CM_CONFIG_ERROR;
		}
		snprintf(from, sizeof(from), "--%s", o->flag);
		if (set_value(cfg, o, val, from, errstr, errstr_size) == -1)
			return CM_CONFIG_ERROR;
	}
	if (argi)
		*argi = i;
	else if (i < argc) {
		snprintf(errstr, errstr_size, "unexpected argument '%s' (see --help)", argv[i]);
		return CM_CONFIG_ERROR;
	}
	if (want_print) {
		print_config(opts, nopts, cfg, props);
		return CM_CONFIG_EXIT;
	}
	return CM_CONFIG_OK;
}

void cm_config_free(const struct cm_opt *opts, size_t nopts, void *cfg, struct cm_props *props)
{
	if (cfg) {
		for (size_t i = 0; i < nopts; i++) {
			if (opts[i].type == CM_OPT_STR) {
				char **f = str_field(cfg, &opts[i]);
				free(*f);
				*f = NULL;
			}
		}
	}
	if (props) {
		for (size_t i = 0; i < props->n; i++) {
			free(props->key[i]);
			free(props->val[i]);
		}
		props->n = 0;
	}
}
