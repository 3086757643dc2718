/*
 * botjobsctl - administer botjobs: migrations, topics, businesses, bots and their code, API tokens,
 * leads, jobs and topics. `botjobsctl --help` lists the commands, `botjobsctl bot apply --help` (and
 * so on) explains one.
 *
 * Two tables drive it: the settings table (flags, environment, defaults; cm_config.h) and the command
 * table below (words, arguments, the options each takes, the handler and the help texts). Options may
 * come before or after the command's words.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "ctl.h"

/* clang-format off: one line per setting reads best */
#define S(f) offsetof(struct ctl_cfg, f)
static const struct cm_opt opts[] = {
	{"pg-uri", "BOTJOBS_PG_URI", "postgresql:///botjobs", "PostgreSQL connection URI", CM_OPT_STR, S(pg_uri), 0, 0,
	 1},
	{"kafka-brokers", "BOTJOBS_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap servers", CM_OPT_STR, S(brokers),
	 0, 0, 0},
	{"topic-prefix", "BOTJOBS_TOPIC_PREFIX", "botjobs.", "prefix of the topic names", CM_OPT_STR, S(topic_prefix),
	 0, 0, 0},
	{"partitions", "BOTJOBS_PARTITIONS", "6", "partitions of topics created by `topics`", CM_OPT_INT, S(partitions),
	 1, 10000, 0},
	{"replication", "BOTJOBS_REPLICATION", "1", "replication factor of topics created by `topics`", CM_OPT_INT,
	 S(replication), 1, 100, 0},
	{"json", NULL, "false", "lists, shows and reports: print JSON instead of text", CM_OPT_BOOL, S(json), 0, 0, 0},
	{"business", NULL, "", "bot create: the bot's business; bot list: only its bots (a name or an id)", CM_OPT_STR,
	 S(business), 0, 0, 0},
	{"prune", NULL, "false",
	 "bot apply: delete the bot's triggers, scripts and broadcasts that the manifest does not list", CM_OPT_BOOL,
	 S(prune), 0, 0, 0},
	{"dry-run", NULL, "false", "bot apply: report what would change and change nothing", CM_OPT_BOOL, S(dry_run), 0,
	 0, 0},
	{"expires-days", NULL, "0", "token create: the token expires after this many days (0 = never)", CM_OPT_INT,
	 S(expires_days), 0, 36500, 0},
	{"tag", NULL, "", "lead list: only leads with this tag", CM_OPT_STR, S(tag), 0, 0, 0},
	{"lead", NULL, "0", "job list: only this lead's jobs (0 = every lead)", CM_OPT_INT, S(lead), 0, LONG_MAX, 0},
	{"status", NULL, "", "job list: only jobs in this state (scheduled, running, done, failed, cancelled, skipped)",
	 CM_OPT_STR, S(status), 0, 0, 0},
	{"limit", NULL, "100", "lead list, job list: at most this many rows", CM_OPT_INT, S(limit), 1, 10000000, 0},
	{"count", NULL, "0", "tail: stop after this many messages (0 = until the timeout)", CM_OPT_INT, S(count), 0,
	 100000000, 0},
	{"timeout-ms", NULL, "3000", "tail: stop when no message came for this long", CM_OPT_INT, S(timeout_ms), 1,
	 86400000, 0},
	{"log-format", "BOTJOBS_LOG_FORMAT", "text", "json or text", CM_OPT_STR, S(log_format), 0, 0, 0},
	{"log-level", "BOTJOBS_LOG_LEVEL", "warn", "debug, info, warn or error", CM_OPT_STR, S(log_level), 0, 0, 0},
};
#undef S
/* clang-format on */

struct cmd {
	const char *name; /* its words: "bot apply" */
	const char *args; /* the usage after the words */
	int min_args, max_args;
	ctl_run_fn run;
	const char *opts;     /* the command options it takes (settings without an environment variable) */
	const char *alias_of; /* an older name of another command */
	const char *summary;  /* one line for the command list */
	const char *help;     /* the rest of its --help */
};

