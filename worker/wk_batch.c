/*
 * wk_batch.c - a batch row of the outbox, message by message. See wk_batch.h.
 *
 * A small validating scanner: the payload must be JSON (RFC 8259 grammar, nesting up to MAX_DEPTH, no
 * surrogate escapes; UTF-8 is PostgreSQL's to guarantee), the batch an array of objects with the members
 * "key" and "payload".
 */
#include "wk_batch.h"

#include <string.h>

#define MAX_DEPTH 64

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p at '"': the character after the closing quote, or NULL. *escaped tells whether it had a backslash. */
static const char *scan_string(const char *p, const char *end, int *escaped)
{
	*escaped = 0;
	for (p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		*escaped = 1;
		if (++p == end)
			return NULL;
		if (*p == 'u') {
			/* PostgreSQL prints no surrogate (\ud800-\udfff); jansson refuses one without its pair */
			if (end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) ||
			    ((p[1] == 'd' || p[1] == 'D') && strchr("89abcdefABCDEF", p[2])))
				return NULL;
			p += 4;
		} else if (!strchr("\"\\/bfnrt", *p) || *p == '\0') {
			return NULL;
		}
	}
	return NULL;
}

static const char *scan_digits(const char *p, const char *end)
{
	const char *s = p;
	while (p < end && is_digit(*p))
		p++;
	return p > s ? p : NULL;
}

static const char *scan_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (!(p = scan_digits(p, end)))
		return NULL;
	if (p < end && *p == '.' && !(p = scan_digits(p + 1, end)))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		p = scan_digits(p, end);
	}
	return p;
}

static const char *scan_word(const char *p, const char *end, const char *w)
{
	size_t n = strlen(w);
	return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

/* p at a value (no whitespace before it): the character after it, or NULL. */
static const char *scan_value(const char *p, const char *end, int depth)
{
	int escaped;
	if (p == end)
		return NULL;
	switch (*p) {
	case '"':
		return scan_string(p, end, &escaped);
	case 't':
		return scan_word(p, end, "true");
	case 'f':
		return scan_word(p, end, "false");
	case 'n':
		return scan_word(p, end, "null");
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		if (depth == MAX_DEPTH)
			return NULL;
		p = skip_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (p == end || *p != '"' || !(p = scan_string(p, end, &escaped)))
					return NULL;
				p = skip_ws(p, end);
				if (p == end || *p != ':')
					return NULL;
				p = skip_ws(p + 1, end);
			}
			if (!(p = scan_value(p, end, depth + 1)))
				return NULL;
			p = skip_ws(p, end);
			if (p == end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p = skip_ws(p + 1, end);
		}
	}
	default:
		return scan_number(p, end);
	}
}

void wk_batch_init(struct wk_batch *b, const char *text, size_t len)
{
	b->p = text;
	b->end = text + len;
	b->state = 0;
}

/* One {"key": …, "payload": …} at p; the character after it, or NULL. */
static const char *scan_message(const char *p, const char *end, struct wk_batch_msg *m)
{
	int have_key = 0, have_payload = 0, escaped;
	memset(m, 0, sizeof(*m));
	if (p == end || *p != '{')
		return NULL;
	p = skip_ws(p + 1, end);
	for (;;) {
		const char *name = p;
		if (p == end || *p != '"' || !(p = scan_string(p, end, &escaped)))
			return NULL;
		size_t name_len = (size_t)(p - name);
		p = skip_ws(p, end);
		if (p == end || *p != ':')
			return NULL;
		p = skip_ws(p + 1, end);
		const char *v = p;
		if (!(p = scan_value(p, end, 1)))
			return NULL;
		if (name_len == 5 && memcmp(name, "\"key\"", 5) == 0 && !have_key) {
			have_key = 1;
			if (*v == '"') {
				scan_string(v, end, &escaped);
				if (escaped)
					return NULL; /* the slow way unescapes it */
				m->key = v + 1;
				m->key_len = (size_t)(p - v) - 2;
			} else if (p - v != 4 || memcmp(v, "null", 4) != 0) {
				return NULL;
			}
		} else if (name_len == 9 && memcmp(name, "\"payload\"", 9) == 0 && !have_payload) {
			have_payload = 1;
			m->payload = v;
			m->payload_len = (size_t)(p - v);
		} else {
			return NULL;
		}
		p = skip_ws(p, end);
		if (p < end && *p == '}')
			return have_payload ? p + 1 : NULL;
		if (p == end || *p != ',')
			return NULL;
		p = skip_ws(p + 1, end);
	}
}

int wk_batch_next(struct wk_batch *b, struct wk_batch_msg *m)
{
	const char *p = skip_ws(b->p, b->end);
	if (b->state == 2)
		return 0;
	if (b->state == 0) {
		if (p == b->end || *p != '[')
			return -1;
		p = skip_ws(p + 1, b->end);
		b->state = 1;
		if (p < b->end && *p == ']') {
			b->p = p + 1;
			b->state = 2;
			return skip_ws(b->p, b->end) == b->end ? 0 : -1;
		}
	}
	if (!(p = scan_message(p, b->end, m)))
		return -1;
	p = skip_ws(p, b->end);
	if (p < b->end && *p == ',') {
		b->p = skip_ws(p + 1, b->end);
		return 1;
	}
	if (p < b->end && *p == ']' && skip_ws(p + 1, b->end) == b->end) {
		b->p = b->end;
		b->state = 2;
		return 1;
	}
	return -1;
}

size_t wk_batch_compact(const char *json, size_t len, char *out)
{
	size_t n = 0;
	int in_string = 0;
	for (size_t i = 0; i < len; i++) {
		char c = json[i];
		if (in_string) {
			out[n++] = c;
			if (c == '\\' && i + 1 < len)
				out[n++] = json[++i];
			else if (c == '"')
				in_string = 0;
		} else if (!is_ws(c)) {
			out[n++] = c;
			in_string = c == '"';
		}
	}
	return n;
}

int wk_batch_count(const char *text, size_t len)
{
	struct wk_batch b;
	struct wk_batch_msg m;
	int n = 0, rc;
	wk_batch_init(&b, text, len);
	while ((rc = wk_batch_next(&b, &m)) == 1)
		n++;
	return rc == 0 ? n : -1;
}
