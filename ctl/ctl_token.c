/*
 * ctl_token.c - `botjobsctl token create BUSINESS NAME`, `token list [BUSINESS]`, `token revoke ID`.
 * A token is 256 random bits shown once, on stdout, when it is created; only its SHA-256 is stored
 * (with its first characters, so that people can tell tokens apart).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_pg.h"
#include "ctl.h"

int ctl_token_create(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	char err[800], business[24], token[64], hash[65], prefix[16], days[16];
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	int rc = 1;
	int found = ctl_business_find(c, argv[0], business, sizeof(business), "token create");
	if (found == 0)
		fprintf(stderr, "botjobsctl: token create: no business named or numbered '%s'\n", argv[0]);
	if (found != 1)
		goto out;
	if (cm_token_new(token, sizeof(token)) == -1) {
		fprintf(stderr, "botjobsctl: token create: no randomness\n");
		goto out;
	}
	cm_token_hash_hex(token, hash);
	snprintf(prefix, sizeof(prefix), "%.10s", token);
	snprintf(days, sizeof(days), "%ld", cfg->expires_days);
	const char *p[] = {business, argv[1], hash, prefix, days};
	PGresult *r = cm_pg_query(c,
				  "INSERT INTO api_tokens (business_id, name, token_hash, token_prefix, expires_at)"
				  " VALUES ($1, $2, $3, $4, CASE WHEN $5::integer > 0"
				  "  THEN now() + make_interval(days => $5::integer) END)"
				  " RETURNING id, botjobs_ts(expires_at)",
				  5, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: token create: %s\n", err);
		goto out;
	}
	fprintf(stderr, "token %s created for business %s%s%s; it is shown only this once:\n", PQgetvalue(r, 0, 0),
		business, PQgetisnull(r, 0, 1) ? "" : ", expires ", PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
	printf("%s\n", token);
	PQclear(r);
	rc = 0;
out:
	cm_pg_close(c);
	return rc;
}

int ctl_token_list(const struct ctl_cfg *cfg, int argc, char **argv)
{
	static const struct ctl_col cols[] = {{"id", "ID", 0},
					      {"business", "BUSINESS", 30},
					      {"name", "NAME", 30},
					      {"prefix", "PREFIX", 0},
					      {"status", "STATUS", 0},
					      {"created_at", "CREATED", 0},
					      {"expires_at", "EXPIRES", 0}};
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	char business[24];
	int rc = 1;
	json_t *rows = NULL;
	if (argc == 1) {
		int found = ctl_business_find(c, argv[0], business, sizeof(business), "token list");
		if (found == 0)
			fprintf(stderr, "botjobsctl: token list: no business named or numbered '%s'\n", argv[0]);
		if (found != 1)
			goto out;
	}
	const char *p[] = {argc == 1 ? business : NULL};
	rows = ctl_query_json(
		c,
		"SELECT coalesce(json_agg(json_build_object('id', t.id, 'business_id', b.id, 'business', b.name,"
		" 'name', t.name, 'prefix', t.token_prefix || '…',"
		" 'status', CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'"
		"  WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END,"
		" 'created_at', botjobs_ts(t.created_at), 'expires_at', botjobs_ts(t.expires_at),"
		" 'revoked_at', botjobs_ts(t.revoked_at)) ORDER BY t.id), '[]')"
		" FROM api_tokens t JOIN businesses b ON b.id = t.business_id"
		" WHERE $1::bigint IS NULL OR b.id = $1::bigint",
		1, p, "token list");
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

int ctl_token_revoke(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	char err[800];
	int64_t id;
	if (ctl_parse_id(argv[0], &id) == -1) {
		fprintf(stderr, "botjobsctl: token revoke: '%s' is not a token id (see token list)\n", argv[0]);
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[0]};
	int rc = 1;
	PGresult *r = cm_pg_query(c,
				  "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())"
				  " WHERE id = $1::bigint RETURNING id",
				  1, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: token revoke: %s\n", err);
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "botjobsctl: token revoke: no token %s\n", argv[0]);
	} else {
		printf("token %s revoked\n", argv[0]);
		rc = 0;
	}
	PQclear(r);
	cm_pg_close(c);
	return rc;
}
