/*
 * ctl_leadfile.c - JSON lines and CSV leads, record by record. See ctl_leadfile.h.
 *
 * The file is read byte by byte through one function (getb) that also counts lines, so both formats
 * know where each record starts; the bytes looked at to guess the format are replayed first.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl_leadfile.h"

#define TAG_MAX 100

enum { COL_ATTR = 0, COL_ID, COL_NAME, COL_CHANNEL, COL_TAGS, COL_MUTED };

struct span {
	size_t off, len;
};

struct ctl_leadfile {
	FILE *f;
	enum ctl_leadfile_format format;
	char pend[64]; /* bytes read ahead to guess the format, replayed first */
	size_t npend, ipend;
	long long off;
	long line; /* the line of the next byte */
	int read_error;
	/* CSV */
	size_t ncols;
	int *coltype;
	char **colname;
	struct cm_buf rec; /* the fields of the current record, each NUL-terminated */
	struct span *fields;
	size_t nfields, capfields;
	int rec_has_nul;
	/* JSON lines */
	struct cm_buf text;
};

void ctl_lead_clear(struct ctl_lead *l)
{
	if (!l)
		return;
	free(l->name);
	free(l->channel);
	json_decref(l->attributes);
	json_decref(l->tags);
	memset(l, 0, sizeof(*l));
	l->muted = -1;
}

static int getb(struct ctl_leadfile *lf)
{
	int c;
	if (lf->ipend < lf->npend) {
		c = (unsigned char)lf->pend[lf->ipend++];
	} else {
		c = getc_unlocked(lf->f);
		if (c == EOF) {
			if (ferror(lf->f))
				lf->read_error = errno ? errno : EIO;
			return EOF;
		}
		lf->off++;
	}
	if (c == '\n')
		lf->line++;
	return c;
}

static void skip_line(struct ctl_leadfile *lf)
{
	int c;
	while ((c = getb(lf)) != EOF && c != '\n')
		;
}

static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p;
		size_t k;
		unsigned min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1, min = 0x80, c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2, min = 0x800, c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3, min = 0x10000, c &= 0x07;
		} else {
			return 0;
		}
		if ((size_t)(end - p) <= k)
			return 0;
		for (size_t i = 1; i <= k; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return 0;
			c = (c << 6) | (p[i] & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return 0;
		p += k + 1;
	}
	return 1;
}

/* Adds one tag (trimmed; empty ones are skipped) to the array, once. Returns 0, or -1 with errstr. */
static int add_tag(json_t *tags, const char *t, size_t n, char *errstr, size_t errstr_size)
{
	while (n && (*t == ' ' || *t == '\t'))
		t++, n--;
	while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	if (n == 0)
		return 0;
	if (n > TAG_MAX) {
		snprintf(errstr, errstr_size, "tags: '%.20s…' is longer than %d bytes", t, TAG_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f || t[i] == ',') {
			snprintf(errstr, errstr_size, "tags: '%.*s' has a comma or a control character", (int)n, t);
			return -1;
		}
	}
	if (!utf8_valid(t, n)) {
		snprintf(errstr, errstr_size, "tags: not valid UTF-8");
		return -1;
	}
	size_t i;
	json_t *x;
	json_array_foreach(tags, i, x)
	{
		if (json_string_length(x) == n && memcmp(json_string_value(x), t, n) == 0)
			return 0;
	}
	json_array_append_new(tags, json_stringn(t, n));
	return 0;
}

/* Tags from "a<sep>b". */
static int split_tags(json_t *tags, const char *s, char sep, char *errstr, size_t errstr_size)
{
	for (const char *p = s;;) {
		const char *e = strchr(p, sep);
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (add_tag(tags, p, n, errstr, errstr_size) == -1)
			return -1;
		if (!e)
			return 0;
		p = e + 1;
	}
}

static int parse_id_text(const char *s, int64_t *out)
{
	while (*s == ' ')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	while (*end == ' ')
		end++;
	if (errno || *end || v < 1)
		return -1;
	*out = v;
	return 0;
}

