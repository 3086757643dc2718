/*
 * wk_events.c - job lifecycle events built by the worker. See wk_events.h.
 */
#include "wk_events.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_job.h"
#include "cm_pg.h"
#include "cm_time.h"

static void put(struct wk_events *b, const char *s, size_t n)
{
	if (!b->oom && cm_buf_add(&b->text, s, n) == -1)
		b->oom = 1;
}

static void puts_(struct wk_events *b, const char *s)
{
	put(b, s, strlen(s));
}

static void printf_(struct wk_events *b, const char *fmt, ...) CM_PRINTF(2, 3);
static void printf_(struct wk_events *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->oom = 1; /* only short, fixed fields go through here */
		return;
	}
	put(b, tmp, (size_t)n);
}

/* A JSON string: quotes, backslashes and control characters escaped; other bytes (UTF-8) as they are. */
static void string(struct wk_events *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	put(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(b, run, (size_t)(s - run));
		char esc[7] = {'\\', (char)c, 0};
		size_t n = 2;
		if (c == '\n')
			esc[1] = 'n';
		else if (c == '\t')
			esc[1] = 't';
		else if (c == '\r')
			esc[1] = 'r';
		else if (c < 0x20) {
			esc[1] = 'u';
			esc[2] = esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		}
		put(b, esc, n);
		run = s + 1;
	}
	put(b, run, (size_t)(s - run));
	put(b, "\"", 1);
}

static void ts(struct wk_events *b, const char *name, int64_t us)
{
	char t[CM_TIME_BUFSZ];
	printf_(b, ",\"%s\":\"%s\"", name, cm_time_format(us, t));
}

/* ",{"key":"…","payload":{"v":1,"type":"…","job_id":"…","bot_id":…" (the first without the comma) */
static void begin(struct wk_events *b, int64_t bot_id, int64_t lead_id, const char *type, const char *job_id)
{
	char key[48];
	cm_job_key(bot_id, lead_id, key, sizeof(key));
	puts_(b, b->n++ ? ",{\"key\":" : "[{\"key\":");
	string(b, key);
	puts_(b, ",\"payload\":{\"v\":1,\"type\":");
	string(b, type);
	puts_(b, ",\"job_id\":");
	string(b, job_id);
	printf_(b, ",\"bot_id\":%" PRId64, bot_id);
}

void wk_events_started(struct wk_events *b, const struct wk_claimed *c, const char *worker, int64_t now_us)
{
	const struct cm_job *j = &c->job;
	begin(b, j->bot_id, j->lead_id, "job.started", j->job_id);
	if (j->lead_id)
		printf_(b, ",\"lead_id\":%" PRId64, j->lead_id);
	else
		puts_(b, ",\"lead_id\":null");
	ts(b, "due_at", j->due_us);
	printf_(b, ",\"run\":%d,\"worker\":", c->runs + 1);
	string(b, worker);
	ts(b, "at", now_us > j->due_us ? now_us : j->due_us);
	puts_(b, "}}");
}

void wk_events_end(struct wk_events *b, const struct wk_event_end *e, int64_t now_us)
{
	char type[32];
	snprintf(type, sizeof(type), "job.%s", e->final);
	begin(b, e->bot_id, e->lead_id, type, e->job_id);
	if (e->lead_id)
		printf_(b, ",\"lead_id\":%" PRId64, e->lead_id);
	printf_(b, ",\"run\":%d", e->run);
	ts(b, "due_at", e->due_us);
	ts(b, "started_at", e->started_us);
	ts(b, "finished_at", e->finished_us);
	if (e->error) {
		puts_(b, ",\"error\":");
		string(b, e->error);
	}
	puts_(b, ",\"state\":");
	string(b, e->state);
	if (strcmp(e->state, "scheduled") == 0)
		ts(b, "next_due_at", e->next_due_us);
	ts(b, "at", now_us);
	puts_(b, "}}");
}

const char *wk_events_text(struct wk_events *b)
{
	if (b->n == 0)
		return b->oom ? NULL : "[]";
	if (b->oom || cm_buf_reserve(&b->text, 1) == -1)
		return NULL;
	b->text.p[b->text.len] = ']';
	b->text.p[b->text.len + 1] = '\0';
	return b->text.p; /* len stays: the closing bracket is written again after more events */
}

int wk_events_insert(PGconn *c, struct wk_events *b, char *errstr, size_t errstr_size)
{
	if (b->n == 0 && !b->oom)
		return 0;
	const char *text = wk_events_text(b);
	if (!text) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	const char *p[] = {text};
	PGresult *r = cm_pg_query_prepared(c, "bj_events",
					   "INSERT INTO outbox (topic, key, payload) VALUES ('events', NULL, $1::json)",
					   1, p, errstr, errstr_size);
	int ok = r != NULL;
	PQclear(r);
	return ok ? 0 : -1;
}

void wk_events_free(struct wk_events *b)
{
	cm_buf_free(&b->text);
	memset(b, 0, sizeof(*b));
}
