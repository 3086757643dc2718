/*
 * ctl_apply.c - `botjobsctl bot apply DIR` (alias `load`) and `bot check DIR` (alias `check`).
 *
 * check: the folder is read and every piece of JavaScript compiled (ctl_manifest.c); nothing else.
 * apply: the same checks first - any problem and the database is not touched - then, in one
 * transaction: the business (created when missing), the bot (locked, so two applies of one bot take
 * turns), the targets compared with the stored ones (ctl_manifest_diff) and only the differences
 * written, a changed target getting version + 1, lead statuses, seed leads and bot attributes, and a
 * row in bot_versions (the manifest with its code inlined and its hash) whenever something changed.
 * Any failure rolls all of it back. It prints what changed; --dry-run does everything but the COMMIT.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_pg.h"
#include "ctl.h"
#include "ctl_manifest.h"

#define WHAT "bot apply"

struct apply {
	const struct ctl_cfg *cfg;
	PGconn *c;
	struct ctl_manifest m;
	char bot[24], business_id[24];
	char business_name[256];
	int business_created, bot_created;
	char *old_bot_name; /* when the apply renames the bot */
	struct ctl_item *have;
	size_t nhave;
	struct ctl_change *ch;
	size_t nch;
	long statuses_changed, leads_created, attrs_created;
	int version;  /* the bot's version after the apply */
	int recorded; /* a bot_versions row was written */
	char err[1024];
};

static int cmd(struct apply *a, const char *sql, int n, const char *const *p)
{
	return cm_pg_command(a->c, sql, n, p, a->err, sizeof(a->err));
}

static PGresult *query(struct apply *a, const char *sql, int n, const char *const *p)
{
	return cm_pg_query(a->c, sql, n, p, a->err, sizeof(a->err));
}

/* The business: by id (it must exist) or by name (created when missing). */
static int business(struct apply *a)
{
	char text[32];
	const char *key = json_string_value(a->m.business);
	if (!key) {
		snprintf(text, sizeof(text), "%" PRId64, (int64_t)json_integer_value(a->m.business));
		const char *p[] = {text};
		PGresult *r = query(a, "SELECT id, name FROM businesses WHERE id = $1", 1, p);
		if (!r)
			return -1;
		if (PQntuples(r) == 0) {
			snprintf(a->err, sizeof(a->err), "there is no business %s (give its name to create it)", text);
			PQclear(r);
			return -1;
		}
		snprintf(a->business_id, sizeof(a->business_id), "%s", PQgetvalue(r, 0, 0));
		snprintf(a->business_name, sizeof(a->business_name), "%s", PQgetvalue(r, 0, 1));
		PQclear(r);
		return 0;
	}
	const char *p[] = {key};
	PGresult *r = query(a,
			    "WITH ins AS (INSERT INTO businesses (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
			    " RETURNING id)"
			    " SELECT id, true FROM ins UNION ALL SELECT id, false FROM businesses WHERE name = $1",
			    1, p);
	if (!r)
		return -1;
	snprintf(a->business_id, sizeof(a->business_id), "%s", PQgetvalue(r, 0, 0));
	a->business_created = PQgetvalue(r, 0, 1)[0] == 't';
	snprintf(a->business_name, sizeof(a->business_name), "%s", key);
	PQclear(r);
	return 0;
}

/* The bot, locked for the rest of the transaction: created when missing, renamed when its name changed. */
static int bot(struct apply *a)
{
	const char *p[] = {a->bot};
	PGresult *r = query(a,
			    "SELECT b.business_id, b.name, o.name FROM bots b JOIN businesses o ON o.id = b.business_id"
			    " WHERE b.id = $1 FOR UPDATE OF b",
			    1, p);
	if (!r)
		return -1;
	const char *name = a->m.bot_name ? a->m.bot_name : a->bot;
	if (PQntuples(r) == 0) {
		PQclear(r);
		const char *pi[] = {a->bot, a->business_id, name};
		a->bot_created = 1;
		return cmd(a, "INSERT INTO bots (id, business_id, name) VALUES ($1, $2, $3)", 3, pi);
	}
	if (strcmp(PQgetvalue(r, 0, 0), a->business_id) != 0) {
		snprintf(a->err, sizeof(a->err), "bot %s belongs to the business '%s' (id %s), not to this one", a->bot,
			 PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 0));
		PQclear(r);
		return -1;
	}
	int rename = a->m.bot_name && strcmp(PQgetvalue(r, 0, 1), a->m.bot_name) != 0;
	if (rename)
		a->old_bot_name = strdup(PQgetvalue(r, 0, 1));
	PQclear(r);
	if (!rename)
		return 0;
	const char *pu[] = {a->bot, a->m.bot_name};
	return cmd(a, "UPDATE bots SET name = $2 WHERE id = $1", 2, pu);
}

