/*
 * ctl_manifest.c - reading, checking and comparing bot folders. See ctl_manifest.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_js.h"
#include "cm_sha256.h"
#include "ctl_manifest.h"

#define CODE_MAX 200 /* longest code of a target */

static const char *const kind_names[CTL_KINDS] = {"trigger", "script", "broadcast"};
static const char *const kind_tables[CTL_KINDS] = {"triggers", "scripts", "broadcasts"};

const char *ctl_kind_name(enum ctl_kind k)
{
	return kind_names[k];
}

const char *ctl_kind_table(enum ctl_kind k)
{
	return kind_tables[k];
}

const char *ctl_action_name(enum ctl_action a)
{
	static const char *const names[] = {"added", "changed", "unchanged", "removed", "kept"};
	return names[a];
}

json_t *ctl_fields_json(unsigned fields)
{
	static const char *const names[] = {"code", "name", "body", "condition", "commands", "script_id"};
	json_t *a = json_array();
	for (size_t i = 0; i < CM_ARRAY_LEN(names); i++)
		if (fields & (1u << i))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

void ctl_item_clear(struct ctl_item *it)
{
	if (!it)
		return;
	free(it->code);
	free(it->name);
	free(it->body);
	free(it->condition);
	json_decref(it->commands);
	memset(it, 0, sizeof(*it));
}

void ctl_manifest_free(struct ctl_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nitems; i++)
		ctl_item_clear(&m->items[i]);
	free(m->items);
	json_decref(m->doc);
	memset(m, 0, sizeof(*m));
}

/* ---- reading ---- */

struct rd {
	const char *dir;
	FILE *errs;
	int problems;
	struct ctl_manifest *m;
};

static void problem(struct rd *rd, const char *file, const char *fmt, ...) CM_PRINTF(3, 4);
static void problem(struct rd *rd, const char *file, const char *fmt, ...)
{
	va_list ap;
	fprintf(rd->errs, "%s/%s: ", rd->dir, file);
	va_start(ap, fmt);
	vfprintf(rd->errs, fmt, ap);
	va_end(ap);
	fputc('\n', rd->errs);
	rd->problems++;
}

/* A file of the folder, whole, as a malloc'd string; NULL after reporting why. */
static char *read_file(struct rd *rd, const char *rel)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", rd->dir, rel);
	FILE *f = fopen(path, "rb");
	if (!f) {
		problem(rd, rel, "cannot be read: %s", strerror(errno));
		return NULL;
	}
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				free(buf);
			buf = nb;
		}
	}
	fclose(f);
	if (!buf) {
		problem(rd, rel, "%s", "out of memory");
		return NULL;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		problem(rd, rel, "%s", "contains a NUL byte (not a text file?)");
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Compiles code. label NULL: code is the whole file, reported as "DIR/file:LINE: message"; otherwise
 * code sits inside file and is reported as "DIR/file: label, line LINE: message".
 */
static void check_js(struct rd *rd, const char *code, const char *file, const char *label)
{
	char err[800];
	if (!code || !*code || cm_js_check_body(code, err, sizeof(err)) == 0)
		return;
	int line = 0;
	const char *msg = err;
	if (sscanf(err, "line %d:", &line) == 1 && strchr(err, ':'))
		msg = strchr(err, ':') + 2;
	if (!label && line > 0) {
		fprintf(rd->errs, "%s/%s:%d: %s\n", rd->dir, file, line, msg);
		rd->problems++;
	} else if (!label) {
		problem(rd, file, "%s", msg);
	} else if (line > 0) {
		problem(rd, file, "%s, line %d: %s", label, line, msg);
	} else {
		problem(rd, file, "%s: %s", label, msg);
	}
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int key_allowed(const char *k, const char *const *allowed)
{
	for (size_t i = 0; allowed[i]; i++)
		if (!strcmp(k, allowed[i]))
			return 1;
	return 0;
}

static void unknown_keys(struct rd *rd, const json_t *o, const char *const *allowed, const char *what)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		if (!key_allowed(k, allowed))
			problem(rd, "manifest.json", "%s: unknown field \"%s\"", what, k);
	}
}

static char *opt_string(struct rd *rd, const json_t *o, const char *key, const char *what)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		problem(rd, "manifest.json", "%s: \"%s\" must be a string", what, key);
		return NULL;
	}
	return strdup(json_string_value(v));
}

/* Code given either inline (text_key) or in a file (file_key). label names it for problems. Sets
 * *file to the file's name when it came from one. */
