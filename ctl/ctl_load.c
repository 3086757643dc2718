/*
 * ctl_load.c - `botjobsctl load DIR` / `check DIR`: a bot folder into PostgreSQL.
 *
 * DIR/manifest.json names the business, the bot, and its triggers, scripts and broadcasts (code in
 * files next to it, or inline), plus optional seed leads, lead statuses and bot attributes. Every
 * piece of JavaScript is compiled first; if any fails, nothing is loaded and each failure is printed
 * as "file:line: message". Loading is one transaction of upserts, so loading twice is harmless; a
 * target whose code changed gets version + 1.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_js.h"
#include "cm_pg.h"
#include "ctl.h"

struct loader {
	const char *dir;
	int errors;
	json_t *m; /* the manifest */
};

static void problem(struct loader *l, const char *where, const char *fmt, ...) CM_PRINTF(3, 4);
static void problem(struct loader *l, const char *where, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s/%s: ", l->dir, where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	l->errors++;
}

/* The code of an item: its "file" (relative to DIR) or its inline field. Returns malloc'd text or NULL. */
static char *read_code(struct loader *l, const json_t *item, const char *file_key, const char *inline_key,
		       const char *where)
{
	const char *file = json_string_value(json_object_get(item, file_key));
	const char *text = json_string_value(json_object_get(item, inline_key));
	if (text)
		return strdup(text);
	if (!file)
		return NULL;
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", l->dir, file);
	FILE *f = fopen(path, "rb");
	if (!f) {
		problem(l, where, "cannot read %s", file);
		return NULL;
	}
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* Compiles JavaScript; failures are printed as "DIR/file:line: message". */
static void check_js(struct loader *l, const char *code, const char *where)
{
	char err[600];
	if (!code || cm_js_check_body(code, err, sizeof(err)) == 0)
		return;
	/* err is "line N: message": print it as file:N: message, the way compilers do */
	int line = 0;
	const char *msg = err;
	if (sscanf(err, "line %d:", &line) == 1) {
		msg = strchr(err, ':') + 2;
		fprintf(stderr, "%s/%s:%d: %s\n", l->dir, where, line, msg);
	} else {
		fprintf(stderr, "%s/%s: %s\n", l->dir, where, msg);
	}
	l->errors++;
}

static int64_t item_id(struct loader *l, const json_t *item, const char *where)
{
	json_t *id = json_object_get(item, "id");
	if (!json_is_integer(id) || json_integer_value(id) < 1) {
		problem(l, where, "%s", "\"id\" must be a positive integer");
		return 0;
	}
	const char *code = json_string_value(json_object_get(item, "code"));
	if (!code || !*code)
		problem(l, where, "%s", "\"code\" must be a non-empty string");
	return json_integer_value(id);
}

/* A dialog script: an array of commands; the JavaScript inside is compiled too. */
static void check_script(struct loader *l, const json_t *cmds, const char *where)
{
	if (!json_is_array(cmds)) {
		problem(l, where, "%s", "a script must be a JSON array of commands");
		return;
	}
	size_t i;
	json_t *c;
	json_array_foreach(cmds, i, c)
	{
		char w[512];
		snprintf(w, sizeof(w), "%s (command %zu)", where, i + 1);
		if (!json_is_object(c) || !json_is_string(json_object_get(c, "type"))) {
			problem(l, w, "%s", "each command must be an object with a \"type\"");
			continue;
		}
		check_js(l, json_string_value(json_object_get(c, "condition")), w);
		check_js(l, json_string_value(json_object_get(c, "code")), w);
	}
}

struct item {
	int64_t id;
	const char *code, *name;
	char *body, *condition;
	json_t *script; /* scripts: the commands */
	int64_t script_id;
};

static void items_free(struct item *it, size_t n)
{
	for (size_t i = 0; it && i < n; i++) {
		free(it[i].body);
		free(it[i].condition);
		json_decref(it[i].script);
	}
	free(it);
}

/* Reads and checks one list of the manifest ("triggers", "scripts", "broadcasts"). */
static struct item *read_items(struct loader *l, const char *list, size_t *n)
{
	json_t *arr = json_object_get(l->m, list);
	*n = json_array_size(arr);
	if (arr && !json_is_array(arr)) {
		problem(l, "manifest.json", "\"%s\" must be an array", list);
		*n = 0;
		return NULL;
	}
	struct item *items = calloc(*n + 1, sizeof(*items));
	size_t i;
	json_t *t;
	json_array_foreach(arr, i, t)
	{
		struct item *it = &items[i];
		const char *file = json_string_value(json_object_get(t, "file"));
		char where[300];
		snprintf(where, sizeof(where), "%s", file ? file : "manifest.json");
		it->id = item_id(l, t, where);
		it->code = json_string_value(json_object_get(t, "code"));
		it->name = json_string_value(json_object_get(t, "name"));
		it->script_id = json_integer_value(json_object_get(t, "script_id"));
		if (!strcmp(list, "scripts")) {
			json_t *cmds = json_object_get(t, "commands");
			if (cmds) {
				it->script = json_incref(cmds);
			} else if (file) {
				char *text = read_code(l, t, "file", "-", where);
				json_error_t je;
				it->script = text ? json_loads(text, 0, &je) : NULL;
				if (text && !it->script) {
					char msg[300];
					snprintf(msg, sizeof(msg), "line %d: %s", je.line, je.text);
					problem(l, where, "%s", msg);
				}
				free(text);
			}
			if (it->script)
				check_script(l, it->script, where);
			continue;
		}
		it->body = read_code(l, t, "file", "body", where);
		it->condition = read_code(l, t, "condition_file", "condition", where);
		if (!strcmp(list, "triggers") && !it->body)
			problem(l, where, "%s", "a trigger needs \"file\" or \"body\"");
		check_js(l, it->body, where);
		const char *cf = json_string_value(json_object_get(t, "condition_file"));
		char cw[512];
		snprintf(cw, sizeof(cw), "%s%s", cf ? cf : where, cf ? "" : " (condition)");
		check_js(l, it->condition, cw);
	}
	return items;
}

static int exec_p(PGconn *c, const char *sql, int n, const char *const *p, const char *what)
{
	char err[800];
	if (cm_pg_command(c, sql, n, p, err, sizeof(err)) == -1) {
		fprintf(stderr, "botjobsctl: %s: %s\n", what, err);
		return -1;
	}
	return 0;
}

static int upsert_items(PGconn *c, const char *table, const char *bot, struct item *it, size_t n)
{
	char sql[1500], id[24], sid[24];
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%" PRId64, it[i].id);
		snprintf(sid, sizeof(sid), "%" PRId64, it[i].script_id);
		const char *sidp = it[i].script_id ? sid : NULL;
		if (!strcmp(table, "scripts")) {
			char *body = json_dumps(it[i].script ? it[i].script : json_array(), JSON_COMPACT);
			const char *p[] = {bot, id, it[i].code, it[i].name, body};
			int r = exec_p(
				c,
				"INSERT INTO scripts (bot_id, id, code, name, body) VALUES ($1, $2, $3, $4, $5::jsonb)"
				" ON CONFLICT (bot_id, id) DO UPDATE SET code = EXCLUDED.code, name = EXCLUDED.name,"
				" body = EXCLUDED.body, updated_at = now(),"
				" version = scripts.version + (scripts.body IS DISTINCT FROM EXCLUDED.body)::int",
				5, p, "scripts");
			free(body);
			if (r == -1)
				return -1;
			continue;
		}
		const char *p[] = {bot, id, it[i].code, it[i].name, it[i].body, it[i].condition, sidp};
		snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (bot_id, id, code, name, body, condition, script_id)"
			 " VALUES ($1, $2, $3, $4, coalesce($5, ''), $6, $7)"
			 " ON CONFLICT (bot_id, id) DO UPDATE SET code = EXCLUDED.code, name = EXCLUDED.name,"
			 " body = EXCLUDED.body, condition = EXCLUDED.condition, script_id = EXCLUDED.script_id,"
			 " updated_at = now(), version = %s.version + ((%s.body, %s.condition)"
			 " IS DISTINCT FROM (EXCLUDED.body, EXCLUDED.condition))::int",
			 table, table, table, table);
		if (exec_p(c, sql, 7, p, table) == -1)
			return -1;
	}
	return 0;
}

