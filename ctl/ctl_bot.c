/*
 * ctl_bot.c - `botjobsctl bot create ID NAME --business B` and `bot list [--business B]`.
 * Bot code is loaded with `bot apply` (ctl_apply.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_pg.h"
#include "ctl.h"

int ctl_bot_create(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	char err[800], business[24], id[24];
	int64_t bot;
	if (ctl_parse_id(argv[0], &bot) == -1) {
		fprintf(stderr, "botjobsctl: bot create: the bot id must be a positive integer, not '%s'\n", argv[0]);
		return 2;
	}
	if (!cfg->business || !*cfg->business) {
		fprintf(stderr, "botjobsctl: bot create: --business NAME|ID is required\n");
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	int rc = 1;
	int found = ctl_business_find(c, cfg->business, business, sizeof(business), "bot create");
	if (found == 0)
		fprintf(stderr, "botjobsctl: bot create: no business named or numbered '%s'\n", cfg->business);
	if (found != 1)
		goto out;
	snprintf(id, sizeof(id), "%" PRId64, bot);
	const char *p[] = {id, business, argv[1]};
	PGresult *r = cm_pg_query(c,
				  "INSERT INTO bots (id, business_id, name) VALUES ($1, $2, $3)"
				  " ON CONFLICT (id) DO NOTHING RETURNING id",
				  3, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: bot create: %s\n", err);
		goto out;
	}
	if (PQntuples(r) == 0) {
		fprintf(stderr, "botjobsctl: bot create: bot %s exists already\n", id);
	} else if (cfg->json) {
		json_t *o = json_pack("{sI ss sI}", "id", (json_int_t)bot, "name", argv[1], "business_id",
				      (json_int_t)strtoll(business, NULL, 10));
		ctl_json_print(o);
		json_decref(o);
		rc = 0;
	} else {
		printf("bot %s \"%s\" created in business %s\n", id, argv[1], business);
		rc = 0;
	}
	PQclear(r);
out:
	cm_pg_close(c);
	return rc;
}

int ctl_bot_list(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	static const struct ctl_col cols[] = {{"id", "ID", 0},
					      {"name", "NAME", 30},
					      {"business", "BUSINESS", 30},
					      {"triggers", "TRIGGERS", 0},
					      {"scripts", "SCRIPTS", 0},
					      {"broadcasts", "BROADCASTS", 0},
					      {"leads", "LEADS", 0},
					      {"version", "VERSION", 0},
					      {"applied_at", "APPLIED", 0}};
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	char business[24];
	int rc = 1;
	json_t *rows = NULL;
	if (cfg->business && *cfg->business) {
		int found = ctl_business_find(c, cfg->business, business, sizeof(business), "bot list");
		if (found == 0)
			fprintf(stderr, "botjobsctl: bot list: no business named or numbered '%s'\n", cfg->business);
		if (found != 1)
			goto out;
	}
	const char *p[] = {cfg->business && *cfg->business ? business : NULL};
	rows = ctl_query_json(
		c,
		"SELECT coalesce(json_agg(json_build_object('id', b.id, 'name', b.name, 'business_id', b.business_id,"
		" 'business', o.name,"
		" 'triggers', (SELECT count(*) FROM triggers WHERE bot_id = b.id),"
		" 'scripts', (SELECT count(*) FROM scripts WHERE bot_id = b.id),"
		" 'broadcasts', (SELECT count(*) FROM broadcasts WHERE bot_id = b.id),"
		" 'leads', (SELECT count(*) FROM leads WHERE bot_id = b.id),"
		" 'version', v.version, 'applied_at', botjobs_ts(v.applied_at),"
		" 'created_at', botjobs_ts(b.created_at)) ORDER BY b.id), '[]')"
		" FROM bots b JOIN businesses o ON o.id = b.business_id"
		" LEFT JOIN LATERAL (SELECT version, applied_at FROM bot_versions WHERE bot_id = b.id"
		"   ORDER BY version DESC LIMIT 1) v ON true"
		" WHERE $1::bigint IS NULL OR b.business_id = $1::bigint",
		1, p, "bot list");
	if (!rows)
		goto out;
	if (cfg->json)
		ctl_json_print(rows);
	else
		ctl_table_print(rows, cols, CM_ARRAY_LEN(cols));
	rc = 0;
out:
	json_decref(rows);
	cm_pg_close(c);
	return rc;
}
