/*
 * cm_log.c - JSON-lines / text logger on stderr. See cm_log.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_utf8.h"

static const char *log_name = "botjobs";
static enum cm_log_format log_format = CM_LOG_JSON;
static enum cm_log_level log_min = CM_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void cm_log_setup(const char *name, enum cm_log_format fmt, enum cm_log_level min_level)
{
	log_name = name;
	log_format = fmt;
	log_min = min_level;
}

enum cm_log_format cm_log_get_format(void)
{
	return log_format;
}

enum cm_log_level cm_log_get_level(void)
{
	return log_min;
}

int cm_log_format_parse(const char *s)
{
	if (strcasecmp(s, "json") == 0)
		return CM_LOG_JSON;
	if (strcasecmp(s, "text") == 0)
		return CM_LOG_TEXT;
	return -1;
}

int cm_log_level_parse(const char *s)
{
	for (size_t i = 0; i < CM_ARRAY_LEN(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Appends s to buf as the inside of a JSON string; never overflows, always NUL-terminates. */
static size_t put_json(char *buf, size_t n, size_t off, const char *s)
{
	for (; *s && off + 7 < n; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[off++] = '\\';
			buf[off++] = (char)c;
		} else if (c == '\n') {
			buf[off++] = '\\';
			buf[off++] = 'n';
		} else if (c < 0x20) {
			off += (size_t)snprintf(buf + off, n - off, "\\u%04x", c);
		} else if (c >= 0x80) {
			/* A client's bytes (a path) need not be UTF-8: the line must stay valid JSON. */
			size_t k = cm_utf8_seq(s, strnlen(s, 4));
			if (k == 0) {
				memcpy(buf + off, "\\ufffd", 6);
				off += 6;
			} else if (off + k + 7 < n) {
				memcpy(buf + off, s, k);
				off += k;
				s += k - 1;
			} else {
				break;
			}
		} else {
			buf[off++] = (char)c;
		}
	}
	buf[off < n ? off : n - 1] = '\0';
	return off;
}

static size_t put_raw(char *buf, size_t n, size_t off, const char *s)
{
	size_t len = strlen(s);
	if (off + len >= n)
		len = off < n - 1 ? n - 1 - off : 0;
	memcpy(buf + off, s, len);
	off += len;
	buf[off] = '\0';
	return off;
}

void cm_log_kv(enum cm_log_level level, const struct cm_kv *kv, size_t nkv, const char *fmt, ...)
{
	if (level < log_min)
		return;
	char msg[2048], line[4096], ts[40];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", now.tv_nsec / 1000000);

	size_t off = 0, n = sizeof(line) - 2;
	if (log_format == CM_LOG_JSON) {
		off = put_raw(line, n, off, "{\"ts\":\"");
		off = put_raw(line, n, off, ts);
		off = put_raw(line, n, off, "\",\"level\":\"");
		off = put_raw(line, n, off, level_names[level]);
		off = put_raw(line, n, off, "\",\"proc\":\"");
		off = put_json(line, n, off, log_name);
		off = put_raw(line, n, off, "\",\"msg\":\"");
		off = put_json(line, n, off, msg);
		off = put_raw(line, n, off, "\"");
		for (size_t i = 0; i < nkv; i++) {
			if (!kv[i].v)
				continue;
			off = put_raw(line, n, off, ",\"");
			off = put_json(line, n, off, kv[i].k);
			off = put_raw(line, n, off, "\":\"");
			off = put_json(line, n, off, kv[i].v);
			off = put_raw(line, n, off, "\"");
		}
		off = put_raw(line, n, off, "}");
	} else {
		off = put_raw(line, n, off, ts);
		off = put_raw(line, n, off, " ");
		off = put_raw(line, n, off, log_name);
		off = put_raw(line, n, off, " ");
		off = put_raw(line, n, off, level_names[level]);
		off = put_raw(line, n, off, " ");
		off = put_raw(line, n, off, msg);
		for (size_t i = 0; i < nkv; i++) {
			if (!kv[i].v)
				continue;
			off = put_raw(line, n, off, " ");
			off = put_raw(line, n, off, kv[i].k);
			off = put_raw(line, n, off, "=");
			off = put_raw(line, n, off, kv[i].v);
		}
	}
	line[off++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, off);
	(void)w;
}