static const struct cmd cmds[] = {
	{"migrate", "", 0, 0, ctl_migrate, "", NULL, "apply the database migrations not applied yet",
	 "Applies the migrations embedded in the binary (schemas/sql/*.sql) that the database has not had yet,\n"
	 "each once, in order, under an advisory lock. Harmless to repeat."},
	{"topics", "", 0, 0, ctl_topics, "", NULL, "create the Kafka topics that are missing",
	 "Creates the jobs, outbound, events and deadletter topics (with --topic-prefix) when they do not exist,\n"
	 "with --partitions and --replication. Existing topics are left alone."},
	{"business create", "NAME [--json]", 1, 1, ctl_business_create, "json", NULL, "create a business (a tenant)",
	 "Creates a business. Bots and API tokens belong to one; a token acts on every bot of its business\n"
	 "and on no other. Prints its id."},
	{"business list", "[--json]", 0, 0, ctl_business_list, "json", NULL, "list the businesses",
	 "Lists the businesses with their number of bots and of active tokens."},
	{"bot create", "ID NAME --business NAME|ID [--json]", 2, 2, ctl_bot_create, "business json", NULL,
	 "create an empty bot in a business",
	 "Creates a bot with no code. Its code usually comes with `bot apply DIR`, which also creates the bot\n"
	 "when it does not exist."},
	{"bot list", "[--business NAME|ID] [--json]", 0, 0, ctl_bot_list, "business json", NULL,
	 "list the bots, with their targets, leads and version",
	 "Lists the bots (of one business with --business): the number of triggers, scripts, broadcasts and\n"
	 "leads, and the version of the last `bot apply`."},
	{"bot apply", "DIR [--prune] [--dry-run] [--json]", 1, 1, ctl_bot_apply, "prune dry-run json", NULL,
	 "load a bot folder (manifest.json + code) into the database",
	 "DIR/manifest.json names the business (created when missing), the bot, its triggers, scripts and\n"
	 "broadcasts (each with an id and a code; code in files next to the manifest or inline), lead\n"
	 "statuses, seed leads and bot attributes. See docs/writing-bot-code.md.\n"
	 "\n"
	 "Every piece of JavaScript is compiled first; each failure is printed as DIR/file:line: message\n"
	 "(ES2015 syntax gets a hint: MuJS runs ES5) and nothing is applied. Then, in one transaction (all of it\n"
	 "or nothing): the bot's targets are compared with the stored ones and only the differences written;\n"
	 "a target that changed gets version + 1; the manifest is recorded with its hash in bot_versions as the\n"
	 "bot's next version. Applying the same folder again changes nothing. Prints what was added, changed,\n"
	 "removed (--prune) or kept (stored, not in the manifest).\n"
	 "\n"
	 "Seed leads and bot attributes are created when missing and never overwritten.\n"
	 "Exit status: 0 applied (or nothing to do), 1 a problem (nothing was applied)."},
	{"bot check", "DIR", 1, 1, ctl_bot_check, "", NULL, "check a bot folder without a database",
	 "Reads DIR/manifest.json and compiles every piece of JavaScript, as `bot apply` does first, and\n"
	 "prints each problem as DIR/file:line: message. Needs no database. Exit status 1 when there is one."},
	{"load", "DIR [--prune] [--dry-run] [--json]", 1, 1, ctl_bot_apply, "prune dry-run json", "bot apply", NULL,
	 NULL},
	{"check", "DIR", 1, 1, ctl_bot_check, "", "bot check", NULL, NULL},
	{"token create", "BUSINESS NAME [--expires-days N]", 2, 2, ctl_token_create, "expires-days", NULL,
	 "create an API token for a business (the secret is printed once)",
	 "Creates an API token for a business (by name or id). The token is printed once, on stdout, and\n"
	 "stored only as a hash: keep it. It authorizes calls for every bot of that business."},
	{"token list", "[BUSINESS] [--json]", 0, 1, ctl_token_list, "json", NULL, "list API tokens (never the secrets)",
	 "Lists the API tokens (of one business when given): id, the first characters, active/revoked/expired."},
	{"token revoke", "ID", 1, 1, ctl_token_revoke, "", NULL, "revoke an API token",
	 "Revokes a token (its id from `token list`). Producers stop accepting it within moments."},
	{"lead import", "BOT FILE [--json]", 2, 2, ctl_lead_import, "json", NULL, "upsert leads from JSON lines or CSV",
	 "Upserts the leads of FILE (\"-\" = stdin) into the bot, by (bot, id), in one transaction.\n"
	 "\n"
	 "JSON lines (the first character is '{'): one object per line:\n"
	 "  {\"id\": 135, \"name\": \"Ann\", \"channel\": \"telegram\", \"attributes\": {\"city\": \"Oslo\"}, "
	 "\"tags\": [\"vip\"]}\n"
	 "CSV: a header row id,name,channel,tags,<attribute columns…>; tags are written a|b; an empty cell\n"
	 "is \"not given\". \"muted\" (true/false) may be given in either format.\n"
	 "\n"
	 "An import adds: attributes are merged into the lead's (the file's values win), tags are added,\n"
	 "name, channel and muted change only when given. When an id comes twice, the later line wins.\n"
	 "Each bad line is reported as FILE:LINE: reason and left out; the good ones are imported. A progress\n"
	 "bar goes to stderr when it is a terminal (a line every 2 s otherwise); a summary to stdout.\n"
	 "Exit status: 0 all lines imported, 1 some lines were bad (or nothing could be imported)."},
	{"lead show", "BOT LEAD [--json]", 2, 2, ctl_lead_show, "json", NULL,
	 "a lead's attributes, tags, status and pending jobs", "Shows one lead of a bot."},
	{"lead list", "BOT [--tag T] [--limit N] [--json]", 1, 1, ctl_lead_list, "tag limit json", NULL,
	 "list a bot's leads",
	 "Lists a bot's leads in id order (with --tag, those that have the tag), at most --limit."},
	{"job show", "JOB_ID [--json]", 1, 1, ctl_job_show, "json", NULL, "a job's status and run history",
	 "Shows a job: its target, status, due time, runs, last error and result, and every run's outcome."},
	{"job list", "BOT [--lead N] [--status S] [--limit N] [--json]", 1, 1, ctl_job_list, "lead status limit json",
	 NULL, "list a bot's jobs, newest first",
	 "Lists a bot's jobs, newest first (job ids are time-ordered), at most --limit; --lead and --status\n"
	 "narrow it down."},
	{"job cancel", "BOT JOB_ID [--json]", 2, 2, ctl_job_cancel, "json", NULL,
	 "cancel a scheduled job (through Kafka, as the API's DELETE does)",
	 "Cancels a job that is scheduled or running (a periodic job stops): publishes a cancel command to the\n"
	 "jobs topic, keyed by the job's bot and lead so that it follows the job's schedule in its partition,\n"
	 "and waits up to 15 s for Kafka's acknowledgement. The worker then marks the job cancelled.\n"
	 "Needs PostgreSQL (to find the job's lead) and Kafka."},
	{"tail", "TOPIC [--count N] [--timeout-ms MS]", 1, 1, ctl_tail, "count timeout-ms", NULL,
	 "print a topic's messages (jobs, outbound, events, deadletter)",
	 "Prints the messages of a topic from its beginning, one JSON per line, until --count messages or\n"
	 "until none came for --timeout-ms. TOPIC is jobs, outbound, events, deadletter or a full name."},
	{"validate", "[request|envelope]", 0, 1, ctl_validate, "", NULL,
	 "check a schedule request (or a Kafka envelope) from stdin",
	 "Reads a schedule request body (or, with `envelope`, a botjobs.jobs message) from stdin and prints\n"
	 "the API's verdict as JSON: {\"valid\":true} or the fields that break a rule. The bot and its targets\n"
	 "are not looked up. Exit status 0 when valid, 1 when not."},
};