static int parse_bool_text(const char *s, int *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
	static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* ---- JSON lines ---- */

static int jsonl_lead(const char *text, size_t n, struct ctl_lead *out, char *errstr, size_t errstr_size)
{
	static const char *const known[] = {"id", "name", "channel", "attributes", "tags", "muted"};
	json_error_t je;
	json_t *o = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	int rc = -1;
	if (!o) {
		snprintf(errstr, errstr_size, "not JSON (column %d: %s)", je.column, je.text);
		return -1;
	}
	if (!json_is_object(o)) {
		snprintf(errstr, errstr_size, "a line must be a JSON object");
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		size_t i = 0;
		while (i < sizeof(known) / sizeof(known[0]) && strcmp(k, known[i]) != 0)
			i++;
		if (i == sizeof(known) / sizeof(known[0])) {
			snprintf(errstr, errstr_size,
				 "unknown field \"%.40s\" (known: id, name, channel, attributes, tags, muted)", k);
			goto out;
		}
	}
	v = json_object_get(o, "id");
	if (json_is_integer(v) && json_integer_value(v) >= 1)
		out->id = json_integer_value(v);
	else if (!json_is_string(v) || parse_id_text(json_string_value(v), &out->id) == -1) {
		snprintf(errstr, errstr_size, "id: %s", v ? "must be a positive integer" : "is required");
		goto out;
	}
	static const char *const texts[] = {"name", "channel"};
	for (size_t i = 0; i < 2; i++) {
		v = json_object_get(o, texts[i]);
		if (v && !json_is_null(v) && !json_is_string(v)) {
			snprintf(errstr, errstr_size, "%s: must be a string", texts[i]);
			goto out;
		}
		if (json_is_string(v) && json_string_length(v) > 0) {
			char *s = strdup(json_string_value(v));
			*(i ? &out->channel : &out->name) = s;
		}
	}
	v = json_object_get(o, "attributes");
	if (v && !json_is_null(v) && !json_is_object(v)) {
		snprintf(errstr, errstr_size, "attributes: must be an object");
		goto out;
	}
	out->attributes = json_is_object(v) ? json_incref(v) : json_object();
	out->tags = json_array();
	v = json_object_get(o, "tags");
	if (json_is_string(v)) {
		if (split_tags(out->tags, json_string_value(v), ',', errstr, errstr_size) == -1)
			goto out;
	} else if (json_is_array(v)) {
		size_t i;
		json_t *t;
		json_array_foreach(v, i, t)
		{
			if (!json_is_string(t)) {
				snprintf(errstr, errstr_size, "tags: must be strings");
				goto out;
			}
			if (add_tag(out->tags, json_string_value(t), json_string_length(t), errstr, errstr_size) == -1)
				goto out;
		}
	} else if (v && !json_is_null(v)) {
		snprintf(errstr, errstr_size, "tags: must be a list of strings");
		goto out;
	}
	v = json_object_get(o, "muted");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		snprintf(errstr, errstr_size, "muted: must be true or false");
		goto out;
	}
	out->muted = json_is_boolean(v) ? json_is_true(v) : -1;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static int jsonl_next(struct ctl_leadfile *lf, struct ctl_lead *out, long *line, char *errstr, size_t errstr_size)
{
	for (;;) {
		lf->text.len = 0;
		*line = lf->line;
		int c, nul = 0;
		while ((c = getb(lf)) != EOF && c != '\n') {
			nul |= c == 0;
			if (cm_buf_addc(&lf->text, (char)c) == -1) {
				snprintf(errstr, errstr_size, "out of memory");
				return -2;
			}
		}
		if (lf->read_error) {
			snprintf(errstr, errstr_size, "reading: %s", strerror(lf->read_error));
			return -2;
		}
		if (c == EOF && lf->text.len == 0)
			return 0;
		size_t n = lf->text.len;
		while (n && isspace((unsigned char)lf->text.p[n - 1]))
			n--;
		size_t b = 0;
		while (b < n && isspace((unsigned char)lf->text.p[b]))
			b++;
		if (b == n)
			continue; /* a blank line */
		if (nul) {
			snprintf(errstr, errstr_size, "contains a NUL byte");
			return -1;
		}
		return jsonl_lead(lf->text.p + b, n - b, out, errstr, errstr_size) == 0 ? 1 : -1;
	}
}

/* ---- CSV ---- */

static int end_field(struct ctl_leadfile *lf, size_t start)
{
	if (lf->nfields == lf->capfields) {
		size_t cap = lf->capfields ? lf->capfields * 2 : 16;
		struct span *f = realloc(lf->fields, cap * sizeof(*f));
		if (!f)
			return -1;
		lf->fields = f;
		lf->capfields = cap;
	}
	lf->fields[lf->nfields].off = start;
	lf->fields[lf->nfields].len = lf->rec.len - start;
	lf->nfields++;
	return cm_buf_addc(&lf->rec, '\0');
}

static int add_byte(struct ctl_leadfile *lf, int c)
{
	lf->rec_has_nul |= c == 0;
	return cm_buf_addc(&lf->rec, (char)c);
}

/* One record into lf->fields. Returns 1, 0 at the end of the file, -1 for a malformed one (errstr),
 * -2 when out of memory or the file cannot be read. */
static int csv_record(struct ctl_leadfile *lf, char *errstr, size_t errstr_size)
{
	lf->rec.len = 0;
	lf->nfields = 0;
	lf->rec_has_nul = 0;
	long start_line = lf->line;
	int c = getb(lf);
	if (c == EOF)
		return lf->read_error ? -2 : 0;
	for (;;) {
		size_t start = lf->rec.len;
		if (c == '"') {
			for (;;) {
				c = getb(lf);
				if (c == EOF) {
					snprintf(errstr, errstr_size,
						 "a quoted field opened on line %ld is never closed", start_line);
					return lf->read_error ? -2 : -1;
				}
				if (c == '"') {
					c = getb(lf);
					if (c != '"')
						break;
				}
				if (add_byte(lf, c) == -1)
					return -2;
			}
			if (c == '\r') {
				c = getb(lf);
				if (c != '\n' && c != EOF) {
					snprintf(errstr, errstr_size, "a carriage return after a closing quote");
					skip_line(lf);
					return -1;
				}
			}
			if (c != ',' && c != '\n' && c != EOF) {
				snprintf(errstr, errstr_size,
					 "'%c' after a closing quote (a quote inside a quoted "
					 "field is written \"\")",
					 isprint(c) ? c : '?');
				skip_line(lf);
				return -1;
			}
		} else {
			while (c != ',' && c != '\n' && c != EOF) {
				if (c == '\r') {
					c = getb(lf);
					if (c == '\n' || c == EOF)
						break;
					if (add_byte(lf, '\r') == -1)
						return -2;
					continue;
				}
				if (add_byte(lf, c) == -1)
					return -2;
				c = getb(lf);
			}
		}
		if (end_field(lf, start) == -1)
			return -2;
		if (c != ',')
			return lf->read_error ? -2 : 1;
		c = getb(lf);
	}
}

static const char *field(const struct ctl_leadfile *lf, size_t i)
{
	return lf->rec.p + lf->fields[i].off;
}

static char *trimmed_dup(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int csv_header(struct ctl_leadfile *lf, char *errstr, size_t errstr_size)
{
	static const char *const names[] = {"", "id", "name", "channel", "tags", "muted"};
	int rc = csv_record(lf, errstr, errstr_size);
	if (rc == 0) {
		snprintf(errstr, errstr_size, "the CSV file has no header row");
		return -1;
	}
	if (rc < 0)
		return -1;
	lf->ncols = lf->nfields;
	lf->coltype = calloc(lf->ncols, sizeof(*lf->coltype));
	lf->colname = calloc(lf->ncols, sizeof(*lf->colname));
	if (!lf->coltype || !lf->colname) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	int have_id = 0;
	for (size_t i = 0; i < lf->ncols; i++) {
		lf->colname[i] = trimmed_dup(field(lf, i));
		if (!lf->colname[i]) {
			snprintf(errstr, errstr_size, "out of memory");
			return -1;
		}
		if (!*lf->colname[i] || !utf8_valid(lf->colname[i], strlen(lf->colname[i]))) {
			snprintf(errstr, errstr_size, "header: column %zu has no name (or not valid UTF-8)", i + 1);
			return -1;
		}
		for (int t = COL_ID; t <= COL_MUTED; t++)
			if (!strcasecmp(lf->colname[i], names[t]))
				lf->coltype[i] = t;
		have_id |= lf->coltype[i] == COL_ID;
		for (size_t j = 0; j < i; j++) {
			if (!strcasecmp(lf->colname[i], lf->colname[j]) &&
			    (lf->coltype[i] != COL_ATTR || !strcmp(lf->colname[i], lf->colname[j]))) {
				snprintf(errstr, errstr_size, "header: the column '%s' appears twice", lf->colname[i]);
				return -1;
			}
		}
	}
	if (!have_id) {
		snprintf(errstr, errstr_size,
			 "header: an 'id' column is required (the header is id,name,channel,tags,<attributes…>)");
		return -1;
	}
	return 0;
}

static int csv_lead(struct ctl_leadfile *lf, struct ctl_lead *out, char *errstr, size_t errstr_size)
{
	if (lf->rec_has_nul) {
		snprintf(errstr, errstr_size, "contains a NUL byte");
		return -1;
	}
	if (lf->nfields != lf->ncols) {
		snprintf(errstr, errstr_size, "%zu field(s), but the header has %zu column(s)", lf->nfields, lf->ncols);
		return -1;
	}
	out->attributes = json_object();
	out->tags = json_array();
	out->muted = -1;
	for (size_t i = 0; i < lf->ncols; i++) {
		const char *v = field(lf, i);
		if (!utf8_valid(v, lf->fields[i].len)) {
			snprintf(errstr, errstr_size, "%s: not valid UTF-8", lf->colname[i]);
			return -1;
		}
		switch (lf->coltype[i]) {
		case COL_ID:
			if (parse_id_text(v, &out->id) == -1) {
				snprintf(errstr, errstr_size, "id: '%.40s' is not a positive integer", v);
				return -1;
			}
			break;
		case COL_NAME:
		case COL_CHANNEL: {
			char *t = trimmed_dup(v);
			if (t && !*t) {
				free(t);
				t = NULL;
			}
			*(lf->coltype[i] == COL_NAME ? &out->name : &out->channel) = t;
			break;
		}
		case COL_TAGS:
			if (split_tags(out->tags, v, '|', errstr, errstr_size) == -1)
				return -1;
			break;
		case COL_MUTED: {
			char *t = trimmed_dup(v);
			int bad = t && *t && parse_bool_text(t, &out->muted) == -1;
			free(t);
			if (bad) {
				snprintf(errstr, errstr_size, "muted: '%.20s' is not true or false", v);
				return -1;
			}
			break;
		}
		default:
			if (*v)
				json_object_set_new(out->attributes, lf->colname[i],
						    json_stringn(v, lf->fields[i].len));
		}
	}
	return 0;
}

static int csv_next(struct ctl_leadfile *lf, struct ctl_lead *out, long *line, char *errstr, size_t errstr_size)
{
	for (;;) {
		*line = lf->line;
		int rc = csv_record(lf, errstr, errstr_size);
		if (rc == -2 && !lf->read_error)
			snprintf(errstr, errstr_size, "out of memory");
		else if (rc == -2)
			snprintf(errstr, errstr_size, "reading: %s", strerror(lf->read_error));
		if (rc <= 0)
			return rc;
		if (lf->nfields == 1 && lf->fields[0].len == 0)
			continue; /* a blank line */
		return csv_lead(lf, out, errstr, errstr_size) == 0 ? 1 : -1;
	}
}

/* ---- the reader ---- */

struct ctl_leadfile *ctl_leadfile_open(FILE *f, enum ctl_leadfile_format format, char *errstr, size_t errstr_size)
{
	struct ctl_leadfile *lf = calloc(1, sizeof(*lf));
	if (!lf) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	lf->f = f;
	lf->line = 1;
	/* A UTF-8 byte order mark (spreadsheets write one) is skipped; the first byte that is not white
	 * space tells the format. The bytes read for that are replayed by getb. */
	static const char bom[] = "\xEF\xBB\xBF";
	int c;
	while (lf->npend < 3 && (c = getc_unlocked(f)) != EOF) {
		lf->off++;
		lf->pend[lf->npend++] = (char)c;
		if (c != (unsigned char)bom[lf->npend - 1])
			break;
	}
	if (lf->npend == 3 && !memcmp(lf->pend, bom, 3))
		lf->npend = 0;
	if (lf->npend == 0 || isspace((unsigned char)lf->pend[lf->npend - 1])) {
		while (lf->npend < sizeof(lf->pend) && (c = getc_unlocked(f)) != EOF) {
			lf->off++;
			lf->pend[lf->npend++] = (char)c;
			if (!isspace(c))
				break;
		}
	}
	size_t first = 0;
	while (first < lf->npend && isspace((unsigned char)lf->pend[first]))
		first++;
	if (format == CTL_LEADS_AUTO)
		format = first == lf->npend || lf->pend[first] == '{' || lf->pend[first] == '[' ? CTL_LEADS_JSONL
												: CTL_LEADS_CSV;
	lf->format = format;
	if (format == CTL_LEADS_CSV && csv_header(lf, errstr, errstr_size) == -1) {
		ctl_leadfile_close(lf);
		return NULL;
	}
	return lf;
}

void ctl_leadfile_close(struct ctl_leadfile *lf)
{
	if (!lf)
		return;
	for (size_t i = 0; lf->colname && i < lf->ncols; i++)
		free(lf->colname[i]);
	free(lf->colname);
	free(lf->coltype);
	free(lf->fields);
	cm_buf_free(&lf->rec);
	cm_buf_free(&lf->text);
	free(lf);
}

enum ctl_leadfile_format ctl_leadfile_format(const struct ctl_leadfile *lf)
{
	return lf->format;
}

long long ctl_leadfile_offset(const struct ctl_leadfile *lf)
{
	return lf->off;
}

int ctl_leadfile_next(struct ctl_leadfile *lf, struct ctl_lead *out, long *line, char *errstr, size_t errstr_size)
{
	memset(out, 0, sizeof(*out));
	out->muted = -1;
	int rc = lf->format == CTL_LEADS_CSV ? csv_next(lf, out, line, errstr, errstr_size)
					     : jsonl_next(lf, out, line, errstr, errstr_size);
	if (rc != 1)
		ctl_lead_clear(out);
	return rc;
}

/* ---- COPY ---- */

/* Text for COPY's text format: backslash, tab, newline and carriage return escaped. */
static int copy_text(struct cm_buf *b, const char *s)
{
	if (!s)
		return cm_buf_add(b, "\\N", 2);
	for (; *s; s++) {
		const char *esc = *s == '\\'   ? "\\\\"
				  : *s == '\t' ? "\\t"
				  : *s == '\n' ? "\\n"
				  : *s == '\r' ? "\\r"
					       : NULL;
		if (esc ? cm_buf_add(b, esc, 2) : cm_buf_addc(b, *s))
			return -1;
	}
	return 0;
}

int ctl_lead_copy_row(const struct ctl_lead *l, long line, struct cm_buf *out)
{
	char num[64];
	int n = snprintf(num, sizeof(num), "%ld\t%" PRId64 "\t", line, l->id);
	char *attrs = l->attributes ? json_dumps(l->attributes, JSON_COMPACT) : strdup("{}");
	char *tags = l->tags ? json_dumps(l->tags, JSON_COMPACT) : strdup("[]");
	int rc = -1;
	if (!attrs || !tags || cm_buf_add(out, num, (size_t)n) || copy_text(out, l->name) || cm_buf_addc(out, '\t') ||
	    copy_text(out, l->channel) || cm_buf_addc(out, '\t') || copy_text(out, attrs) || cm_buf_addc(out, '\t') ||
	    copy_text(out, tags) || cm_buf_addc(out, '\t') ||
	    copy_text(out, l->muted < 0 ? NULL
			   : l->muted	? "t"
					: "f") ||
	    cm_buf_addc(out, '\n'))
		goto out;
	rc = 0;
out:
	free(attrs);
	free(tags);
	return rc;
}
