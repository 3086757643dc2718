/*
 * test_events.c - the job lifecycle events the worker builds (wk_events.h): the fields of
 * schemas/job-event.schema.json, times in milliseconds, what a run without a lead or without a next run
 * leaves out.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wk_events.h"

#define T0 1800000000123456LL /* 2027-01-15T08:00:00.123456Z */

/* The one event of a batch of one, as JSON (the batch's text must parse). */
static json_t *only(struct wk_events *b)
{
	const char *text = wk_events_text(b);
	cr_assert(text);
	json_t *all = json_loads(text, 0, NULL);
	cr_assert(json_array_size(all) == 1, "%s", text);
	json_t *e = json_incref(json_array_get(all, 0));
	json_decref(all);
	wk_events_free(b);
	return e;
}

static json_t *started(const struct wk_claimed *c, const char *worker, int64_t now)
{
	struct wk_events b = {0};
	wk_events_started(&b, c, worker, now);
	return only(&b);
}

static json_t *ended(const struct wk_event_end *e, int64_t now)
{
	struct wk_events b = {0};
	wk_events_end(&b, e, now);
	return only(&b);
}

static void expect_json(json_t *got, const char *want)
{
	json_t *w = json_loads(want, 0, NULL);
	cr_assert(w, "%s", want);
	char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect(json_equal(got, w), "got %s\nwant %s", g, want);
	free(g);
	json_decref(w);
	json_decref(got);
}

Test(events, job_started_starts_at_the_due_time_when_claimed_ahead)
{
	struct wk_claimed c = {.runs = 2};
	strcpy(c.job.job_id, "019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70");
	c.job.bot_id = 900;
	c.job.lead_id = 17;
	c.job.due_us = T0;
	expect_json(started(&c, "w1", T0 - 5000),
		    "{\"key\":\"900:17\",\"payload\":{\"v\":1,\"type\":\"job.started\",\"job_id\":"
		    "\"019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70\",\"bot_id\":900,\"lead_id\":17,"
		    "\"due_at\":\"2027-01-15T08:00:00.123Z\",\"run\":3,\"worker\":\"w1\",\"at\":\"2027-01-15T08:00:00."
		    "123Z\"}}");
	c.job.lead_id = 0;
	expect_json(started(&c, "w1", T0 + 2500000),
		    "{\"key\":\"900:-\",\"payload\":{\"v\":1,\"type\":\"job.started\",\"job_id\":"
		    "\"019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70\",\"bot_id\":900,\"lead_id\":null,"
		    "\"due_at\":\"2027-01-15T08:00:00.123Z\",\"run\":3,\"worker\":\"w1\",\"at\":\"2027-01-15T08:00:02."
		    "623Z\"}}");
}

Test(events, a_run_ends_with_its_times_its_error_and_the_next_run_of_a_periodic_job)
{
	struct wk_event_end e = {.job_id = "019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70",
				 .final = "failed",
				 .bot_id = 900,
				 .lead_id = 17,
				 .run = 4,
				 .due_us = T0,
				 .started_us = T0 + 1000,
				 .finished_us = T0 + 7000,
				 .next_due_us = T0 + 3600000000LL,
				 .error = "line 2: TypeError: \"x\" is undefined",
				 .state = "scheduled"};
	expect_json(
		ended(&e, T0 + 9000),
		"{\"key\":\"900:17\",\"payload\":{\"v\":1,\"type\":\"job.failed\",\"job_id\":"
		"\"019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70\",\"bot_id\":900,\"lead_id\":17,\"run\":4,"
		"\"due_at\":\"2027-01-15T08:00:00.123Z\",\"started_at\":\"2027-01-15T08:00:00.124Z\","
		"\"finished_at\":\"2027-01-15T08:00:00.130Z\",\"error\":\"line 2: TypeError: \\\"x\\\" is undefined\","
		"\"state\":\"scheduled\",\"next_due_at\":\"2027-01-15T09:00:00.123Z\",\"at\":\"2027-01-15T08:00:00."
		"132Z\"}}");
	/* a one-shot job without a lead that is done: no lead_id, no error, no next run */
	e.final = "done";
	e.lead_id = 0;
	e.error = NULL;
	e.state = "done";
	expect_json(ended(&e, T0 + 9000),
		    "{\"key\":\"900:-\",\"payload\":{\"v\":1,\"type\":\"job.done\",\"job_id\":"
		    "\"019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70\",\"bot_id\":900,\"run\":4,"
		    "\"due_at\":\"2027-01-15T08:00:00.123Z\",\"started_at\":\"2027-01-15T08:00:00.124Z\","
		    "\"finished_at\":\"2027-01-15T08:00:00.130Z\",\"state\":\"done\",\"at\":\"2027-01-15T08:00:00."
		    "132Z\"}}");
}

Test(events, a_batch_is_a_json_array_in_order_and_escapes_what_it_must)
{
	struct wk_events b = {0};
	cr_expect_str_eq(wk_events_text(&b), "[]");
	struct wk_claimed c = {.runs = 0};
	strcpy(c.job.job_id, "019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70");
	c.job.bot_id = 1;
	c.job.due_us = T0;
	for (int i = 1; i <= 300; i++) { /* past the first buffer */
		c.job.lead_id = i;
		wk_events_started(&b, &c, "w \"quoted\" \\ \n\x01 \xc3\xa9", T0);
	}
	json_t *all = json_loads(wk_events_text(&b), 0, NULL);
	cr_assert_eq(json_array_size(all), 300);
	for (size_t i = 0; i < 300; i++) {
		json_t *p = json_object_get(json_array_get(all, i), "payload");
		cr_expect_eq(json_integer_value(json_object_get(p, "lead_id")), (json_int_t)i + 1);
		cr_expect_str_eq(json_string_value(json_object_get(p, "worker")), "w \"quoted\" \\ \n\x01 \xc3\xa9");
	}
	json_decref(all);
	/* one more after the text was taken: still one array */
	c.job.lead_id = 301;
	wk_events_started(&b, &c, "w", T0);
	all = json_loads(wk_events_text(&b), 0, NULL);
	cr_expect_eq(json_array_size(all), 301);
	json_decref(all);
	wk_events_free(&b);
}
