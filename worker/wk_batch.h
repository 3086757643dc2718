/*
 * wk_batch.h - reads a batch row of the outbox (wk_outbox.h), the text of a JSON array of
 * {"key": string or null, "payload": any JSON value} objects — as the worker wrote it (wk_events.h; the
 * payload column is json, stored as written) or as PostgreSQL prints a jsonb (the SQL-built batches) — one
 * message at a time and without building a tree: the relay's pass over a claim's or a completion's events parsed each
 * batch with jansson and printed each payload again, a quarter of a worker's CPU in W1 (bench/profile.py).
 *
 * The reader takes what the worker's own SQL writes (jsonb_build_object('key', …, 'payload', …)); any
 * other shape — another member, a key with an escape, text that is not JSON — makes it stop with -1, and
 * the caller reads the row the slow way (jansson), so a surprise costs time, never a message.
 */
#ifndef WK_BATCH_H
#define WK_BATCH_H

#include <stddef.h>

struct wk_batch {
	const char *p, *end;
	int state; /* 0: before '[', 1: inside, 2: after ']' */
};

struct wk_batch_msg {
	const char *key; /* the key's characters (not NUL-terminated), or NULL for a null or missing key */
	size_t key_len;
	const char *payload; /* the payload's JSON text as stored: spaces and all (wk_batch_compact) */
	size_t payload_len;
};

void wk_batch_init(struct wk_batch *b, const char *text, size_t len);
/* The next message: 1, 0 after the last one, -1 when the text is not a batch this reader reads. */
int wk_batch_next(struct wk_batch *b, struct wk_batch_msg *m);
/* How many messages the whole text holds (a first pass: a batch is produced only once all of it reads), or
 * -1 when the text is not a batch this reader reads. */
int wk_batch_count(const char *text, size_t len);
/* Copies JSON text without the whitespace between its tokens into out (room for len bytes); its length. */
size_t wk_batch_compact(const char *json, size_t len, char *out);

#endif
