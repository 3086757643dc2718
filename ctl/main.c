/*
 * botjobsctl - administer botjobs: migrations, topics, bots and their code, API tokens, and a look
 * at leads, jobs and topics. See `botjobsctl --help`.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "cm_pg.h"
#include "ctl.h"

/* one line per setting reads best */
/* clang-format off */
#define S(f) offsetof(struct ctl_cfg, f)
static const struct cm_opt opts[] = {
	{"pg-uri", "BOTJOBS_PG_URI", "postgresql:///botjobs", "PostgreSQL connection URI", CM_OPT_STR, S(pg_uri), 0, 0, 1},
	{"kafka-brokers", "BOTJOBS_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap servers", CM_OPT_STR, S(brokers), 0, 0, 0},
	{"topic-prefix", "BOTJOBS_TOPIC_PREFIX", "botjobs.", "prefix of the topic names", CM_OPT_STR, S(topic_prefix), 0, 0, 0},
	{"partitions", "BOTJOBS_PARTITIONS", "6", "partitions of topics created by `topics`", CM_OPT_INT, S(partitions), 1, 10000, 0},
	{"replication", "BOTJOBS_REPLICATION", "1", "replication factor of topics created by `topics`", CM_OPT_INT, S(replication), 1, 100, 0},
	{"count", NULL, "0", "tail: stop after this many messages (0 = until the timeout)", CM_OPT_INT, S(count), 0, 100000000, 0},
	{"timeout-ms", NULL, "3000", "tail: stop when no message came for this long", CM_OPT_INT, S(timeout_ms), 1, 86400000, 0},
	{"expires-days", NULL, "0", "token create: the token expires after this many days (0 = never)", CM_OPT_INT, S(expires_days), 0, 36500, 0},
	{"prune", NULL, "false", "load: delete the bot's scripts, triggers and broadcasts that the manifest does not list", CM_OPT_BOOL, S(prune), 0, 0, 0},
	{"log-format", "BOTJOBS_LOG_FORMAT", "text", "json or text", CM_OPT_STR, S(log_format), 0, 0, 0},
	{"log-level", "BOTJOBS_LOG_LEVEL", "warn", "debug, info, warn or error", CM_OPT_STR, S(log_level), 0, 0, 0},
};
#undef S
/* clang-format on */

static const char usage[] =
	"[options] <command> [args]\n\n"
	"Commands:\n"
	"  migrate                        apply the database migrations not applied yet\n"
	"  topics                         create the Kafka topics that are missing\n"
	"  load DIR                       load a bot folder (manifest.json + code); code that does not compile is\n"
	"                                 rejected with its file and line\n"
	"  check DIR                      the same checks without loading\n"
	"  token create BUSINESS NAME     create an API token for a business (name or id); printed once\n"
	"  token list [BUSINESS]          list tokens (never the secrets)\n"
	"  token revoke ID                revoke a token\n"
	"  lead show BOT LEAD             a lead's attributes, tags and status as JSON\n"
	"  job show JOB_ID                a job's status and run history as JSON\n"
	"  tail TOPIC                     print the messages of a topic (jobs, outbound, events, deadletter)\n"
	"                                 from the beginning, one JSON per line\n"
	"  validate [request|envelope]    check a schedule request (or a Kafka envelope) read from stdin\n"
	"                                 against the API's rules; prints the verdict as JSON";

PGconn *ctl_connect(const struct ctl_cfg *cfg)
{
	char err[512];
	PGconn *c = cm_pg_connect(cfg->pg_uri, "botjobsctl", err, sizeof(err));
	if (!c)
		fprintf(stderr, "botjobsctl: %s\n", err);
	return c;
}

/* Options may come before or after the command: move them all in front, so one parse sees them. */
static int reorder(int argc, char **argv, char **out)
{
	int n = 0;
	out[n++] = argv[0];
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 1; i < argc; i++) {
			const char *a = argv[i];
			int is_opt =
				(strncmp(a, "--", 2) == 0 && a[2]) || (strncmp(a, "-X", 2) == 0) || !strcmp(a, "-h");
			int takes_value = 0;
			if (is_opt && !strchr(a, '=')) {
				if (!strcmp(a, "-X"))
					takes_value = 1;
				for (size_t k = 0; k < CM_ARRAY_LEN(opts) && strncmp(a, "--", 2) == 0; k++)
					if (!strcmp(a + 2, opts[k].flag) && opts[k].type != CM_OPT_BOOL)
						takes_value = 1;
			}
			if ((pass == 0) == is_opt) {
				out[n++] = argv[i];
				if (pass == 0 && takes_value && i + 1 < argc)
					out[n++] = argv[++i];
			} else if (pass == 1 && takes_value) {
				i++;
			}
		}
		if (pass == 0) {
			static char dashdash[] = "--";
			out[n++] = dashdash;
		}
	}
	out[n] = NULL;
	return n;
}

int main(int argc, char **argv)
{
	struct ctl_cfg cfg = {0};
	char err[512];
	int argi = 0, rc = 2;
	char *av[256];
	if (argc > 250) {
		fprintf(stderr, "botjobsctl: too many arguments\n");
		return 2;
	}
	int ac = reorder(argc, argv, av);
	switch (cm_config_load(opts, CM_ARRAY_LEN(opts), &cfg, &cfg.props, "botjobsctl", usage, ac, av, &argi, err,
			       sizeof(err))) {
	case CM_CONFIG_EXIT:
		rc = 0;
		goto out;
	case CM_CONFIG_ERROR:
		fprintf(stderr, "botjobsctl: %s\n", err);
		goto out;
	}
	int lf = cm_log_format_parse(cfg.log_format), ll = cm_log_level_parse(cfg.log_level);
	cm_log_setup("ctl", lf < 0 ? CM_LOG_TEXT : (enum cm_log_format)lf,
		     ll < 0 ? CM_LOG_WARN : (enum cm_log_level)ll);

	int na = ac - argi;
	char **args = av + argi;
	if (na < 1) {
		fprintf(stderr, "botjobsctl: a command is required (see --help)\n");
		goto out;
	}
	const char *cmd = args[0];
	if (!strcmp(cmd, "migrate") && na == 1)
		rc = ctl_migrate(&cfg);
	else if (!strcmp(cmd, "topics") && na == 1)
		rc = ctl_topics(&cfg);
	else if ((!strcmp(cmd, "load") || !strcmp(cmd, "check")) && na == 2)
		rc = ctl_load(&cfg, args[1], !strcmp(cmd, "check"));
	else if (!strcmp(cmd, "token"))
		rc = ctl_token(&cfg, na - 1, args + 1);
	else if (!strcmp(cmd, "lead"))
		rc = ctl_lead(&cfg, na - 1, args + 1);
	else if (!strcmp(cmd, "job"))
		rc = ctl_job(&cfg, na - 1, args + 1);
	else if (!strcmp(cmd, "tail") && na == 2)
		rc = ctl_tail(&cfg, args[1]);
	else if (!strcmp(cmd, "validate") && na <= 2)
		rc = ctl_validate(&cfg, na == 2 ? args[1] : "request");
	else
		fprintf(stderr, "botjobsctl: unknown command or wrong arguments: %s (see --help)\n", cmd);
out:
	cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &cfg.props);
	return rc;
}
