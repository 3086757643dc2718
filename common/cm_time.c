/*
 * cm_time.c - clocks and run_at parsing. See cm_time.h.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cm_time.h"

static char zone_name[128] = "UTC";
static int zone_is_utc = 1;

int64_t cm_time_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * CM_US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t cm_time_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * CM_US_PER_SEC + ts.tv_nsec / 1000;
}

int cm_time_set_zone(const char *tz, char *errstr, size_t errstr_size)
{
	if (!tz || !*tz || strlen(tz) >= sizeof(zone_name)) {
		snprintf(errstr, errstr_size, "time zone must be a tz database name such as UTC or Europe/Berlin");
		return -1;
	}
	int utc = strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0;
	if (!utc) {
		char path[300];
		const char *dir = getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
		snprintf(path, sizeof(path), "%s/%s", dir, tz);
		if (strstr(tz, "..") || access(path, R_OK) != 0) {
			snprintf(errstr, errstr_size, "unknown time zone '%s' (not in %s)", tz, dir);
			return -1;
		}
	}
	snprintf(zone_name, sizeof(zone_name), "%s", tz);
	zone_is_utc = utc;
	setenv("TZ", utc ? "UTC" : tz, 1);
	tzset();
	return 0;
}

const char *cm_time_zone(void)
{
	return zone_name;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

#define FORMAT_RULE "must match YYYY-MM-DD hh:mm:ss or RFC 3339 (2026-01-21T18:00:00.250Z)"

int cm_time_parse(const char *s, int64_t *out_us, char *errstr, size_t errstr_size)
{
	int Y, M, D, h, m, sec, frac_us = 0;
	size_t len = strlen(s);

	if (len < 19 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
	    digits(s + 8, 2, &D) || (s[10] != ' ' && s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &sec)) {
		snprintf(errstr, errstr_size, FORMAT_RULE);
		return -1;
	}
	const char *p = s + 19;
	if (*p == '.') {
		int nd = 0;
		p++;
		while (isdigit((unsigned char)*p)) {
			if (nd < 6)
				frac_us = frac_us * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0) {
			snprintf(errstr, errstr_size, FORMAT_RULE);
			return -1;
		}
		for (int i = nd; i < 6; i++)
			frac_us *= 10;
	}
	int has_offset = 0, off_sec = 0;
	if (*p == 'Z' || *p == 'z') {
		has_offset = 1;
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59) {
			snprintf(errstr, errstr_size, "offset must be Z or ±hh:mm");
			return -1;
		}
		has_offset = 1;
		off_sec = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	}
	if (*p) {
		snprintf(errstr, errstr_size, FORMAT_RULE);
		return -1;
	}
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) || h > 23 || m > 59 || sec > 59) {
		snprintf(errstr, errstr_size, "is not a valid date and time");
		return -1;
	}

	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	time_t t;
	if (has_offset || zone_is_utc) {
		t = timegm(&tm) - off_sec;
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
		struct tm back;
		if (t == (time_t)-1 || !localtime_r(&t, &back) || back.tm_year != Y - 1900 || back.tm_mon != M - 1 ||
		    back.tm_mday != D || back.tm_hour != h || back.tm_min != m || back.tm_sec != sec) {
			snprintf(errstr, errstr_size, "does not exist in time zone %s (daylight saving gap)",
				 zone_name);
			return -1;
		}
	}
	/* The zone or the offset may move a time at either end out of the range the envelope's RFC 3339
	 * form carries (a year of four digits, no time before the epoch). */
	if (t < 0 || (int64_t)t > CM_TIME_MAX_SEC) {
		snprintf(errstr, errstr_size, "must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z");
		return -1;
	}
	*out_us = (int64_t)t * CM_US_PER_SEC + frac_us;
	return 0;
}

static char *format(int64_t us, char *buf, int micro)
{
	int64_t secs = us / CM_US_PER_SEC, rem = us % CM_US_PER_SEC;
	if (rem < 0) {
		rem += CM_US_PER_SEC;
		secs--;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, CM_TIME_BUFSZ, "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(buf + n, CM_TIME_BUFSZ - n, ".%06dZ", (int)rem);
	else
		snprintf(buf + n, CM_TIME_BUFSZ - n, ".%03dZ", (int)(rem / 1000));
	return buf;
}

char *cm_time_format(int64_t us, char *buf)
{
	return format(us, buf, 0);
}

char *cm_time_format_us(int64_t us, char *buf)
{
	return format(us, buf, 1);
}
