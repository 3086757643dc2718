/*
 * pr_catalog.h - the producer's in-memory view of who may schedule what: API tokens (by hash),
 * bots and their business, and each bot's scripts, triggers and broadcasts (by id and by code).
 *
 * Loaded from PostgreSQL at start-up, reloaded on NOTIFY botjobs_catalog (sent by triggers on those
 * tables) and every refresh_sec. While PostgreSQL is down the producer keeps serving from the last
 * copy. Lookups are thread-safe and never touch the database.
 */
#ifndef PR_CATALOG_H
#define PR_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"
#include "cm_job.h"

struct pr_catalog;

/* Starts the refresh thread. A database that is down at start-up is not an error: the catalog is
 * simply not ready until the first load succeeds. */
struct pr_catalog *pr_catalog_start(const char *pg_uri, int refresh_sec, char *errstr, size_t errstr_size) CM_MUSTCHECK;
void pr_catalog_stop(struct pr_catalog *c); /* NULL-safe */

/* 1 once a load has succeeded. */
int pr_catalog_ready(struct pr_catalog *c);
/* Asks for a reload now and waits up to timeout_ms for it. Returns 0 when it happened. */
int pr_catalog_reload(struct pr_catalog *c, int timeout_ms);

/* The business of a valid (known, not revoked, not expired) token, compared by SHA-256 in constant time. */
int pr_catalog_auth(struct pr_catalog *c, const char *token, int64_t *business_id) CM_MUSTCHECK;
/* 1 and the bot's business when the bot exists. */
int pr_catalog_bot(struct pr_catalog *c, int64_t bot_id, int64_t *business_id) CM_MUSTCHECK;
/* 1 when the bot has that target (by id when code is NULL). */
int pr_catalog_target(struct pr_catalog *c, int64_t bot_id, enum cm_target_kind kind, int64_t id,
		      const char *code) CM_MUSTCHECK;

#endif
