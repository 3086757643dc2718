/*
 * pr_ratelimit.h - a token bucket per API token: `rate` requests per second on average, bursts up
 * to `burst`. Keys are the tokens' hashes (only authenticated callers get a bucket, so the table is
 * bounded by the number of tokens). Thread-safe.
 */
#ifndef PR_RATELIMIT_H
#define PR_RATELIMIT_H

#include <stdint.h>
#include "cm_compiler.h"

struct pr_ratelimit;

/* rate <= 0 turns limiting off. */
struct pr_ratelimit *pr_ratelimit_new(double rate, double burst);
void pr_ratelimit_free(struct pr_ratelimit *r); /* NULL-safe */
/* Takes a token for key at now_us. Returns 1 when allowed; 0 when not, with the whole seconds to wait. */
int pr_ratelimit_take(struct pr_ratelimit *r, const char *key, int64_t now_us, int *retry_after_sec) CM_MUSTCHECK;

#endif