static char *code_of(struct rd *rd, const json_t *o, const char *file_key, const char *text_key, const char *what,
		     const char *label, const char **file)
{
	const json_t *f = json_object_get(o, file_key), *t = json_object_get(o, text_key);
	*file = NULL;
	if (f && t) {
		problem(rd, "manifest.json", "%s: give \"%s\" or \"%s\", not both", what, file_key, text_key);
		return NULL;
	}
	if (t) {
		char *s = opt_string(rd, o, text_key, what);
		check_js(rd, s, "manifest.json", label);
		return s;
	}
	if (!f)
		return NULL;
	if (!json_is_string(f) || !*json_string_value(f)) {
		problem(rd, "manifest.json", "%s: \"%s\" must be a file name", what, file_key);
		return NULL;
	}
	*file = json_string_value(f);
	char *s = read_file(rd, *file);
	check_js(rd, s, *file, NULL);
	return s;
}

static const char *const command_types[] = {"send_text", "add_tags",   "remove_tags", "set_attr",
					    "run_js",	 "run_script", "stop",	      NULL};

/* A dialog script's commands: their shape, and their JavaScript compiled. where: the file and, for
 * inline commands, a prefix naming the script. */
static void check_commands(struct rd *rd, const json_t *cmds, const char *file, const char *prefix)
{
	if (!json_is_array(cmds)) {
		problem(rd, file, "%s%sa script must be a JSON array of commands", prefix, *prefix ? ": " : "");
		return;
	}
	size_t i;
	json_t *c;
	json_array_foreach(cmds, i, c)
	{
		char w[400], label[480];
		const char *type = json_string_value(json_object_get(c, "type"));
		snprintf(w, sizeof(w), "%s%scommand %zu (%s)", prefix, *prefix ? ", " : "", i + 1, type ? type : "?");
		if (!json_is_object(c) || !type) {
			problem(rd, file, "%s: each command must be an object with a \"type\"", w);
			continue;
		}
		if (!key_allowed(type, command_types)) {
			problem(rd, file,
				"%s: unknown type (send_text, add_tags, remove_tags, set_attr, run_js, run_script, "
				"stop)",
				w);
			continue;
		}
		const json_t *cond = json_object_get(c, "condition");
		if (cond && !json_is_string(cond))
			problem(rd, file, "%s: \"condition\" must be a string (a function body)", w);
		snprintf(label, sizeof(label), "%s condition", w);
		check_js(rd, json_string_value(cond), file, label);
		if (!strcmp(type, "send_text") && !json_is_string(json_object_get(c, "text")))
			problem(rd, file, "%s: needs \"text\"", w);
		if ((!strcmp(type, "add_tags") || !strcmp(type, "remove_tags")) &&
		    !json_is_string(json_object_get(c, "tags")) && !json_is_array(json_object_get(c, "tags")))
			problem(rd, file, "%s: needs \"tags\" (\"a,b\" or [\"a\", \"b\"])", w);
		if (!strcmp(type, "set_attr") && !json_is_string(json_object_get(c, "key")))
			problem(rd, file, "%s: needs \"key\"", w);
		if (!strcmp(type, "run_script") && !json_object_get(c, "script_id") &&
		    !json_object_get(c, "script_code"))
			problem(rd, file, "%s: needs \"script_id\" or \"script_code\"", w);
		if (!strcmp(type, "run_js")) {
			const json_t *code = json_object_get(c, "code");
			if (!json_is_string(code)) {
				problem(rd, file, "%s: needs \"code\" (a function body)", w);
			} else {
				snprintf(label, sizeof(label), "%s code", w);
				check_js(rd, json_string_value(code), file, label);
			}
		}
	}
}

static const char *const trigger_keys[] = {"id",	"code",		  "name",      "file", "body",
					   "condition", "condition_file", "script_id", NULL};
static const char *const script_keys[] = {"id", "code", "name", "file", "commands", NULL};

