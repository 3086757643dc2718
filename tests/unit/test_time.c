/*
 * test_time.c - run_at parsing (cm_time_parse) and formatting, table-driven.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "cm_time.h"

/* Criterion copies parameters into the test's process: inline arrays, not pointers (ASLR). */
struct parse_case {
	char label[48], zone[32], input[48];
	int ok;
	char want[48]; /* formatted UTC with µs, or a substring of the error */
};

static const struct parse_case cases[] = {
	{"plain UTC", "UTC", "2026-01-21 18:00:00", 1, "2026-01-21T18:00:00.000000Z"},
	{"T separator", "UTC", "2026-01-21T18:00:00", 1, "2026-01-21T18:00:00.000000Z"},
	{"Z and millis", "UTC", "2026-01-21T18:00:00.250Z", 1, "2026-01-21T18:00:00.250000Z"},
	{"lower z, 9 digits", "UTC", "2026-01-21t18:00:00.123456789z", 1, "2026-01-21T18:00:00.123456Z"},
	{"positive offset", "UTC", "2026-01-21T21:00:00+03:00", 1, "2026-01-21T18:00:00.000000Z"},
	{"negative offset", "UTC", "2026-01-21T13:30:00-04:30", 1, "2026-01-21T18:00:00.000000Z"},
	{"platform zone", "Europe/Moscow", "2026-01-21 21:00:00", 1, "2026-01-21T18:00:00.000000Z"},
	{"offset wins over zone", "Europe/Moscow", "2026-01-21 18:00:00Z", 1, "2026-01-21T18:00:00.000000Z"},
	{"leap day", "UTC", "2028-02-29 00:00:00", 1, "2028-02-29T00:00:00.000000Z"},
	{"summer time in Berlin", "Europe/Berlin", "2026-07-01 12:00:00", 1, "2026-07-01T10:00:00.000000Z"},
	{"DST gap in Berlin", "Europe/Berlin", "2026-03-29 02:30:00", 0, "daylight saving gap"},
	{"no leap day", "UTC", "2026-02-29 00:00:00", 0, "not a valid date"},
	{"February 30", "UTC", "2026-02-30 10:00:00", 0, "not a valid date"},
	{"hour 24", "UTC", "2026-01-21 24:00:00", 0, "not a valid date"},
	{"second 60", "UTC", "2026-01-21 23:59:60", 0, "not a valid date"},
	{"month 13", "UTC", "2026-13-01 00:00:00", 0, "not a valid date"},
	{"date only", "UTC", "2026-01-21", 0, "must match"},
	{"slashes", "UTC", "2026/01/21 18:00:00", 0, "must match"},
	{"trailing junk", "UTC", "2026-01-21 18:00:00 UTC", 0, "must match"},
	{"empty fraction", "UTC", "2026-01-21 18:00:00.Z", 0, "must match"},
	{"bad offset", "UTC", "2026-01-21 18:00:00+3", 0, "offset"},
	{"before 1970", "UTC", "1969-12-31 23:59:59", 0, "not a valid date"},
	{"empty", "UTC", "", 0, "must match"},
};

ParameterizedTestParameters(time, parse)
{
	return cr_make_param_array(struct parse_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(const struct parse_case *c, time, parse)
{
	char err[200] = "", buf[CM_TIME_BUFSZ];
	int64_t us = 0;
	cr_assert_eq(cm_time_set_zone(c->zone, err, sizeof(err)), 0, "%s: zone %s: %s", c->label, c->zone, err);
	int rc = cm_time_parse(c->input, &us, err, sizeof(err));
	if (c->ok) {
		cr_assert_eq(rc, 0, "%s: got error '%s', want %s", c->label, err, c->want);
		cr_assert_str_eq(cm_time_format_us(us, buf), c->want, "%s: got %s, want %s", c->label, buf, c->want);
	} else {
		cr_assert_eq(rc, -1, "%s: got %s, want an error", c->label, cm_time_format_us(us, buf));
		cr_assert(strstr(err, c->want) != NULL, "%s: got error '%s', want it to mention '%s'", c->label, err,
			  c->want);
	}
}

Test(time, unknown_zone_is_refused)
{
	char err[200];
	cr_assert_eq(cm_time_set_zone("Mars/Olympus", err, sizeof(err)), -1);
	cr_assert(strstr(err, "unknown time zone") != NULL, "got '%s'", err);
	cr_assert_eq(cm_time_set_zone("../../etc/passwd", err, sizeof(err)), -1);
}

Test(time, format_rounds_down_to_millis_and_handles_negative)
{
	char buf[CM_TIME_BUFSZ];
	cr_assert_str_eq(cm_time_format(1768000000123999, buf), "2026-01-09T23:06:40.123Z");
	cr_assert_str_eq(cm_time_format(-1, buf), "1969-12-31T23:59:59.999Z");
}

/* Found by fuzz_run_at: 1970-01-01 00:00:00 in Berlin (or with a +01:00 offset) is before the epoch,
 * and 9999-12-31 23:59:59-01:00 after year 9999: neither survives its RFC 3339 form in the envelope. */
Test(time, the_range_is_1970_to_9999_in_utc)
{
	static const struct {
		const char *label, *zone, *input;
		int ok;
	} c[] = {
		{"the epoch", "UTC", "1970-01-01T00:00:00Z", 1},
		{"the epoch in Berlin", "Europe/Berlin", "1970-01-01 01:00:00", 1},
		{"before the epoch in Berlin", "Europe/Berlin", "1970-01-01 00:00:00", 0},
		{"before the epoch by offset", "UTC", "1970-01-01T00:59:59.999+01:00", 0},
		{"the last second", "UTC", "9999-12-31T23:59:59.999999Z", 1},
		{"after year 9999 by offset", "UTC", "9999-12-31T23:59:59-00:01", 0},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(c); i++) {
		char err[200] = "", buf[CM_TIME_BUFSZ];
		int64_t us = 0, back = 0;
		cr_assert_eq(cm_time_set_zone(c[i].zone, err, sizeof(err)), 0, "%s", err);
		int rc = cm_time_parse(c[i].input, &us, err, sizeof(err));
		if (!c[i].ok) {
			cr_expect_eq(rc, -1, "%s: got %s, want an error", c[i].label, cm_time_format_us(us, buf));
			cr_expect(strstr(err, "from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z") != NULL,
				  "%s: got '%s'", c[i].label, err);
			continue;
		}
		cr_assert_eq(rc, 0, "%s: %s", c[i].label, err);
		cm_time_format_us(us, buf);
		cr_expect_eq(cm_time_parse(buf, &back, err, sizeof(err)), 0, "%s: %s does not parse: %s", c[i].label,
			     buf, err);
		cr_expect_eq(back, us, "%s: %s", c[i].label, buf);
	}
}
