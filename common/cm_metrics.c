/*
 * cm_metrics.c - see cm_metrics.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_metrics.h"

static struct cm_metric *head, *tail;

const double cm_buckets_latency[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				     0.05,   0.1,     0.25,   0.5,   1,	     2.5,   5,	  10};
const size_t cm_buckets_latency_n = sizeof(cm_buckets_latency) / sizeof(cm_buckets_latency[0]);

void cm_metrics_register(struct cm_metric *m)
{
	m->next = NULL;
	if (tail)
		tail->next = m;
	else
		head = m;
	tail = m;
}

void cm_metric_observe(struct cm_metric *m, double v)
{
	size_t i = 0;
	while (i < m->nbounds && v > m->bounds[i])
		i++;
	atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_micro, (long long)(v * 1e6), memory_order_relaxed);
}

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return;
		b->p = np;
		b->cap = cap;
	}
}

char *cm_metrics_render(size_t *len)
{
	static const char *types[] = {"counter", "gauge", "histogram"};
	struct buf b = {0};
	const char *last = NULL;
	put(&b, "%s", "");
	for (struct cm_metric *m = head; m; m = m->next) {
		if (!last || strcmp(last, m->name) != 0)
			put(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
		last = m->name;
		const char *lb = m->labels ? m->labels : "";
		const char *sep = m->labels ? "," : "";
		if (m->type != CM_METRIC_HISTOGRAM) {
			if (m->labels)
				put(&b, "%s{%s} %lld\n", m->name, lb, atomic_load(&m->value));
			else
				put(&b, "%s %lld\n", m->name, atomic_load(&m->value));
			continue;
		}
		unsigned long long cum = 0;
		for (size_t i = 0; i < m->nbounds; i++) {
			cum += atomic_load(&m->buckets[i]);
			put(&b, "%s_bucket{%s%sle=\"%g\"} %llu\n", m->name, lb, sep, m->bounds[i], cum);
		}
		cum += atomic_load(&m->buckets[m->nbounds]);
		put(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, lb, sep, cum);
		put(&b, "%s_sum%s%s%s %.6f\n", m->name, m->labels ? "{" : "", lb, m->labels ? "}" : "",
		    (double)atomic_load(&m->sum_micro) / 1e6);
		put(&b, "%s_count%s%s%s %llu\n", m->name, m->labels ? "{" : "", lb, m->labels ? "}" : "", cum);
	}
	*len = b.len;
	return b.p;
}
