/*
 * cm_utf8.c - UTF-8 validity. See cm_utf8.h.
 */
#include <stdlib.h>
#include <string.h>

#include "cm_utf8.h"

size_t cm_utf8_seq(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	size_t len;
	unsigned cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07u;
	else
		return 0; /* a continuation byte, an overlong lead (c0, c1) or past U+10FFFF (f5-ff) */
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *cm_json_text(const char *s)
{
	if (!s)
		s = "";
	size_t n = strlen(s), bad = 0;
	for (size_t i = 0; i < n;) {
		size_t k = cm_utf8_seq(s + i, n - i);
		bad += k == 0;
		i += k ? k : 1;
	}
	if (!bad)
		return json_stringn(s, n);
	char *out = malloc(n + 2 * bad + 1), *w = out; /* U+FFFD is 3 bytes for 1 */
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = cm_utf8_seq(s + i, n - i);
		if (k) {
			memcpy(w, s + i, k);
			w += k;
			i += k;
		} else {
			memcpy(w, "\xef\xbf\xbd", 3);
			w += 3;
			i++;
		}
	}
	json_t *j = json_stringn(out, (size_t)(w - out));
	free(out);
	return j;
}
