/*
 * cm_id.h - identifiers and secrets: job UUIDs, API tokens, hex, constant-time comparison.
 */
#ifndef CM_ID_H
#define CM_ID_H

#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"

#define CM_UUID_STRLEN 36 /* without the NUL */
#define CM_TOKEN_PREFIX "bj_"

/* Fills buf with n bytes from getrandom(2). Returns -1 only if the kernel refuses. */
int cm_random(void *buf, size_t n) CM_MUSTCHECK;

/* A UUIDv7 (time-ordered, so job ids insert at the right of the index). out: 37 bytes. */
int cm_uuid_v7(char out[CM_UUID_STRLEN + 1]) CM_MUSTCHECK;
/* A name-based UUID (version 8, SHA-256 of ns || 0 || name): the same inputs give the same id. */
void cm_uuid_from_name(const char *ns, const char *name, size_t name_len, char out[CM_UUID_STRLEN + 1]);
/* 1 if s is a canonical 8-4-4-4-12 hex UUID (either case). */
int cm_uuid_valid(const char *s);

/* A new API token "bj_<43 chars base64url>" (256 random bits). out: at least 48 bytes. */
int cm_token_new(char *out, size_t out_size) CM_MUSTCHECK;
/* The stored form of a token: lowercase hex SHA-256. out: 65 bytes. */
void cm_token_hash_hex(const char *token, char out[65]);

void cm_hex(const uint8_t *in, size_t n, char *out); /* out: 2n+1 bytes */
/* Compares two equal-length buffers without an early exit. Returns 1 when equal. */
int cm_ct_equal(const void *a, const void *b, size_t n);

#endif
