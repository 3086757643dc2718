/*
 * cm_buf.c - a growing byte buffer. See cm_buf.h.
 */
#include "cm_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cm_buf_reserve(struct cm_buf *b, size_t more)
{
	if (more > SIZE_MAX / 2 - b->len)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int cm_buf_add(struct cm_buf *b, const char *s, size_t n)
{
	if (cm_buf_reserve(b, n) == -1)
		return -1;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

void cm_buf_free(struct cm_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
