/*
 * wk_host_find.c - bot.findLeads: the where/orderBy/columns arguments -> one parameterized SQL
 * statement over the run's own bot's leads (wk_host.c runs it). See wk_host.h.
 *
 * The SQL text is assembled only from constant fragments chosen by allow-listed names (the fields
 * table below); script input only ever becomes a $n parameter (values and attribute keys), and
 * $1 is always the run's bot id, bound by the worker (wk_host_bind).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_time.h"
#include "wk_host.h"

#define MAX_CONDITIONS 50
#define MAX_IN_VALUES 1000
#define MAX_ORDER_TERMS 5
#define MAX_VALUE_BYTES 16384
#define MAX_KEY_BYTES 255

/* ---- a growing string ---- */

struct sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_addf(struct sb *b, const char *fmt, ...) CM_PRINTF(2, 3);
static void sb_addf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 512;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* ---- fields ---- */

enum ftype { F_INT, F_TEXT, F_BOOL, F_TIME, F_TAGS, F_ATTRS, F_ATTR };

struct field {
	const char *name; /* also its column: only these constants ever reach the SQL text */
	enum ftype type;
	int def;   /* one of the default columns */
	int where; /* may be filtered and ordered on */
};

static const struct field fields[] = {
	{"id", F_INT, 1, 1},	       {"name", F_TEXT, 1, 1},	     {"channel", F_TEXT, 1, 1},
	{"status_id", F_INT, 1, 1},    {"muted", F_BOOL, 1, 1},	     {"tags", F_TAGS, 1, 1},
	{"attributes", F_ATTRS, 1, 0}, {"created_at", F_TIME, 0, 1}, {"updated_at", F_TIME, 0, 1},
};

/* A resolved where/orderBy field: a column, or one attribute (its key a parameter). */
struct fref {
	const struct field *f; /* NULL for an attribute */
	enum ftype type;
	int key; /* $n of the attribute key */
	char label[80];
};

static int add_param(struct wk_host_query *q, const char *v)
{
	if (q->nparams == q->cap) {
		int cap = q->cap ? q->cap * 2 : 8;
		char **np = realloc(q->params, (size_t)cap * sizeof(*np));
		if (!np)
			return -1;
		q->params = np;
		q->cap = cap;
	}
	q->params[q->nparams] = strdup(v);
	if (!q->params[q->nparams])
		return -1;
	return ++q->nparams;
}

static int oom(char *errstr, size_t errstr_size)
{
	snprintf(errstr, errstr_size, "out of memory");
	return -1;
}

static int resolve(struct wk_host_query *q, const char *name, struct fref *r, char *errstr, size_t errstr_size)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->label, sizeof(r->label), "%.64s", name);
	const char *key = NULL;
	if (strncmp(name, "attributes.", 11) == 0)
		key = name + 11;
	else if (strncmp(name, "attr.", 5) == 0)
		key = name + 5;
	if (key) {
		size_t n = strlen(key);
		if (n == 0 || n > MAX_KEY_BYTES) {
			snprintf(errstr, errstr_size, "the attribute name in '%.64s' must be 1-%d bytes", name,
				 MAX_KEY_BYTES);
			return -1;
		}
		r->type = F_ATTR;
		r->key = add_param(q, key);
		return r->key < 0 ? oom(errstr, errstr_size) : 0;
	}
	for (size_t i = 0; i < CM_ARRAY_LEN(fields); i++) {
		if (strcmp(fields[i].name, name) == 0) {
			r->f = &fields[i];
			r->type = fields[i].type;
			return 0;
		}
	}
	snprintf(errstr, errstr_size, "unknown field '%.64s'", name);
	return -1;
}

/* The field as an SQL expression; numeric = an attribute as a number (NULL when it is not one). */
static void expr(struct sb *b, const struct fref *r, int numeric)
{
	if (r->type != F_ATTR)
		sb_addf(b, "%s", r->f->name);
	else if (!numeric)
		sb_addf(b, "(attributes->>$%d::text)", r->key);
	else
		sb_addf(b,
			"(CASE WHEN (attributes->>$%d::text) ~ '^ "
			"*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]{1,3})? *$'"
			" THEN (attributes->>$%d::text)::numeric END)",
			r->key, r->key);
}