/* Reads one list of targets; appends to m->items and to the resolved doc. */
static void read_items(struct rd *rd, const json_t *manifest, enum ctl_kind kind, json_t *doc)
{
	const char *list = kind_tables[kind];
	const json_t *arr = json_object_get(manifest, list);
	if (!arr)
		return;
	if (!json_is_array(arr)) {
		problem(rd, "manifest.json", "\"%s\" must be an array", list);
		return;
	}
	json_t *out = json_array();
	json_object_set_new(doc, list, out);
	size_t i;
	json_t *t;
	json_array_foreach(arr, i, t)
	{
		char what[300], label[400];
		struct ctl_item *it = &rd->m->items[rd->m->nitems];
		memset(it, 0, sizeof(*it));
		it->kind = kind;
		json_t *id = json_object_get(t, "id");
		const char *code = json_string_value(json_object_get(t, "code"));
		if (json_is_integer(id))
			snprintf(what, sizeof(what), "%s %" PRId64 "%s%s%s", kind_names[kind],
				 (int64_t)json_integer_value(id), code ? " '" : "", code ? code : "", code ? "'" : "");
		else
			snprintf(what, sizeof(what), "%s number %zu of \"%s\"", kind_names[kind], i + 1, list);
		if (!json_is_object(t)) {
			problem(rd, "manifest.json", "%s: must be an object", what);
			continue;
		}
		rd->m->nitems++;
		unknown_keys(rd, t, kind == CTL_SCRIPT ? script_keys : trigger_keys, what);
		if (!json_is_integer(id) || json_integer_value(id) < 1)
			problem(rd, "manifest.json", "%s: \"id\" must be a positive integer", what);
		else
			it->id = json_integer_value(id);
		if (!code || !*code || strlen(code) > CODE_MAX || has_control(code))
			problem(rd, "manifest.json",
				"%s: \"code\" must be a string of 1 to %d characters, none of them control characters",
				what, CODE_MAX);
		else
			it->code = strdup(code);
		it->name = opt_string(rd, t, "name", what);
		const json_t *sid = json_object_get(t, "script_id");
		if (sid && !json_is_null(sid) && (!json_is_integer(sid) || json_integer_value(sid) < 1))
			problem(rd, "manifest.json", "%s: \"script_id\" must be a positive integer", what);
		else if (sid && kind != CTL_SCRIPT)
			it->script_id = json_integer_value(sid);

		json_t *o = json_object();
		json_object_set_new(o, "id", json_integer(it->id));
		json_object_set_new(o, "code", json_string(it->code ? it->code : ""));
		if (it->name)
			json_object_set_new(o, "name", json_string(it->name));
		if (kind == CTL_SCRIPT) {
			const json_t *f = json_object_get(t, "file"), *cmds = json_object_get(t, "commands");
			if (f && cmds) {
				problem(rd, "manifest.json", "%s: give \"file\" or \"commands\", not both", what);
			} else if (cmds) {
				it->commands = json_deep_copy(cmds);
				check_commands(rd, cmds, "manifest.json", what);
			} else if (json_is_string(f)) {
				json_error_t je;
				char path[4096];
				snprintf(path, sizeof(path), "%s/%s", rd->dir, json_string_value(f));
				it->commands = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
				if (!it->commands) {
					fprintf(rd->errs, "%s:%d: %s\n", path, je.line, je.text);
					rd->problems++;
				} else {
					check_commands(rd, it->commands, json_string_value(f), "");
				}
			} else {
				problem(rd, "manifest.json", "%s: a script needs \"file\" or \"commands\"", what);
			}
			json_object_set(o, "commands", it->commands ? it->commands : json_null());
		} else {
			const char *file;
			snprintf(label, sizeof(label), "%s body", what);
			it->body = code_of(rd, t, "file", "body", what, label, &file);
			if (kind == CTL_TRIGGER && !it->body && !file)
				problem(rd, "manifest.json", "%s: a trigger needs \"file\" or \"body\"", what);
			if (kind == CTL_BROADCAST && !it->body && !file && !it->script_id)
				problem(rd, "manifest.json",
					"%s: a broadcast needs \"script_id\", \"file\" or \"body\"", what);
			snprintf(label, sizeof(label), "%s condition", what);
			it->condition = code_of(rd, t, "condition_file", "condition", what, label, &file);
			if (it->body)
				json_object_set_new(o, "body", json_string(it->body));
			if (it->condition)
				json_object_set_new(o, "condition", json_string(it->condition));
			if (it->script_id)
				json_object_set_new(o, "script_id", json_integer(it->script_id));
		}
		json_array_append_new(out, o);
	}
}

/* Two items of one kind with the same id or code; script_id naming no script of the manifest. */
static void check_refs(struct rd *rd)
{
	struct ctl_manifest *m = rd->m;
	for (size_t i = 0; i < m->nitems; i++) {
		const struct ctl_item *a = &m->items[i];
		for (size_t j = i + 1; j < m->nitems; j++) {
			const struct ctl_item *b = &m->items[j];
			if (a->kind != b->kind)
				continue;
			if (a->id && a->id == b->id)
				problem(rd, "manifest.json", "two %ss have the id %" PRId64, kind_names[a->kind],
					a->id);
			if (a->code && b->code && !strcmp(a->code, b->code))
				problem(rd, "manifest.json", "two %ss have the code '%s'", kind_names[a->kind],
					a->code);
		}
		if (a->script_id) {
			int found = 0;
			for (size_t j = 0; j < m->nitems && !found; j++)
				found = m->items[j].kind == CTL_SCRIPT && m->items[j].id == a->script_id;
			if (!found)
				problem(rd, "manifest.json",
					"%s %" PRId64 ": script_id %" PRId64 " is not a script of this manifest",
					kind_names[a->kind], a->id, a->script_id);
		}
	}
}

