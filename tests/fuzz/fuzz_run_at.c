/*
 * fuzz_run_at.c - libFuzzer target: the run_at / due_at parser (cm_time_parse), in UTC and in a zone
 * with daylight saving time (the producer's --timezone).
 *
 * Input: the string (a NUL in it ends it, as it does for a JSON string handed to the parser).
 * Checks beyond "no crash, no undefined behaviour":
 *   - a refused value has a rule in errstr (the API names it under "run_at");
 *   - an accepted value is a real point in time no earlier than the epoch, whose microsecond form
 *     (cm_time_format_us, what the envelope's due_at carries) parses back to the same value: the
 *     worker reads the time the producer meant.
 * Seeds: tests/fuzz/corpus/run_at/ (from tests/unit/test_time.c and tests/contract/requests/run_at.jsonl).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_time.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_in(const char *zone, const char *s)
{
	char err[200] = "", fmt[CM_TIME_BUFSZ];
	int64_t us = 0;
	if (cm_time_set_zone(zone, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	if (cm_time_parse(s, &us, err, sizeof(err)) == -1) {
		if (!err[0])
			abort();
		return;
	}
	if (us < 0) {
		fprintf(stderr, "'%s' (%s) is before the epoch: %lld\n", s, zone, (long long)us);
		abort();
	}
	cm_time_format_us(us, fmt);
	int64_t back = -1;
	if (cm_time_parse(fmt, &back, err, sizeof(err)) == -1 || back != us) {
		fprintf(stderr, "'%s' (%s) -> %lld -> '%s' -> %lld (%s)\n", s, zone, (long long)us, fmt,
			(long long)back, err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	parse_in("UTC", s);
	parse_in("Europe/Berlin", s);
	free(s);
	return 0;
}