static const char *cast(enum ftype t)
{
	switch (t) {
	case F_INT:
		return "::bigint";
	case F_BOOL:
		return "::boolean";
	case F_TIME:
		return "::timestamptz";
	default:
		return "::text";
	}
}

/* The same test as the SQL regular expression above, so that $n::numeric never fails. */
static int numeric_text(const char *s)
{
	while (*s == ' ')
		s++;
	if (*s == '-' || *s == '+')
		s++;
	int digits = 0;
	while (isdigit((unsigned char)*s))
		s++, digits++;
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s))
			s++, digits++;
	}
	if (!digits)
		return 0;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		int e = 0;
		while (isdigit((unsigned char)*s))
			s++, e++;
		if (e < 1 || e > 3)
			return 0;
	}
	while (*s == ' ')
		s++;
	return *s == '\0';
}

/* Shortest text that reads back as the same double, as PostgreSQL's jsonb prints numbers. */
static void real_text(double d, char *buf, size_t n)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/* Converts one value for a field of type t into parameter text. Returns -1 with errstr. */
static int value_text(const json_t *v, const struct fref *r, enum ftype t, char *out, size_t out_size, char *errstr,
		      size_t errstr_size)
{
	switch (t) {
	case F_INT:
		if (json_is_integer(v)) {
			snprintf(out, out_size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			return 0;
		}
		if (json_is_string(v)) {
			const char *s = json_string_value(v);
			size_t n = strlen(s), i = (s[0] == '-');
			if (n > i && n - i <= 18 && strspn(s + i, "0123456789") == n - i) {
				snprintf(out, out_size, "%s", s);
				return 0;
			}
		}
		snprintf(errstr, errstr_size, "the value for '%s' must be an integer", r->label);
		return -1;
	case F_BOOL:
		if (json_is_boolean(v) ||
		    (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))) {
			snprintf(out, out_size, "%s", json_is_true(v) || json_integer_value(v) == 1 ? "true" : "false");
			return 0;
		}
		if (json_is_string(v) &&
		    (strcmp(json_string_value(v), "true") == 0 || strcmp(json_string_value(v), "false") == 0)) {
			snprintf(out, out_size, "%s", json_string_value(v));
			return 0;
		}
		snprintf(errstr, errstr_size, "the value for '%s' must be true or false", r->label);
		return -1;
	case F_TIME: {
		int64_t us;
		char why[120], buf[CM_TIME_BUFSZ];
		if (!json_is_string(v)) {
			snprintf(errstr, errstr_size, "the value for '%s' must be a time string", r->label);
			return -1;
		}
		if (cm_time_parse(json_string_value(v), &us, why, sizeof(why)) == -1) {
			snprintf(errstr, errstr_size, "the value for '%s' %s", r->label, why);
			return -1;
		}
		snprintf(out, out_size, "%s", cm_time_format_us(us, buf));
		return 0;
	}
	case F_TAGS:
		if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < out_size) {
			snprintf(out, out_size, "%s", json_string_value(v));
			return 0;
		}
		snprintf(errstr, errstr_size, "the value for '%s' must be a tag (a non-empty string)", r->label);
		return -1;
	default: /* text and attributes */
		if (json_is_string(v)) {
			if (json_string_length(v) >= out_size ||
			    strlen(json_string_value(v)) != json_string_length(v)) {
				snprintf(errstr, errstr_size,
					 "the value for '%s' is longer than %zu bytes or has a NUL", r->label,
					 out_size - 1);
				return -1;
			}
			snprintf(out, out_size, "%s", json_string_value(v));
		} else if (json_is_integer(v)) {
			snprintf(out, out_size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		} else if (json_is_real(v)) {
			real_text(json_real_value(v), out, out_size);
		} else if (json_is_boolean(v)) {
			snprintf(out, out_size, "%s", json_is_true(v) ? "true" : "false");
		} else {
			snprintf(errstr, errstr_size, "the value for '%s' must be a string, a number or a boolean",
				 r->label);
			return -1;
		}
		return 0;
	}
}