static void read_extras(struct rd *rd, const json_t *manifest, json_t *doc)
{
	const json_t *st = json_object_get(manifest, "lead_statuses");
	size_t i;
	json_t *x;
	if (st && !json_is_array(st))
		problem(rd, "manifest.json", "%s", "\"lead_statuses\" must be an array");
	json_array_foreach(st, i, x)
	{
		json_t *id = json_object_get(x, "id");
		if (!json_is_integer(id) || json_integer_value(id) < 1 || !json_is_string(json_object_get(x, "name")))
			problem(rd, "manifest.json", "lead status number %zu: needs a positive \"id\" and a \"name\"",
				i + 1);
	}
	const json_t *leads = json_object_get(manifest, "leads");
	if (leads && !json_is_array(leads))
		problem(rd, "manifest.json", "%s", "\"leads\" must be an array");
	json_array_foreach(leads, i, x)
	{
		json_t *id = json_object_get(x, "id"), *a = json_object_get(x, "attributes"),
		       *t = json_object_get(x, "tags");
		if (!json_is_integer(id) || json_integer_value(id) < 1 || (a && !json_is_object(a)) ||
		    (t && !json_is_array(t)))
			problem(rd, "manifest.json",
				"lead number %zu: needs a positive \"id\"; \"attributes\" is an object, \"tags\" an "
				"array",
				i + 1);
	}
	const json_t *ba = json_object_get(manifest, "bot_attributes");
	if (ba && !json_is_object(ba))
		problem(rd, "manifest.json", "%s", "\"bot_attributes\" must be an object");
	static const char *const extras[] = {"lead_statuses", "leads", "bot_attributes"};
	for (size_t k = 0; k < CM_ARRAY_LEN(extras); k++) {
		json_t *v = json_object_get(manifest, extras[k]);
		if (v)
			json_object_set(doc, extras[k], v);
	}
}

int ctl_manifest_load(const char *dir, struct ctl_manifest *m, FILE *errs)
{
	static const char *const top_keys[] = {"business",	"bot",	 "triggers",	   "scripts", "broadcasts",
					       "lead_statuses", "leads", "bot_attributes", NULL};
	struct rd rd = {.dir = dir, .errs = errs, .m = m};
	memset(m, 0, sizeof(*m));
	char path[4096];
	json_error_t je;
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	json_t *man = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!man) {
		fprintf(errs, "%s:%d: %s\n", path, je.line, je.text);
		return 1;
	}
	if (!json_is_object(man)) {
		problem(&rd, "manifest.json", "%s", "must be a JSON object");
		json_decref(man);
		return rd.problems;
	}
	unknown_keys(&rd, man, top_keys, "the manifest");
	m->doc = json_object();
	json_t *business = json_object_get(man, "business");
	if ((!json_is_string(business) || !*json_string_value(business)) &&
	    (!json_is_integer(business) || json_integer_value(business) < 1))
		problem(&rd, "manifest.json", "%s", "\"business\" (the tenant's name, or its id) is required");
	else
		json_object_set(m->doc, "business", business);
	m->business = json_object_get(m->doc, "business");
	const json_t *b = json_object_get(man, "bot");
	const json_t *bid = json_object_get(b, "id"), *bname = json_object_get(b, "name");
	if (!json_is_object(b) || !json_is_integer(bid) || json_integer_value(bid) < 1 ||
	    (bname && !json_is_string(bname))) {
		problem(&rd, "manifest.json", "%s",
			"\"bot\": {\"id\": <positive integer>, \"name\": \"…\"} is required");
	} else {
		m->bot_id = json_integer_value(bid);
		json_t *bo = json_pack("{sI}", "id", (json_int_t)m->bot_id);
		if (bname)
			json_object_set(bo, "name", (json_t *)bname);
		json_object_set_new(m->doc, "bot", bo);
		m->bot_name = json_string_value(json_object_get(bo, "name"));
	}
	size_t total = 0;
	for (int k = 0; k < CTL_KINDS; k++)
		total += json_array_size(json_object_get(man, kind_tables[k]));
	m->items = calloc(total + 1, sizeof(*m->items));
	if (!m->items) {
		problem(&rd, "manifest.json", "%s", "out of memory");
		json_decref(man);
		return rd.problems;
	}
	/* Scripts first: triggers and broadcasts refer to them. */
	read_items(&rd, man, CTL_SCRIPT, m->doc);
	read_items(&rd, man, CTL_TRIGGER, m->doc);
	read_items(&rd, man, CTL_BROADCAST, m->doc);
	check_refs(&rd);
	read_extras(&rd, man, m->doc);
	json_decref(man);

	char *canon = json_dumps(m->doc, JSON_COMPACT | JSON_SORT_KEYS);
	uint8_t digest[CM_SHA256_LEN];
	cm_sha256(canon ? canon : "", canon ? strlen(canon) : 0, digest);
	cm_hex(digest, sizeof(digest), m->hash);
	free(canon);
	return rd.problems;
}