static int prune(PGconn *c, const char *table, const char *bot, struct item *it, size_t n)
{
	json_t *ids = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_integer(it[i].id));
	char *text = json_dumps(ids, JSON_COMPACT), sql[300];
	json_decref(ids);
	snprintf(sql, sizeof(sql),
		 "DELETE FROM %s WHERE bot_id = $1 AND id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)::bigint)",
		 table);
	const char *p[] = {bot, text};
	int r = exec_p(c, sql, 2, p, table);
	free(text);
	return r;
}

static int load_db(const struct ctl_cfg *cfg, struct loader *l, struct item *tr, size_t ntr, struct item *sc,
		   size_t nsc, struct item *bc, size_t nbc)
{
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	char err[800], bot[24];
	const json_t *b = json_object_get(l->m, "bot");
	snprintf(bot, sizeof(bot), "%" PRId64, (int64_t)json_integer_value(json_object_get(b, "id")));
	const char *bname = json_string_value(json_object_get(b, "name"));
	const char *business = json_string_value(json_object_get(l->m, "business"));
	if (cm_pg_exec(c, "BEGIN", err, sizeof(err)) == -1)
		goto fail;
	const char *pb[] = {business};
	PGresult *r = cm_pg_query(
		c,
		"INSERT INTO businesses (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
		" RETURNING id",
		1, pb, err, sizeof(err));
	if (!r)
		goto fail;
	char business_id[24];
	snprintf(business_id, sizeof(business_id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *pbot[] = {bot, business_id, bname ? bname : bot};
	r = cm_pg_query(
		c,
		"INSERT INTO bots (id, business_id, name) VALUES ($1, $2, $3)"
		" ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name WHERE bots.business_id = EXCLUDED.business_id"
		" RETURNING id",
		3, pbot, err, sizeof(err));
	if (!r)
		goto fail;
	int mine = PQntuples(r) == 1;
	PQclear(r);
	if (!mine) {
		snprintf(err, sizeof(err), "bot %s belongs to another business", bot);
		goto fail;
	}
	if (upsert_items(c, "scripts", bot, sc, nsc) || upsert_items(c, "triggers", bot, tr, ntr) ||
	    upsert_items(c, "broadcasts", bot, bc, nbc))
		goto fail_quiet;
	if (cfg->prune && (prune(c, "scripts", bot, sc, nsc) || prune(c, "triggers", bot, tr, ntr) ||
			   prune(c, "broadcasts", bot, bc, nbc)))
		goto fail_quiet;

	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(l->m, "lead_statuses"), i, x)
	{
		char id[24];
		snprintf(id, sizeof(id), "%" PRId64, (int64_t)json_integer_value(json_object_get(x, "id")));
		const char *p[] = {bot, id, json_string_value(json_object_get(x, "name"))};
		if (exec_p(c,
			   "INSERT INTO lead_statuses (bot_id, id, name) VALUES ($1, $2, $3)"
			   " ON CONFLICT (bot_id, id) DO UPDATE SET name = EXCLUDED.name",
			   3, p, "lead_statuses"))
			goto fail_quiet;
	}
	/* Seed leads: created if missing, never overwritten (their attributes belong to the bot's runs). */
	json_array_foreach(json_object_get(l->m, "leads"), i, x)
	{
		char id[24];
		snprintf(id, sizeof(id), "%" PRId64, (int64_t)json_integer_value(json_object_get(x, "id")));
		json_t *attrs = json_object_get(x, "attributes"), *tags = json_object_get(x, "tags");
		char *a = json_dumps(attrs ? attrs : json_object(), JSON_COMPACT);
		char *t = json_dumps(tags ? tags : json_array(), JSON_COMPACT);
		const char *ch = json_string_value(json_object_get(x, "channel"));
		const char *p[] = {bot,
				   id,
				   json_string_value(json_object_get(x, "name")),
				   ch ? ch : "api",
				   a,
				   t,
				   json_is_true(json_object_get(x, "muted")) ? "true" : "false"};
		int bad = exec_p(
			c,
			"INSERT INTO leads (bot_id, id, name, channel, attributes, tags, muted)"
			" VALUES ($1, $2, $3, $4, $5::jsonb, ARRAY(SELECT jsonb_array_elements_text($6::jsonb)), $7)"
			" ON CONFLICT (bot_id, id) DO NOTHING",
			7, p, "leads");
		free(a);
		free(t);
		if (bad)
			goto fail_quiet;
	}
	const char *k;
	json_object_foreach(json_object_get(l->m, "bot_attributes"), k, x)
	{
		char *v = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *p[] = {bot, k, v};
		int bad = exec_p(c,
				 "INSERT INTO bot_attributes (bot_id, key, value) VALUES ($1, $2, $3::jsonb)"
				 " ON CONFLICT (bot_id, key) DO NOTHING",
				 3, p, "bot_attributes");
		free(v);
		if (bad)
			goto fail_quiet;
	}
	if (cm_pg_exec(c, "COMMIT", err, sizeof(err)) == -1)
		goto fail;
	printf("loaded bot %s (%s) of business \"%s\": %zu trigger(s), %zu script(s), %zu broadcast(s), %zu lead(s)\n",
	       bot, bname ? bname : "", business, ntr, nsc, nbc, json_array_size(json_object_get(l->m, "leads")));
	cm_pg_close(c);
	return 0;
fail:
	fprintf(stderr, "botjobsctl: load: %s\n", err);
fail_quiet:
	cm_pg_exec_quiet(c, "ROLLBACK");
	cm_pg_close(c);
	return 1;
}

int ctl_load(const struct ctl_cfg *cfg, const char *dir, int check_only)
{
	struct loader l = {.dir = dir};
	char path[1024];
	json_error_t je;
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	l.m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!l.m) {
		fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
		return 1;
	}
	if (!json_is_string(json_object_get(l.m, "business")))
		problem(&l, "manifest.json", "%s", "\"business\" (the tenant's name) is required");
	const json_t *b = json_object_get(l.m, "bot");
	if (!json_is_object(b) || !json_is_integer(json_object_get(b, "id")) ||
	    json_integer_value(json_object_get(b, "id")) < 1)
		problem(&l, "manifest.json", "%s", "\"bot\": {\"id\": <positive integer>, \"name\": ...} is required");
	size_t ntr, nsc, nbc;
	struct item *tr = read_items(&l, "triggers", &ntr);
	struct item *sc = read_items(&l, "scripts", &nsc);
	struct item *bc = read_items(&l, "broadcasts", &nbc);
	int rc = 1;
	if (l.errors) {
		fprintf(stderr, "botjobsctl: %d problem(s) in %s; nothing was loaded\n", l.errors, dir);
	} else if (check_only) {
		printf("%s: ok (%zu trigger(s), %zu script(s), %zu broadcast(s))\n", dir, ntr, nsc, nbc);
		rc = 0;
	} else {
		rc = load_db(cfg, &l, tr, ntr, sc, nsc, bc, nbc);
	}
	items_free(tr, ntr);
	items_free(sc, nsc);
	items_free(bc, nbc);
	json_decref(l.m);
	return rc;
}