/* Adds a value as a parameter and writes "$n::type". */
static int put_value(struct wk_host_query *q, struct sb *w, const json_t *v, const struct fref *r, enum ftype t,
		     char *errstr, size_t errstr_size)
{
	char buf[MAX_VALUE_BYTES + 1];
	if (value_text(v, r, t, buf, sizeof(buf), errstr, errstr_size) == -1)
		return -1;
	int n = add_param(q, buf);
	if (n < 0)
		return oom(errstr, errstr_size);
	sb_addf(w, "$%d%s", n, cast(t == F_ATTR ? F_TEXT : t));
	return 0;
}

enum op {
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_LIKE,
	OP_NLIKE,
	OP_IN,
	OP_NIN,
	OP_NULL,
	OP_NNULL,
	OP_HAS,
	OP_NHAS
};

static const struct {
	const char *name;
	enum op op;
} ops[] = {
	{"=", OP_EQ},
	{"!=", OP_NE},
	{"<>", OP_NE},
	{"<", OP_LT},
	{"<=", OP_LE},
	{">", OP_GT},
	{">=", OP_GE},
	{"like", OP_LIKE},
	{"not like", OP_NLIKE},
	{"in", OP_IN},
	{"not in", OP_NIN},
	{"is null", OP_NULL},
	{"is not null", OP_NNULL},
	{"contains", OP_HAS},
	{"not contains", OP_NHAS},
};

/* Lower case, single spaces, trimmed; -1 when it is none of the operators. */
static int parse_op(const char *s, enum op *op, char *norm, size_t norm_size)
{
	size_t o = 0;
	int space = 0;
	for (; *s && o + 2 < norm_size; s++) {
		if (isspace((unsigned char)*s)) {
			space = o > 0;
			continue;
		}
		if (space)
			norm[o++] = ' ';
		space = 0;
		norm[o++] = (char)tolower((unsigned char)*s);
	}
	norm[o] = '\0';
	for (size_t i = 0; i < CM_ARRAY_LEN(ops); i++)
		if (strcmp(ops[i].name, norm) == 0) {
			*op = ops[i].op;
			return 0;
		}
	return -1;
}

static int op_applies(enum ftype t, enum op op)
{
	switch (t) {
	case F_TAGS:
		return op == OP_HAS || op == OP_NHAS;
	case F_BOOL:
		return op == OP_EQ || op == OP_NE || op == OP_NULL || op == OP_NNULL;
	case F_INT:
	case F_TIME:
		return op != OP_LIKE && op != OP_NLIKE && op != OP_HAS && op != OP_NHAS;
	case F_TEXT:
	case F_ATTR:
		return op != OP_HAS && op != OP_NHAS;
	default:
		return 0;
	}
}

/* An attribute compared with <, <=, >, >= compares as a number when the value is one. */
static int numeric_value(const json_t *v)
{
	return json_is_number(v) || (json_is_string(v) && numeric_text(json_string_value(v)));
}

static int put_in_list(struct wk_host_query *q, struct sb *w, const json_t *v, const struct fref *r, char *errstr,
		       size_t errstr_size)
{
	size_t i;
	json_t *x;
	sb_addf(w, " IN (");
	json_array_foreach(v, i, x)
	{
		if (i)
			sb_addf(w, ", ");
		if (put_value(q, w, x, r, r->type, errstr, errstr_size) == -1)
			return -1;
	}
	sb_addf(w, ")");
	return 0;
}