/* A query answering one JSON text cell: the value parsed (a new reference), or NULL with a->err. */
static json_t *query_json(struct apply *a, const char *sql, int n, const char *const *p)
{
	PGresult *r = query(a, sql, n, p);
	if (!r)
		return NULL;
	json_error_t je;
	json_t *v = PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je) : NULL;
	if (!v)
		snprintf(a->err, sizeof(a->err), "unreadable answer from the database");
	PQclear(r);
	return v;
}

static char *dup_or_null(const json_t *v)
{
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* The stored targets of the bot. */
static int load_have(struct apply *a)
{
	const char *p[] = {a->bot};
	json_t *rows = query_json(
		a,
		"SELECT coalesce(json_agg(x ORDER BY x.k, x.id), '[]') FROM ("
		" SELECT 0 AS k, id, code, name, body, condition, script_id, NULL::jsonb AS commands, version"
		"  FROM triggers WHERE bot_id = $1"
		" UNION ALL SELECT 1, id, code, name, NULL, NULL, NULL, body, version FROM scripts WHERE bot_id = $1"
		" UNION ALL SELECT 2, id, code, name, body, condition, script_id, NULL, version"
		"  FROM broadcasts WHERE bot_id = $1) x",
		1, p);
	if (!rows)
		return -1;
	a->nhave = json_array_size(rows);
	a->have = calloc(a->nhave + 1, sizeof(*a->have));
	if (!a->have) {
		json_decref(rows);
		snprintf(a->err, sizeof(a->err), "out of memory");
		return -1;
	}
	size_t i;
	json_t *x;
	json_array_foreach(rows, i, x)
	{
		struct ctl_item *h = &a->have[i];
		int k = (int)json_integer_value(json_object_get(x, "k"));
		h->kind = k == 0 ? CTL_TRIGGER : k == 1 ? CTL_SCRIPT : CTL_BROADCAST;
		h->id = json_integer_value(json_object_get(x, "id"));
		h->code = dup_or_null(json_object_get(x, "code"));
		h->name = dup_or_null(json_object_get(x, "name"));
		h->body = dup_or_null(json_object_get(x, "body"));
		h->condition = dup_or_null(json_object_get(x, "condition"));
		h->script_id = json_integer_value(json_object_get(x, "script_id"));
		h->version = (int)json_integer_value(json_object_get(x, "version"));
		json_t *cmds = json_object_get(x, "commands");
		h->commands = json_is_null(cmds) ? NULL : json_incref(cmds);
	}
	json_decref(rows);
	return 0;
}

/* Script commands as jsonb has them (key order, numbers), so that comparing is comparing like with like. */
static int normalize_commands(struct apply *a)
{
	for (size_t i = 0; i < a->m.nitems; i++) {
		struct ctl_item *it = &a->m.items[i];
		if (it->kind != CTL_SCRIPT || !it->commands)
			continue;
		char *text = json_dumps(it->commands, JSON_COMPACT);
		const char *p[] = {text};
		json_t *norm = text ? query_json(a, "SELECT $1::jsonb::text", 1, p) : NULL;
		free(text);
		if (!norm)
			return -1;
		json_decref(it->commands);
		it->commands = norm;
	}
	return 0;
}

static int write_item(struct apply *a, const struct ctl_change *c)
{
	const struct ctl_item *w = c->want;
	char id[24], sid[24], ver[16], sql[700];
	snprintf(id, sizeof(id), "%" PRId64, w->id);
	snprintf(sid, sizeof(sid), "%" PRId64, w->script_id);
	snprintf(ver, sizeof(ver), "%d", c->new_version);
	const char *table = ctl_kind_table(w->kind);
	if (w->kind == CTL_SCRIPT) {
		char *body = w->commands ? json_dumps(w->commands, JSON_COMPACT) : strdup("[]");
		const char *p[] = {a->bot, id, w->code, w->name, body, ver};
		int r = cmd(a,
			    c->action == CTL_ADDED
				    ? "INSERT INTO scripts (bot_id, id, code, name, body, version)"
				      " VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
				    : "UPDATE scripts SET code = $3, name = $4, body = $5::jsonb, version = $6,"
				      " updated_at = now() WHERE bot_id = $1 AND id = $2",
			    6, p);
		free(body);
		return r;
	}
	const char *p[] = {a->bot,
			   id,
			   w->code,
			   w->name,
			   w->body,
			   w->condition && *w->condition ? w->condition : NULL,
			   w->script_id ? sid : NULL,
			   ver};
	if (c->action == CTL_ADDED)
		snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (bot_id, id, code, name, body, condition, script_id, version)"
			 " VALUES ($1, $2, $3, $4, coalesce($5, ''), $6, $7, $8)",
			 table);
	else
		snprintf(sql, sizeof(sql),
			 "UPDATE %s SET code = $3, name = $4, body = coalesce($5, ''), condition = $6, script_id = $7,"
			 " version = $8, updated_at = now() WHERE bot_id = $1 AND id = $2",
			 table);
	return cmd(a, sql, 8, p);
}

