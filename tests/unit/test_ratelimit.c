/*
 * test_ratelimit.c - token buckets per key: bursts, refill, separate keys, Retry-After, off.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "pr_ratelimit.h"

#define SEC 1000000LL

Test(ratelimit, burst_then_refill)
{
	struct pr_ratelimit *r = pr_ratelimit_new(2, 5);
	int ra = 0;
	for (int i = 0; i < 5; i++)
		cr_assert(pr_ratelimit_take(r, "a", 0, &ra), "request %d of the burst refused", i + 1);
	cr_assert_not(pr_ratelimit_take(r, "a", 0, &ra), "the 6th request in the same instant must be refused");
	cr_expect_eq(ra, 1, "Retry-After: got %d, want 1 (2 tokens per second)", ra);
	cr_assert(pr_ratelimit_take(r, "b", 0, &ra), "another token has its own bucket");
	cr_assert(pr_ratelimit_take(r, "a", SEC / 2, &ra), "half a second refills one token");
	cr_assert_not(pr_ratelimit_take(r, "a", SEC / 2, &ra));
	cr_assert(pr_ratelimit_take(r, "a", 100 * SEC, &ra));
	for (int i = 0; i < 4; i++)
		cr_assert(pr_ratelimit_take(r, "a", 100 * SEC, &ra), "refill is capped at the burst, not beyond");
	cr_assert_not(pr_ratelimit_take(r, "a", 100 * SEC, &ra));
	pr_ratelimit_free(r);
}

Test(ratelimit, slow_rate_gives_longer_retry_after)
{
	struct pr_ratelimit *r = pr_ratelimit_new(0.1, 1);
	int ra = 0;
	cr_assert(pr_ratelimit_take(r, "k", 0, &ra));
	cr_assert_not(pr_ratelimit_take(r, "k", 0, &ra));
	cr_expect_eq(ra, 10, "got %d, want 10", ra);
	pr_ratelimit_free(r);
}

Test(ratelimit, off)
{
	struct pr_ratelimit *r = pr_ratelimit_new(0, 0);
	int ra = 0;
	for (int i = 0; i < 10000; i++)
		cr_assert(pr_ratelimit_take(r, "k", 0, &ra));
	pr_ratelimit_free(r);
}

Test(ratelimit, many_keys)
{
	struct pr_ratelimit *r = pr_ratelimit_new(1, 1);
	char key[16];
	int ra;
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert(pr_ratelimit_take(r, key, 0, &ra));
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_not(pr_ratelimit_take(r, key, 0, &ra), "%s", key);
	}
	pr_ratelimit_free(r);
}