/* One condition: [field, value], [field, op, value] or [field, "is null"]. */
static int condition(struct wk_host_query *q, struct sb *w, const json_t *c, char *errstr, size_t errstr_size)
{
	size_t n = json_array_size(c);
	const char *name = json_string_value(json_array_get(c, 0));
	if (!json_is_array(c) || n < 2 || n > 3 || !name) {
		snprintf(errstr, errstr_size, "where: a condition is [field, value] or [field, operator, value]");
		return -1;
	}
	struct fref r;
	if (resolve(q, name, &r, errstr, errstr_size) == -1)
		return -1;
	if (r.type == F_ATTRS) {
		snprintf(errstr, errstr_size, "where: use attributes.<name> to filter on an attribute");
		return -1;
	}
	enum op op = r.type == F_TAGS ? OP_HAS : OP_EQ;
	char norm[32] = "=";
	const json_t *v = json_array_get(c, n - 1);
	if (n == 3) {
		const char *o = json_string_value(json_array_get(c, 1));
		if (!o || parse_op(o, &op, norm, sizeof(norm)) == -1) {
			snprintf(errstr, errstr_size, "where: unknown operator '%.32s'", o ? o : "(not a string)");
			return -1;
		}
	} else if (json_is_string(v)) {
		enum op o2;
		char n2[32];
		if (parse_op(json_string_value(v), &o2, n2, sizeof(n2)) == 0 && (o2 == OP_NULL || o2 == OP_NNULL))
			op = o2, snprintf(norm, sizeof(norm), "%s", n2);
	}
	if (json_is_null(v) && (op == OP_EQ || op == OP_NE))
		op = op == OP_EQ ? OP_NULL : OP_NNULL;
	if (!op_applies(r.type, op)) {
		snprintf(errstr, errstr_size, "where: operator '%s' does not apply to '%s'", norm, r.label);
		return -1;
	}
	if ((op == OP_IN || op == OP_NIN) && (!json_is_array(v) || json_array_size(v) > MAX_IN_VALUES)) {
		snprintf(errstr, errstr_size, "where: '%s' needs a list of at most %d values", norm, MAX_IN_VALUES);
		return -1;
	}

	sb_addf(w, " AND (");
	switch (op) {
	case OP_NULL:
	case OP_NNULL:
		expr(w, &r, 0);
		sb_addf(w, op == OP_NULL ? " IS NULL" : " IS NOT NULL");
		break;
	case OP_IN:
		if (json_array_size(v) == 0) {
			sb_addf(w, "FALSE");
			break;
		}
		expr(w, &r, 0);
		if (put_in_list(q, w, v, &r, errstr, errstr_size) == -1)
			return -1;
		break;
	case OP_NIN:
		if (json_array_size(v) == 0) {
			sb_addf(w, "TRUE");
			break;
		}
		expr(w, &r, 0);
		sb_addf(w, " IS NULL OR NOT ");
		expr(w, &r, 0);
		if (put_in_list(q, w, v, &r, errstr, errstr_size) == -1)
			return -1;
		break;
	case OP_HAS:
	case OP_NHAS: {
		/* a tag, or a list of tags: contains all of them / none of them */
		if (!json_is_array(v) && !json_is_string(v)) {
			snprintf(errstr, errstr_size, "where: '%s' needs a tag or a list of tags", norm);
			return -1;
		}
		json_t *list = json_is_array(v) ? json_incref((json_t *)v) : json_pack("[O]", (json_t *)v);
		size_t i;
		json_t *x;
		sb_addf(w, "TRUE");
		json_array_foreach(list, i, x)
		{
			sb_addf(w, op == OP_HAS ? " AND " : " AND NOT ");
			if (put_value(q, w, x, &r, F_TAGS, errstr, errstr_size) == -1) {
				json_decref(list);
				return -1;
			}
			sb_addf(w, " = ANY(tags)");
		}
		json_decref(list);
		break;
	}
	default: {
		static const char *sql_op[] = {[OP_EQ] = " = ",	     [OP_NE] = " IS DISTINCT FROM ",
					       [OP_LT] = " < ",	     [OP_LE] = " <= ",
					       [OP_GT] = " > ",	     [OP_GE] = " >= ",
					       [OP_LIKE] = " LIKE ", [OP_NLIKE] = " NOT LIKE "};
		int numeric = r.type == F_ATTR && op >= OP_LT && op <= OP_GE && numeric_value(v);
		if (op == OP_NLIKE) {
			expr(w, &r, 0);
			sb_addf(w, " IS NULL OR ");
		}
		expr(w, &r, numeric);
		sb_addf(w, "%s", sql_op[op]);
		if (numeric) {
			char num[64];
			if (json_is_integer(v))
				snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			else if (json_is_real(v))
				real_text(json_real_value(v), num, sizeof(num));
			int p = add_param(q, json_is_string(v) ? json_string_value(v) : num);
			if (p < 0)
				return oom(errstr, errstr_size);
			sb_addf(w, "$%d::numeric", p);
		} else if (put_value(q, w, v, &r, r.type, errstr, errstr_size) == -1) {
			return -1;
		}
	}
	}
	sb_addf(w, ")");
	return 0;
}