/* The targets: deletions, codes moving between ids, then the additions and changes. */
static int write_items(struct apply *a)
{
	char id[24], sql[300];
	for (size_t i = 0; i < a->nch; i++) {
		const struct ctl_change *c = &a->ch[i];
		snprintf(id, sizeof(id), "%" PRId64, c->id);
		const char *p[] = {a->bot, id};
		if (c->action == CTL_REMOVED) {
			snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE bot_id = $1 AND id = $2",
				 ctl_kind_table(c->kind));
			if (cmd(a, sql, 2, p) == -1)
				return -1;
		} else if (c->action == CTL_CHANGED && (c->fields & CTL_F_CODE)) {
			/* (bot, code) is unique: park the old code where no manifest code can be (codes have no
			 * control characters), so that two items may swap codes */
			snprintf(sql, sizeof(sql), "UPDATE %s SET code = E'\\x01' || id WHERE bot_id = $1 AND id = $2",
				 ctl_kind_table(c->kind));
			if (cmd(a, sql, 2, p) == -1)
				return -1;
		}
	}
	for (size_t i = 0; i < a->nch; i++)
		if ((a->ch[i].action == CTL_ADDED || a->ch[i].action == CTL_CHANGED) && write_item(a, &a->ch[i]) == -1)
			return -1;
	return 0;
}

static long affected(PGresult *r)
{
	long n = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}

/* Lead statuses (upserted), seed leads and bot attributes (created when missing, never overwritten). */
static int write_extras(struct apply *a)
{
	size_t i;
	json_t *x;
	char id[24];
	json_array_foreach(json_object_get(a->m.doc, "lead_statuses"), i, x)
	{
		snprintf(id, sizeof(id), "%" PRId64, (int64_t)json_integer_value(json_object_get(x, "id")));
		const char *p[] = {a->bot, id, json_string_value(json_object_get(x, "name"))};
		PGresult *r = query(a,
				    "INSERT INTO lead_statuses (bot_id, id, name) VALUES ($1, $2, $3)"
				    " ON CONFLICT (bot_id, id) DO UPDATE SET name = EXCLUDED.name"
				    " WHERE lead_statuses.name IS DISTINCT FROM EXCLUDED.name",
				    3, p);
		if (!r)
			return -1;
		a->statuses_changed += affected(r);
	}
	json_array_foreach(json_object_get(a->m.doc, "leads"), i, x)
	{
		snprintf(id, sizeof(id), "%" PRId64, (int64_t)json_integer_value(json_object_get(x, "id")));
		json_t *attrs = json_object_get(x, "attributes"), *tags = json_object_get(x, "tags");
		char *at = attrs ? json_dumps(attrs, JSON_COMPACT) : strdup("{}");
		char *tg = tags ? json_dumps(tags, JSON_COMPACT) : strdup("[]");
		const char *ch = json_string_value(json_object_get(x, "channel"));
		const char *p[] = {a->bot,
				   id,
				   json_string_value(json_object_get(x, "name")),
				   ch ? ch : "api",
				   at,
				   tg,
				   json_is_true(json_object_get(x, "muted")) ? "true" : "false"};
		PGresult *r = query(
			a,
			"INSERT INTO leads (bot_id, id, name, channel, attributes, tags, muted)"
			" VALUES ($1, $2, $3, $4, $5::jsonb, ARRAY(SELECT jsonb_array_elements_text($6::jsonb)), $7)"
			" ON CONFLICT (bot_id, id) DO NOTHING",
			7, p);
		free(at);
		free(tg);
		if (!r)
			return -1;
		a->leads_created += affected(r);
	}
	const char *k;
	json_object_foreach(json_object_get(a->m.doc, "bot_attributes"), k, x)
	{
		char *v = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *p[] = {a->bot, k, v};
		PGresult *r = query(a,
				    "INSERT INTO bot_attributes (bot_id, key, value) VALUES ($1, $2, $3::jsonb)"
				    " ON CONFLICT (bot_id, key) DO NOTHING",
				    3, p);
		free(v);
		if (!r)
			return -1;
		a->attrs_created += affected(r);
	}
	return 0;
}