static const struct cm_opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < CM_ARRAY_LEN(opts); i++)
		if (strlen(opts[i].flag) == len && !strncmp(opts[i].flag, name, len))
			return &opts[i];
	return NULL;
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
				const struct cm_opt *o =
					strncmp(a, "--", 2) == 0 ? find_opt(a + 2, strlen(a + 2)) : NULL;
				takes_value = !strcmp(a, "-X") || (o && o->type != CM_OPT_BOOL);
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

/* How many of args the command's words take (0 = not this command). */
static int words_match(const struct cmd *c, int na, char **args)
{
	const char *p = c->name;
	int w = 0;
	while (*p) {
		size_t len = strcspn(p, " ");
		if (w >= na || strlen(args[w]) != len || strncmp(args[w], p, len) != 0)
			return 0;
		w++;
		p += len;
		while (*p == ' ')
			p++;
	}
	return w;
}

static const struct cmd *find_cmd(int na, char **args, int *nwords)
{
	const struct cmd *best = NULL;
	*nwords = 0;
	for (size_t i = 0; i < CM_ARRAY_LEN(cmds); i++) {
		int w = words_match(&cmds[i], na, args);
		if (w > *nwords) {
			*nwords = w;
			best = &cmds[i];
		}
	}
	return best;
}

/* Is word the first word of commands with more words ("bot", "lead", …)? */
static int is_group(const char *word)
{
	size_t len = strlen(word);
	for (size_t i = 0; i < CM_ARRAY_LEN(cmds); i++)
		if (!strncmp(cmds[i].name, word, len) && cmds[i].name[len] == ' ')
			return 1;
	return 0;
}

static void print_list(FILE *f, const char *group)
{
	size_t glen = group ? strlen(group) : 0;
	for (size_t i = 0; i < CM_ARRAY_LEN(cmds); i++) {
		const struct cmd *c = &cmds[i];
		if (group && (strncmp(c->name, group, glen) != 0 || c->name[glen] != ' '))
			continue;
		char head[160];
		snprintf(head, sizeof(head), "%s%s%s", c->name, *c->args ? " " : "", c->args);
		if (c->alias_of)
			fprintf(f, "  %-48s the same as `%s`\n", head, c->alias_of);
		else if (strlen(head) > 48)
			fprintf(f, "  %s\n  %-48s %s\n", head, "", c->summary);
		else
			fprintf(f, "  %-48s %s\n", head, c->summary);
	}
}