static int where_sql(struct wk_host_query *q, struct sb *w, const json_t *where, char *errstr, size_t errstr_size)
{
	if (!where || json_is_null(where))
		return 0;
	if (!json_is_array(where)) {
		snprintf(errstr, errstr_size,
			 "where must be [field, value], [field, operator, value] or a list of them");
		return -1;
	}
	if (json_array_size(where) == 0)
		return 0;
	if (!json_is_array(json_array_get(where, 0)))
		return condition(q, w, where, errstr, errstr_size);
	if (json_array_size(where) > MAX_CONDITIONS) {
		snprintf(errstr, errstr_size, "where: at most %d conditions", MAX_CONDITIONS);
		return -1;
	}
	size_t i;
	json_t *c;
	json_array_foreach(where, i, c) if (condition(q, w, c, errstr, errstr_size) == -1) return -1;
	return 0;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* "field [asc|desc], …" -> ORDER BY; ties broken by id. */
static int order_sql(struct wk_host_query *q, struct sb *o, const json_t *order_by, char *errstr, size_t errstr_size)
{
	int has_id = 0, terms = 0;
	sb_addf(o, " ORDER BY ");
	if (order_by && !json_is_null(order_by)) {
		if (!json_is_string(order_by) || json_string_length(order_by) > 1000) {
			snprintf(errstr, errstr_size, "orderBy must be a string like \"id desc\"");
			return -1;
		}
		char buf[1001], *save = NULL;
		snprintf(buf, sizeof(buf), "%s", json_string_value(order_by));
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			t = trim(t);
			if (!*t)
				continue;
			if (++terms > MAX_ORDER_TERMS) {
				snprintf(errstr, errstr_size, "orderBy: at most %d fields", MAX_ORDER_TERMS);
				return -1;
			}
			const char *dir = "ASC";
			char *sp = t + strlen(t);
			while (sp > t && !isspace((unsigned char)sp[-1]))
				sp--;
			if (sp > t && (strcasecmp(sp, "asc") == 0 || strcasecmp(sp, "desc") == 0)) {
				dir = strcasecmp(sp, "desc") == 0 ? "DESC" : "ASC";
				sp[-1] = '\0';
				t = trim(t);
			}
			struct fref r;
			if (resolve(q, t, &r, errstr, errstr_size) == -1)
				return -1;
			if (r.type == F_TAGS || r.type == F_ATTRS) {
				snprintf(errstr, errstr_size, "orderBy: cannot order by '%s'", r.label);
				return -1;
			}
			if (terms > 1)
				sb_addf(o, ", ");
			if (r.type == F_ATTR) {
				expr(o, &r, 1);
				sb_addf(o, " %s NULLS LAST, ", dir);
			}
			expr(o, &r, 0);
			sb_addf(o, " %s NULLS LAST", dir);
			if (r.f && strcmp(r.f->name, "id") == 0)
				has_id = 1;
		}
	}
	if (!has_id)
		sb_addf(o, "%sid ASC", terms ? ", " : "");
	return 0;
}

