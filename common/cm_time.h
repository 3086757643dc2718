/*
 * cm_time.h - time points as int64 microseconds since the Unix epoch (UTC), and the run_at formats.
 *
 * The platform time zone (config --timezone, default UTC) applies to run_at values written without
 * an offset, "YYYY-MM-DD hh:mm:ss". It is process-wide: set it once at start-up, before threads.
 */
#ifndef CM_TIME_H
#define CM_TIME_H

#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"

#define CM_US_PER_SEC INT64_C(1000000)
#define CM_TIME_MAX_SEC INT64_C(253402300799) /* 9999-12-31T23:59:59Z, the last second cm_time_parse accepts */
#define CM_TIME_BUFSZ 40

int64_t cm_time_now_us(void);  /* wall clock */
int64_t cm_time_mono_us(void); /* monotonic clock, for durations */

/* Sets the platform zone ("UTC", "Europe/Moscow"). Fails when the zone is not in the tz database. */
int cm_time_set_zone(const char *tz, char *errstr, size_t errstr_size) CM_MUSTCHECK;
const char *cm_time_zone(void);

/*
 * Parses a run_at value: "YYYY-MM-DD hh:mm:ss" in the platform zone, or RFC 3339 with an offset
 * ("2026-01-21T18:00:00.250Z", "2026-01-21 21:00:00+03:00"), fractional seconds kept to the µs.
 * Impossible dates (2026-02-30), local times that do not exist (a DST gap) and times outside
 * 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z (after the offset or zone is applied) are errors;
 * errstr gets the rule that was broken, e.g. "must match YYYY-MM-DD hh:mm:ss or RFC 3339".
 */
int cm_time_parse(const char *s, int64_t *out_us, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* "2026-01-21T18:00:00.250Z" (millisecond precision, UTC). buf holds CM_TIME_BUFSZ bytes. Returns buf. */
char *cm_time_format(int64_t us, char *buf);
/* The same with microseconds: "2026-01-21T18:00:00.250123Z". */
char *cm_time_format_us(int64_t us, char *buf);

#endif