static size_t count(const struct apply *a, enum ctl_action act)
{
	size_t n = 0;
	for (size_t i = 0; i < a->nch; i++)
		n += a->ch[i].action == act;
	return n;
}

static int anything_changed(const struct apply *a)
{
	return a->bot_created || a->old_bot_name || count(a, CTL_ADDED) || count(a, CTL_CHANGED) ||
	       count(a, CTL_REMOVED) || a->statuses_changed || a->leads_created || a->attrs_created;
}

static json_t *changes_json(const struct apply *a, int with_unchanged)
{
	json_t *items = json_array();
	for (size_t i = 0; i < a->nch; i++) {
		const struct ctl_change *c = &a->ch[i];
		if (c->action == CTL_UNCHANGED && !with_unchanged)
			continue;
		json_t *o = json_pack("{ss sI ss ss}", "kind", ctl_kind_name(c->kind), "id", (json_int_t)c->id, "code",
				      c->code ? c->code : "", "action", ctl_action_name(c->action));
		if (c->action == CTL_CHANGED)
			json_object_set_new(o, "fields", ctl_fields_json(c->fields));
		json_object_set_new(o, "version", c->new_version ? json_integer(c->new_version) : json_null());
		json_object_set_new(o, "previous_version", c->old_version ? json_integer(c->old_version) : json_null());
		json_array_append_new(items, o);
	}
	return items;
}

static json_t *counts_json(const struct apply *a)
{
	return json_pack("{sI sI sI sI sI}", "added", (json_int_t)count(a, CTL_ADDED), "changed",
			 (json_int_t)count(a, CTL_CHANGED), "unchanged", (json_int_t)count(a, CTL_UNCHANGED), "removed",
			 (json_int_t)count(a, CTL_REMOVED), "kept", (json_int_t)count(a, CTL_KEPT));
}