static int columns_sql(struct sb *s, const json_t *columns, char *errstr, size_t errstr_size)
{
	int want[CM_ARRAY_LEN(fields)] = {0}, order[CM_ARRAY_LEN(fields)], n = 0;
	json_t *list = NULL;
	if (json_is_string(columns)) {
		list = json_array();
		char buf[1001], *save = NULL;
		if (json_string_length(columns) >= sizeof(buf)) {
			json_decref(list);
			snprintf(errstr, errstr_size, "columns: too long");
			return -1;
		}
		snprintf(buf, sizeof(buf), "%s", json_string_value(columns));
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (*trim(t))
				json_array_append_new(list, json_string(trim(t)));
	} else if (json_is_array(columns)) {
		list = json_incref((json_t *)columns);
	} else if (columns && !json_is_null(columns)) {
		snprintf(errstr, errstr_size, "columns must be a list of column names or null");
		return -1;
	}
	size_t i;
	json_t *c;
	json_array_foreach(list, i, c)
	{
		const char *name = json_string_value(c);
		size_t k = 0;
		while (name && k < CM_ARRAY_LEN(fields) && strcmp(fields[k].name, name) != 0)
			k++;
		if (!name || k == CM_ARRAY_LEN(fields)) {
			snprintf(errstr, errstr_size, "unknown column '%.64s'", name ? name : "(not a string)");
			json_decref(list);
			return -1;
		}
		if (!want[k]++)
			order[n++] = (int)k;
	}
	json_decref(list);
	if (n == 0)
		for (size_t k = 0; k < CM_ARRAY_LEN(fields); k++)
			if (fields[k].def)
				order[n++] = (int)k;
	sb_addf(s, "SELECT json_build_object(");
	for (int k = 0; k < n; k++)
		sb_addf(s, "%s'%s', %s", k ? ", " : "", fields[order[k]].name, fields[order[k]].name);
	sb_addf(s, ")::text FROM leads WHERE bot_id = $1::bigint");
	return 0;
}

static int count_arg(const json_t *v, const char *what, json_int_t *out, char *errstr, size_t errstr_size)
{
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(errstr, errstr_size, "%s must be a whole number, 0 or more", what);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

int wk_host_find_build(const json_t *args, int64_t bot_id, long find_limit, struct wk_host_query *q, char *errstr,
		       size_t errstr_size)
{
	struct sb s = {0}, w = {0}, o = {0};
	char num[32];
	json_int_t limit, offset;
	memset(q, 0, sizeof(*q));
	if (!json_is_object(args)) {
		snprintf(errstr, errstr_size, "bad arguments");
		return -1;
	}
	snprintf(num, sizeof(num), "%" PRId64, bot_id);
	if (add_param(q, num) != 1) {
		oom(errstr, errstr_size);
		goto err;
	}
	if (count_arg(json_object_get(args, "limit"), "limit", &limit, errstr, errstr_size) == -1 ||
	    count_arg(json_object_get(args, "offset"), "offset", &offset, errstr, errstr_size) == -1 ||
	    columns_sql(&s, json_object_get(args, "columns"), errstr, errstr_size) == -1 ||
	    where_sql(q, &w, json_object_get(args, "where"), errstr, errstr_size) == -1 ||
	    order_sql(q, &o, json_object_get(args, "order_by"), errstr, errstr_size) == -1)
		goto err;
	if (limit == 0 || limit > find_limit)
		limit = find_limit;
	snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, limit);
	int pl = add_param(q, num);
	snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, offset);
	int po = add_param(q, num);
	if (pl < 0 || po < 0) {
		oom(errstr, errstr_size);
		goto err;
	}
	sb_addf(&s, "%s%s LIMIT $%d::bigint OFFSET $%d::bigint", w.p ? w.p : "", o.p ? o.p : "", pl, po);
	if (s.oom || w.oom || o.oom) {
		oom(errstr, errstr_size);
		goto err;
	}
	q->sql = s.p;
	free(w.p);
	free(o.p);
	return 0;
err:
	free(s.p);
	free(w.p);
	free(o.p);
	wk_host_query_clear(q);
	return -1;
}

void wk_host_query_clear(struct wk_host_query *q)
{
	if (!q)
		return;
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	memset(q, 0, sizeof(*q));
}