static int in_list(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, " ");
		if (n == len && !strncmp(p, word, len))
			return 1;
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

static void print_cmd_help(const struct cmd *c)
{
	const struct cmd *real = c;
	if (c->alias_of) {
		int w;
		char buf[64], *words[3] = {NULL, NULL, NULL};
		snprintf(buf, sizeof(buf), "%s", c->alias_of);
		words[0] = buf;
		words[1] = strchr(buf, ' ');
		if (words[1])
			*words[1]++ = '\0';
		real = find_cmd(words[1] ? 2 : 1, words, &w);
		printf("`botjobsctl %s` is the older name of `botjobsctl %s`.\n\n", c->name, c->alias_of);
	}
	printf("Usage: botjobsctl %s%s%s\n\n%s\n", real->name, *real->args ? " " : "", real->args, real->help);
	if (*real->opts) {
		printf("\nOptions:\n");
		for (size_t i = 0; i < CM_ARRAY_LEN(opts); i++)
			if (in_list(real->opts, opts[i].flag))
				printf("  --%s%s\n      %s (default: %s)\n", opts[i].flag,
				       opts[i].type == CM_OPT_BOOL  ? ""
				       : opts[i].type == CM_OPT_INT ? "=N"
								    : "=VALUE",
				       opts[i].help, opts[i].def && *opts[i].def ? opts[i].def : "none");
	}
	printf("\nThe connection settings (--pg-uri, --kafka-brokers, --topic-prefix, -X …) and their BOTJOBS_*\n"
	       "environment variables are in `botjobsctl --help`.\n");
}

/* A command-specific option (one without an environment variable) that the command does not take. */
static const char *stray_option(const struct cmd *c, int ac, char **av)
{
	for (int i = 1; i < ac && strcmp(av[i], "--") != 0; i++) {
		if (strncmp(av[i], "--", 2) != 0)
			continue;
		const char *name = av[i] + 2;
		const struct cm_opt *o = find_opt(name, strcspn(name, "="));
		if (o && !o->env && !in_list(c->opts, o->flag))
			return o->flag;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static char usage[8192];
	struct ctl_cfg cfg = {0};
	char err[512];
	int argi = 0, rc = 2, nwords;
	char *av[256];
	if (argc > 250) {
		fprintf(stderr, "botjobsctl: too many arguments\n");
		return 2;
	}
	int ac = reorder(argc, argv, av);

	/* `botjobsctl bot apply --help`: the command's own help; `botjobsctl bot --help`: the group's list */
	int dd = 1;
	while (dd < ac && strcmp(av[dd], "--") != 0)
		dd++;
	int help = 0;
	for (int i = 1; i < dd; i++)
		help |= !strcmp(av[i], "--help") || !strcmp(av[i], "-h");
	if (help && dd + 1 < ac) {
		const struct cmd *c = find_cmd(ac - dd - 1, av + dd + 1, &nwords);
		if (c) {
			print_cmd_help(c);
			return 0;
		}
		if (is_group(av[dd + 1])) {
			printf("Usage: botjobsctl %s <command> [args]\n\nCommands:\n", av[dd + 1]);
			print_list(stdout, av[dd + 1]);
			printf("\n`botjobsctl %s <command> --help` explains one.\n", av[dd + 1]);
			return 0;
		}
	}

	FILE *u = fmemopen(usage, sizeof(usage) - 1, "w");
	if (u) {
		fprintf(u, "[options] <command> [args]\n\nCommands:\n");
		print_list(u, NULL);
		fprintf(u, "\nEach command explains itself: botjobsctl bot apply --help. Options may follow the "
			   "command.");
		fclose(u);
	}
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
	const struct cmd *c = find_cmd(na, args, &nwords);
	if (!c) {
		if (is_group(args[0])) {
			fprintf(stderr, "botjobsctl: %s: which one?\n", args[0]);
			print_list(stderr, args[0]);
		} else {
			fprintf(stderr, "botjobsctl: unknown command '%s' (see botjobsctl --help)\n", args[0]);
		}
		goto out;
	}
	int nargs = na - nwords;
	if (nargs < c->min_args || nargs > c->max_args) {
		fprintf(stderr, "botjobsctl: usage: botjobsctl %s%s%s (see botjobsctl %s --help)\n", c->name,
			*c->args ? " " : "", c->args, c->name);
		goto out;
	}
	const char *stray = stray_option(c, ac, av);
	if (stray) {
		fprintf(stderr, "botjobsctl: %s does not take --%s (see botjobsctl %s --help)\n", c->name, stray,
			c->name);
		goto out;
	}
	rc = c->run(&cfg, nargs, args + nwords);
out:
	cm_config_free(opts, CM_ARRAY_LEN(opts), &cfg, &cfg.props);
	return rc;
}
