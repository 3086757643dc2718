/*
 * cm_metrics.c - see cm_metrics.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_metrics.h"

static struct cm_metric *head, *tail;
static struct cm_family *families;

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

void cm_metrics_register_family(struct cm_family *f)
{
	f->next = families;
	families = f;
}

struct cm_metric *cm_family_get(struct cm_family *f, const char *labels)
{
	pthread_mutex_lock(&f->mu);
	struct cm_metric *m = NULL;
	for (size_t i = 0; i < f->n && !m; i++)
		if (strcmp(f->children[i]->labels, labels) == 0)
			m = f->children[i];
	if (!m) {
		int overflow = f->n >= CM_FAMILY_MAX;
		for (size_t i = 0; overflow && i < f->n && !m; i++)
			if (strcmp(f->children[i]->labels, "overflow=\"true\"") == 0)
				m = f->children[i];
		if (!m && (m = calloc(1, sizeof(*m)))) {
			m->name = f->name;
			m->help = f->help;
			m->type = f->type;
			m->bounds = f->bounds;
			m->nbounds = f->nbounds;
			m->labels = strdup(overflow ? "overflow=\"true\"" : labels);
			if (!m->labels) {
				free(m);
				m = NULL;
			} else {
				f->children[f->n++] = m;
			}
		}
	}
	pthread_mutex_unlock(&f->mu);
	if (!m) {
		static struct cm_metric sink; /* out of memory: count nowhere rather than crash */
		m = &sink;
	}
	return m;
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

static void render_one(struct buf *b, struct cm_metric *m)
{
	const char *lb = m->labels ? m->labels : "";
	const char *sep = m->labels ? "," : "";
	if (m->type != CM_METRIC_HISTOGRAM) {
		if (m->labels)
			put(b, "%s{%s} %lld\n", m->name, lb, atomic_load(&m->value));
		else
			put(b, "%s %lld\n", m->name, atomic_load(&m->value));
		return;
	}
	unsigned long long cum = 0;
	for (size_t i = 0; i < m->nbounds; i++) {
		cum += atomic_load(&m->buckets[i]);
		put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", m->name, lb, sep, m->bounds[i], cum);
	}
	cum += atomic_load(&m->buckets[m->nbounds]);
	put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, lb, sep, cum);
	put(b, "%s_sum%s%s%s %.6f\n", m->name, m->labels ? "{" : "", lb, m->labels ? "}" : "",
	    (double)atomic_load(&m->sum_micro) / 1e6);
	put(b, "%s_count%s%s%s %llu\n", m->name, m->labels ? "{" : "", lb, m->labels ? "}" : "", cum);
}

static const char *type_name(enum cm_metric_type t)
{
	static const char *types[] = {"counter", "gauge", "histogram"};
	return types[t];
}

char *cm_metrics_render(size_t *len)
{
	struct buf b = {0};
	const char *last = NULL;
	put(&b, "%s", "");
	for (struct cm_metric *m = head; m; m = m->next) {
		if (!last || strcmp(last, m->name) != 0)
			put(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, type_name(m->type));
		last = m->name;
		render_one(&b, m);
	}
	for (struct cm_family *f = families; f; f = f->next) {
		put(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type_name(f->type));
		pthread_mutex_lock(&f->mu);
		for (size_t i = 0; i < f->n; i++)
			render_one(&b, f->children[i]);
		pthread_mutex_unlock(&f->mu);
	}
	*len = b.len;
	return b.p;
}
