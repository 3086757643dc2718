/*
 * ctl_out.c - what every botjobsctl command shares: the PostgreSQL connection, queries that answer
 * with one JSON document, and printing it as a table, as "key: value" lines or as JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_pg.h"
#include "ctl.h"

PGconn *ctl_connect(const struct ctl_cfg *cfg)
{
	char err[512];
	PGconn *c = cm_pg_connect(cfg->pg_uri, "botjobsctl", err, sizeof(err));
	if (!c)
		fprintf(stderr, "botjobsctl: %s\n", err);
	return c;
}

json_t *ctl_query_json(PGconn *c, const char *sql, int nparams, const char *const *params, const char *what)
{
	char err[800];
	PGresult *r = cm_pg_query(c, sql, nparams, params, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: %s: %s\n", what, err);
		return NULL;
	}
	json_t *v = NULL;
	if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
		v = json_null();
	} else {
		json_error_t je;
		v = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je);
		if (!v)
			fprintf(stderr, "botjobsctl: %s: the database answered JSON jansson cannot read: %s\n", what,
				je.text);
	}
	PQclear(r);
	return v;
}

void ctl_json_print(const json_t *v)
{
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	printf("%s\n", text ? text : "null");
	free(text);
}

/* Control characters (a line break in an attribute) would break the layout: they become spaces. */
static char *one_line(char *s)
{
	for (char *p = s; p && *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return s;
}

char *ctl_value_text(const json_t *v)
{
	if (!v || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return one_line(strdup(json_string_value(v)));
	if (json_is_array(v)) {
		/* a list of strings (tags) reads best as a,b */
		size_t i, len = 0;
		json_t *x;
		int all_strings = 1;
		json_array_foreach(v, i, x)
		{
			if (!json_is_string(x))
				all_strings = 0;
			else
				len += json_string_length(x) + 1;
		}
		if (all_strings) {
			char *out = malloc(len + 1);
			if (!out)
				return NULL;
			out[0] = '\0';
			size_t off = 0;
			json_array_foreach(v, i, x)
			{
				off += (size_t)sprintf(out + off, "%s%s", i ? "," : "", json_string_value(x));
			}
			return one_line(out);
		}
	}
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

/* Display width: UTF-8 code points (continuation bytes do not count). */
static int text_width(const char *s)
{
	int w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/* Cuts s (in place) to at most max code points (0 = no cut), the last one "…"; control characters
 * become spaces. s must have 3 bytes of room past its end. */
static void fit(char *s, int max)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (max <= 0 || text_width(s) <= max)
		return;
	int w = 0;
	char *p = s;
	for (; *p; p++) {
		if (((unsigned char)*p & 0xC0) != 0x80) {
			if (w == max - 1)
				break;
			w++;
		}
	}
	memcpy(p, "\xe2\x80\xa6", 4); /* "…" and the NUL: the caller left 3 bytes of room */
}

void ctl_table_print(const json_t *rows, const struct ctl_col *cols, size_t ncols)
{
	size_t n = json_array_size(rows);
	if (n == 0) {
		printf("(none)\n");
		return;
	}
	char **cell = calloc(n * ncols, sizeof(*cell));
	int *width = calloc(ncols, sizeof(*width));
	if (!cell || !width)
		goto out;
	for (size_t c = 0; c < ncols; c++)
		width[c] = text_width(cols[c].title);
	for (size_t r = 0; r < n; r++) {
		const json_t *row = json_array_get(rows, r);
		for (size_t c = 0; c < ncols; c++) {
			char *t = ctl_value_text(json_object_get(row, cols[c].key));
			char *room = t ? realloc(t, strlen(t) + 4) : NULL; /* "…" may take more bytes */
			if (room) {
				t = room;
				fit(t, cols[c].max_width);
			}
			cell[r * ncols + c] = t;
			int w = t ? text_width(t) : 0;
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t c = 0; c < ncols; c++)
		printf("%s%-*s", c ? "  " : "", c + 1 < ncols ? width[c] : 0, cols[c].title);
	putchar('\n');
	for (size_t r = 0; r < n; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *t = cell[r * ncols + c] ? cell[r * ncols + c] : "";
			/* %-*s pads by bytes: pad by code points instead */
			printf("%s%s", c ? "  " : "", t);
			if (c + 1 < ncols)
				printf("%*s", width[c] - text_width(t), "");
		}
		putchar('\n');
	}
out:
	for (size_t i = 0; cell && i < n * ncols; i++)
		free(cell[i]);
	free(cell);
	free(width);
}

static int skipped(const char *k, const char *const *skip)
{
	for (size_t i = 0; skip && skip[i]; i++)
		if (!strcmp(k, skip[i]))
			return 1;
	return 0;
}

void ctl_show_print(const json_t *obj, const char *const *skip)
{
	const char *k;
	json_t *v;
	int w = 0;
	json_object_foreach((json_t *)obj, k, v)
	{
		if (!skipped(k, skip) && (int)strlen(k) > w)
			w = (int)strlen(k);
	}
	json_object_foreach((json_t *)obj, k, v)
	{
		if (skipped(k, skip))
			continue;
		char *t = ctl_value_text(v);
		printf("%-*s  %s\n", w + 1, k, t ? t : "");
		free(t);
	}
}

int ctl_parse_id(const char *s, int64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 1)
		return -1;
	*out = v;
	return 0;
}

int ctl_business_find(PGconn *c, const char *name_or_id, char *id_out, size_t id_size, const char *what)
{
	char err[800];
	const char *p[] = {name_or_id};
	PGresult *r = cm_pg_query(c,
				  "SELECT id FROM businesses WHERE name = $1 OR id::text = $1"
				  " ORDER BY (name = $1) DESC LIMIT 1",
				  1, p, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "botjobsctl: %s: %s\n", what, err);
		return -1;
	}
	int found = PQntuples(r) == 1;
	if (found)
		snprintf(id_out, id_size, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return found;
}