/* The bot's version: a new bot_versions row when something changed or the manifest is not the last one. */
static int record(struct apply *a)
{
	const char *p[] = {a->bot};
	PGresult *r = query(a,
			    "SELECT version, manifest_hash FROM bot_versions WHERE bot_id = $1"
			    " ORDER BY version DESC LIMIT 1",
			    1, p);
	if (!r)
		return -1;
	int last = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : 0;
	int same = PQntuples(r) && !strcmp(PQgetvalue(r, 0, 1), a->m.hash);
	PQclear(r);
	a->version = last;
	if (same && !anything_changed(a))
		return 0;
	a->version = last + 1;
	a->recorded = 1;
	char ver[16];
	snprintf(ver, sizeof(ver), "%d", a->version);
	char *doc = json_dumps(a->m.doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_t *ch = json_pack("{so so}", "items", changes_json(a, 0), "counts", counts_json(a));
	char *chs = json_dumps(ch, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ch);
	const char *pi[] = {a->bot, ver, doc, a->m.hash, chs};
	int rc = doc && chs ? cmd(a,
				  "INSERT INTO bot_versions (bot_id, version, manifest, manifest_hash, changes)"
				  " VALUES ($1, $2, $3::jsonb, $4, $5::jsonb)",
				  5, pi)
			    : -1;
	if (!doc || !chs)
		snprintf(a->err, sizeof(a->err), "out of memory");
	free(doc);
	free(chs);
	return rc;
}

static void report_text(const struct apply *a)
{
	const char *dry = a->cfg->dry_run ? " (dry run: nothing was applied)" : "";
	printf("bot %s \"%s\"%s of business \"%s\"%s: ", a->bot, a->m.bot_name ? a->m.bot_name : a->bot,
	       a->bot_created ? " (new)" : "", a->business_name, a->business_created ? " (new)" : "");
	if (!a->recorded)
		printf("nothing changed (version %d)%s\n", a->version, dry);
	else
		printf("version %d%s\n", a->version, dry);
	if (a->old_bot_name)
		printf("  renamed    bot: \"%s\" -> \"%s\"\n", a->old_bot_name, a->m.bot_name);
	for (size_t i = 0; i < a->nch; i++) {
		const struct ctl_change *c = &a->ch[i];
		if (c->action == CTL_UNCHANGED)
			continue;
		printf("  %-9s  %s %" PRId64 " '%s'", ctl_action_name(c->action), ctl_kind_name(c->kind), c->id,
		       c->code ? c->code : "");
		if (c->action == CTL_CHANGED) {
			json_t *f = ctl_fields_json(c->fields);
			char *t = ctl_value_text(f);
			printf(" (%s): version %d -> %d", t ? t : "", c->old_version, c->new_version);
			free(t);
			json_decref(f);
		} else if (c->action == CTL_ADDED) {
			printf(": version %d", c->new_version);
		} else if (c->action == CTL_KEPT) {
			printf(": not in the manifest, left as it is (--prune deletes it)");
		}
		putchar('\n');
	}
	printf("  targets: %zu added, %zu changed, %zu unchanged, %zu removed", count(a, CTL_ADDED),
	       count(a, CTL_CHANGED), count(a, CTL_UNCHANGED), count(a, CTL_REMOVED));
	if (count(a, CTL_KEPT))
		printf(", %zu kept", count(a, CTL_KEPT));
	printf("; lead statuses: %ld changed; seed leads: %ld created; bot attributes: %ld created\n",
	       a->statuses_changed, a->leads_created, a->attrs_created);
}

static void report_json(const struct apply *a)
{
	json_t *o = json_pack("{sI ss ss sI si sb sb sb so so sI sI sI}", "bot_id", (json_int_t)a->m.bot_id, "bot_name",
			      a->m.bot_name ? a->m.bot_name : a->bot, "business", a->business_name, "business_id",
			      (json_int_t)strtoll(a->business_id, NULL, 10), "version", a->version, "changed",
			      a->recorded, "dry_run", a->cfg->dry_run, "bot_created", a->bot_created, "items",
			      changes_json(a, 1), "counts", counts_json(a), "lead_statuses_changed",
			      (json_int_t)a->statuses_changed, "seed_leads_created", (json_int_t)a->leads_created,
			      "bot_attributes_created", (json_int_t)a->attrs_created);
	json_object_set_new(o, "manifest_hash", json_string(a->m.hash));
	ctl_json_print(o);
	json_decref(o);
}

static int apply_db(struct apply *a)
{
	snprintf(a->bot, sizeof(a->bot), "%" PRId64, a->m.bot_id);
	if (!(a->c = ctl_connect(a->cfg)))
		return 1;
	if (cm_pg_exec(a->c, "BEGIN", a->err, sizeof(a->err)) == -1 || business(a) == -1 || bot(a) == -1 ||
	    load_have(a) == -1 || normalize_commands(a) == -1)
		goto fail;
	size_t nch = 0;
	char why[sizeof(a->err)];
	a->ch = ctl_manifest_diff(a->m.items, a->m.nitems, a->have, a->nhave, a->cfg->prune, &nch, why, sizeof(why));
	a->nch = nch;
	if (!a->ch)
		snprintf(a->err, sizeof(a->err), "%s", why);
	if (!a->ch || write_items(a) == -1 || write_extras(a) == -1 || record(a) == -1)
		goto fail;
	if (cm_pg_exec(a->c, a->cfg->dry_run ? "ROLLBACK" : "COMMIT", a->err, sizeof(a->err)) == -1)
		goto fail;
	if (a->cfg->json)
		report_json(a);
	else
		report_text(a);
	return 0;
fail:
	fprintf(stderr, "botjobsctl: " WHAT ": %s; nothing was applied\n", a->err);
	cm_pg_exec_quiet(a->c, "ROLLBACK");
	return 1;
}

int ctl_bot_apply(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	struct apply a = {.cfg = cfg};
	int rc = 1;
	int problems = ctl_manifest_load(argv[0], &a.m, stderr);
	if (problems)
		fprintf(stderr, "botjobsctl: " WHAT ": %d problem(s) in %s; nothing was applied\n", problems, argv[0]);
	else
		rc = apply_db(&a);
	cm_pg_close(a.c);
	ctl_manifest_free(&a.m);
	for (size_t i = 0; i < a.nhave; i++)
		ctl_item_clear(&a.have[i]);
	free(a.have);
	free(a.ch);
	free(a.old_bot_name);
	return rc;
}

int ctl_bot_check(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argc;
	struct ctl_manifest m;
	int problems = ctl_manifest_load(argv[0], &m, stderr);
	size_t n[CTL_KINDS] = {0};
	for (size_t i = 0; i < m.nitems; i++)
		n[m.items[i].kind]++;
	if (problems)
		fprintf(stderr, "botjobsctl: bot check: %d problem(s) in %s\n", problems, argv[0]);
	else
		printf("%s: ok (%zu trigger(s), %zu script(s), %zu broadcast(s)), manifest %.12s\n", argv[0],
		       n[CTL_TRIGGER], n[CTL_SCRIPT], n[CTL_BROADCAST], m.hash);
	ctl_manifest_free(&m);
	return problems ? 1 : 0;
}
