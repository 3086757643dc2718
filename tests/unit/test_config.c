/*
 * test_config.c - the settings table: flag beats environment beats default; bad values are refused
 * with the option's name; -X properties pass through.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cm_config.h"

struct cfg {
	char *name;
	long port;
	int verbose;
};

static const struct cm_opt opts[] = {
	{"name", "BJTEST_NAME", "dflt", "a name", CM_OPT_STR, offsetof(struct cfg, name), 0, 0, 0},
	{"port", "BJTEST_PORT", "8080", "a port", CM_OPT_INT, offsetof(struct cfg, port), 1, 65535, 0},
	{"verbose", "BJTEST_VERBOSE", "false", "chatty", CM_OPT_BOOL, offsetof(struct cfg, verbose), 0, 0, 0},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int load(struct cfg *c, struct cm_props *p, char **argv, int argc, char *err)
{
	memset(c, 0, sizeof(*c));
	return cm_config_load(opts, NOPTS, c, p, "t", "", argc, argv, NULL, err, 256);
}

static void clear_env(void)
{
	unsetenv("BJTEST_NAME");
	unsetenv("BJTEST_PORT");
	unsetenv("BJTEST_VERBOSE");
	unsetenv("BOTJOBS_KAFKA_PROPERTIES");
}

Test(config, defaults)
{
	struct cfg c;
	char err[256];
	char *argv[] = {"t", NULL};
	clear_env();
	cr_assert_eq(load(&c, NULL, argv, 1, err), CM_CONFIG_OK, "%s", err);
	cr_assert_str_eq(c.name, "dflt");
	cr_assert_eq(c.port, 8080);
	cr_assert_eq(c.verbose, 0);
	cm_config_free(opts, NOPTS, &c, NULL);
}

Test(config, flag_beats_env_beats_default)
{
	struct cfg c;
	char err[256];
	clear_env();
	setenv("BJTEST_NAME", "from-env", 1);
	setenv("BJTEST_PORT", "9000", 1);
	char *argv[] = {"t", "--port=7000", "--verbose", NULL};
	cr_assert_eq(load(&c, NULL, argv, 3, err), CM_CONFIG_OK, "%s", err);
	cr_assert_str_eq(c.name, "from-env");
	cr_assert_eq(c.port, 7000);
	cr_assert_eq(c.verbose, 1);
	cm_config_free(opts, NOPTS, &c, NULL);
	char *argv2[] = {"t", "--name", "spaced", NULL};
	cr_assert_eq(load(&c, NULL, argv2, 3, err), CM_CONFIG_OK, "%s", err);
	cr_assert_str_eq(c.name, "spaced");
	cm_config_free(opts, NOPTS, &c, NULL);
}

Test(config, bad_values_name_the_option)
{
	static const struct {
		const char *label, *arg, *want;
	} bad[] = {
		{"not a number", "--port=eighty", "--port: 'eighty' is not an integer"},
		{"out of range", "--port=70000", "--port: 70000 is out of range [1, 65535]"},
		{"not a boolean", "--verbose=maybe", "--verbose: 'maybe' is not a boolean"},
		{"unknown", "--colour=red", "unknown option '--colour'"},
		{"missing value", "--name", "--name needs a value"},
		{"positional", "extra", "unexpected argument 'extra'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg c;
		char err[256] = "";
		clear_env();
		char *argv[] = {"t", (char *)bad[i].arg, NULL};
		cr_expect_eq(load(&c, NULL, argv, 2, err), CM_CONFIG_ERROR, "%s: accepted", bad[i].label);
		cr_expect(strstr(err, bad[i].want) != NULL, "%s: got '%s', want '%s'", bad[i].label, err, bad[i].want);
		cm_config_free(opts, NOPTS, &c, NULL);
	}
	struct cfg c;
	char err[256] = "";
	setenv("BJTEST_PORT", "0", 1);
	char *argv[] = {"t", NULL};
	cr_expect_eq(load(&c, NULL, argv, 1, err), CM_CONFIG_ERROR);
	cr_expect(strstr(err, "BJTEST_PORT") != NULL, "env errors name the variable: got '%s'", err);
	cm_config_free(opts, NOPTS, &c, NULL);
}

Test(config, kafka_properties_pass_through)
{
	struct cfg c;
	struct cm_props p = {0};
	char err[256];
	clear_env();
	setenv("BOTJOBS_KAFKA_PROPERTIES", "linger.ms=5,acks=all", 1);
	char *argv[] = {"t", "-X", "linger.ms=10", "-Xdebug=broker", NULL};
	cr_assert_eq(load(&c, &p, argv, 4, err), CM_CONFIG_OK, "%s", err);
	cr_assert_eq(p.n, 3);
	cr_assert_str_eq(p.key[0], "linger.ms");
	cr_assert_str_eq(p.val[0], "10", "the flag replaces the environment's value");
	cr_assert_str_eq(p.key[1], "acks");
	cr_assert_str_eq(p.key[2], "debug");
	cm_config_free(opts, NOPTS, &c, &p);
	char *bad[] = {"t", "-X", "novalue", NULL};
	cr_assert_eq(load(&c, &p, bad, 3, err), CM_CONFIG_ERROR);
	cm_config_free(opts, NOPTS, &c, &p);
}

Test(config, stops_at_the_first_positional_when_asked)
{
	struct cfg c = {0};
	char err[256];
	int argi = 0;
	clear_env();
	char *argv[] = {"t", "--port=1", "load", "--port=2", NULL};
	cr_assert_eq(cm_config_load(opts, NOPTS, &c, NULL, "t", "", 4, argv, &argi, err, sizeof(err)), CM_CONFIG_OK);
	cr_assert_eq(argi, 2);
	cr_assert_eq(c.port, 1);
	cm_config_free(opts, NOPTS, &c, NULL);
}