/* ---- comparing ---- */

static int same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static int same_commands(const json_t *a, const json_t *b)
{
	if (!a || json_is_null(a))
		return !b || json_is_null(b) || (json_is_array(b) && json_array_size(b) == 0);
	if (!b || json_is_null(b))
		return json_is_array(a) && json_array_size(a) == 0;
	return json_equal((json_t *)a, (json_t *)b);
}

static unsigned differences(const struct ctl_item *w, const struct ctl_item *h)
{
	unsigned f = 0;
	if (!same_text(w->code, h->code))
		f |= CTL_F_CODE;
	if (!same_text(w->name, h->name))
		f |= CTL_F_NAME;
	if (w->kind == CTL_SCRIPT) {
		if (!same_commands(w->commands, h->commands))
			f |= CTL_F_COMMANDS;
		return f;
	}
	if (!same_text(w->body, h->body))
		f |= CTL_F_BODY;
	if (!same_text(w->condition, h->condition))
		f |= CTL_F_CONDITION;
	if (w->script_id != h->script_id)
		f |= CTL_F_SCRIPT;
	return f;
}

static const struct ctl_item *find_id(const struct ctl_item *items, size_t n, enum ctl_kind kind, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].kind == kind && items[i].id == id)
			return &items[i];
	return NULL;
}

struct ctl_change *ctl_manifest_diff(const struct ctl_item *want, size_t nwant, const struct ctl_item *have,
				     size_t nhave, int prune, size_t *n, char *errstr, size_t errstr_size)
{
	*n = 0;
	/* A code the manifest uses, held by a stored item that stays under another id, cannot be applied. */
	for (size_t i = 0; i < nwant; i++) {
		for (size_t j = 0; j < nhave; j++) {
			const struct ctl_item *h = &have[j];
			if (h->kind != want[i].kind || h->id == want[i].id || !same_text(h->code, want[i].code))
				continue;
			if (!prune && !find_id(want, nwant, h->kind, h->id)) {
				snprintf(errstr, errstr_size,
					 "the code '%s' of %s %" PRId64 " is held by %s %" PRId64
					 ", which the manifest does not list: give one of them another code, or"
					 " apply with --prune to delete %s %" PRId64,
					 want[i].code ? want[i].code : "", kind_names[h->kind], want[i].id,
					 kind_names[h->kind], h->id, kind_names[h->kind], h->id);
				return NULL;
			}
		}
	}
	struct ctl_change *ch = calloc(nwant + nhave + 1, sizeof(*ch));
	if (!ch) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < nwant; i++) {
		const struct ctl_item *w = &want[i], *h = find_id(have, nhave, w->kind, w->id);
		struct ctl_change *c = &ch[k++];
		c->kind = w->kind;
		c->id = w->id;
		c->code = w->code;
		c->want = w;
		c->have = h;
		if (!h) {
			c->action = CTL_ADDED;
			c->new_version = 1;
			continue;
		}
		c->fields = differences(w, h);
		c->old_version = h->version;
		c->action = c->fields ? CTL_CHANGED : CTL_UNCHANGED;
		c->new_version = c->fields ? h->version + 1 : h->version;
	}
	for (size_t j = 0; j < nhave; j++) {
		const struct ctl_item *h = &have[j];
		if (find_id(want, nwant, h->kind, h->id))
			continue;
		struct ctl_change *c = &ch[k++];
		c->kind = h->kind;
		c->id = h->id;
		c->code = h->code;
		c->have = h;
		c->action = prune ? CTL_REMOVED : CTL_KEPT;
		c->old_version = h->version;
		c->new_version = prune ? 0 : h->version;
	}
	*n = k;
	return ch;
}
