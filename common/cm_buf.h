/*
 * cm_buf.h - a growing byte buffer for text built piece by piece (a COPY row, a batch of events).
 *
 * Once anything was added, p is NUL-terminated (p[len] == '\0'), so it can be handed on as a C string.
 * A zeroed struct is an empty buffer; cm_buf_free makes it one again.
 */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>

#include "cm_compiler.h"

struct cm_buf {
	char *p;
	size_t len, cap;
};

/* Makes room for more bytes and the NUL after them. 0, or -1 when out of memory (b unchanged). */
int cm_buf_reserve(struct cm_buf *b, size_t more) CM_MUSTCHECK;

/* Appends n bytes of s. 0, or -1 when out of memory (b unchanged). */
int cm_buf_add(struct cm_buf *b, const char *s, size_t n) CM_MUSTCHECK;

/* Appends one byte (the per-character path of a reader: no call when there is room). */
static inline int cm_buf_addc(struct cm_buf *b, char c)
{
	if (b->len + 2 > b->cap && cm_buf_reserve(b, 1) == -1)
		return -1;
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
	return 0;
}

void cm_buf_free(struct cm_buf *b);

#endif
