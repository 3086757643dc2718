/*
 * cm_utf8.h - UTF-8 validity for what botjobs writes out: JSON answers and log lines must be valid
 * UTF-8 even when a client's bytes are not (a path, a header, a truncated message).
 *
 * Valid means what jansson accepts: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
#ifndef CM_UTF8_H
#define CM_UTF8_H

#include <jansson.h>
#include <stddef.h>

/* The length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. n: bytes available. */
size_t cm_utf8_seq(const char *s, size_t n);

/* A JSON string of s with every invalid byte (a cut sequence too) replaced by U+FFFD. A new reference,
 * NULL only when out of memory. s may be NULL (an empty string). */
json_t *cm_json_text(const char *s);

#endif
