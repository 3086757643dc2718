/*
 * test_run.c - wk_run.c's grouping of a claimed batch into sandbox exchanges: the due jobs of one bot go
 * in one frame, never another bot's, never a job not yet due.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wk_run.h"

enum { N = 7 };

/* Jobs 0..N) of the given bots and due times (µs). */
static void batch(struct wk_claimed *jobs, struct wk_result *res, const int64_t *bots, const int64_t *due)
{
	memset(jobs, 0, N * sizeof(*jobs));
	memset(res, 0, N * sizeof(*res));
	for (size_t i = 0; i < N; i++) {
		jobs[i].job.bot_id = bots[i];
		jobs[i].job.due_us = due[i];
		res[i].claimed = &jobs[i];
	}
}

Test(run, a_group_is_the_due_jobs_of_one_bot_in_claim_order)
{
	static const int64_t bots[N] = {1, 1, 1, 2, 1, 1, 1};
	static const int64_t due[N] = {100, 100, 150, 150, 160, 170, 900};
	struct wk_claimed jobs[N];
	struct wk_result res[N];
	batch(jobs, res, bots, due);
	/* at 200: jobs 0-2 (bot 1), then bot 2's job 3 alone, then 4-5; job 6 is not due yet */
	cr_expect_eq(wk_run_group_end(res, 0, N, 200), 3);
	cr_expect_eq(wk_run_group_end(res, 3, N, 200), 4, "another bot's job ends the group and is one of its own");
	cr_expect_eq(wk_run_group_end(res, 4, N, 200), 6, "a job not yet due ends the group");
	cr_expect_eq(wk_run_group_end(res, 6, N, 900), 7);
	/* at 100 only the jobs due by then */
	cr_expect_eq(wk_run_group_end(res, 0, N, 100), 2);
	cr_expect_eq(wk_run_group_end(res, 1, N, 100), 2, "a group always holds its first job");
	cr_expect_eq(wk_run_group_end(res, 0, 1, 900), 1, "never past the batch");
}
