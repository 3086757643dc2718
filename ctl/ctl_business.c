/*
 * ctl_business.c - `botjobsctl business create NAME` and `business list`: the tenants. A business owns
 * bots and API tokens; a token acts on every bot of its business and no other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_pg.h"
#include "ctl.h"

int ctl_business_create(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	char err[800];
	if (!*argv[0]) {
		fprintf(stderr, "botjobsctl: business create: the name must not be empty\n");
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	int rc = 1;
	const char *p[] = {argv[0]};
	PGresult *r = cm_pg_query(c,
				  "INSERT INTO businesses (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
				  " RETURNING id, botjobs_ts(created_at)",
				  1, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: business create: %s\n", err);
		goto out;
	}
	if (PQntuples(r) == 0) {
		fprintf(stderr, "botjobsctl: business create: a business named '%s' exists already\n", argv[0]);
	} else if (cfg->json) {
		json_t *o = json_pack("{sI ss ss}", "id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "name",
				      argv[0], "created_at", PQgetvalue(r, 0, 1));
		ctl_json_print(o);
		json_decref(o);
		rc = 0;
	} else {
		printf("business %s \"%s\" created\n", PQgetvalue(r, 0, 0), argv[0]);
		rc = 0;
	}
	PQclear(r);
out:
	cm_pg_close(c);
	return rc;
}

int ctl_business_list(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	static const struct ctl_col cols[] = {{"id", "ID", 0},
					      {"name", "NAME", 40},
					      {"bots", "BOTS", 0},
					      {"active_tokens", "TOKENS", 0},
					      {"created_at", "CREATED", 0}};
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	json_t *rows =
		ctl_query_json(c,
			       "SELECT coalesce(json_agg(json_build_object('id', b.id, 'name', b.name,"
			       " 'bots', (SELECT count(*) FROM bots WHERE business_id = b.id),"
			       " 'active_tokens', (SELECT count(*) FROM api_tokens t WHERE t.business_id = b.id"
			       "   AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())),"
			       " 'created_at', botjobs_ts(b.created_at)) ORDER BY b.id), '[]') FROM businesses b",
			       0, NULL, "business list");
	cm_pg_close(c);
	if (!rows)
		return 1;
	if (cfg->json)
		ctl_json_print(rows);
	else
		ctl_table_print(rows, cols, CM_ARRAY_LEN(cols));
	json_decref(rows);
	return 0;
}
