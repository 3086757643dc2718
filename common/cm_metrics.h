/*
 * cm_metrics.h - Prometheus counters, gauges and histograms, lock-free to update.
 *
 * Metrics are static objects of the module that owns them, registered once at start-up
 * (before threads) with cm_metrics_register; /metrics renders them all in text format 0.0.4.
 */
#ifndef CM_METRICS_H
#define CM_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

enum cm_metric_type { CM_METRIC_COUNTER, CM_METRIC_GAUGE, CM_METRIC_HISTOGRAM };

#define CM_HIST_MAX_BUCKETS 24

struct cm_metric {
	const char *name;
	const char *help;
	enum cm_metric_type type;
	const char *labels;   /* 'code="202"' or NULL; metrics of one name are registered next to each other */
	const double *bounds; /* histogram upper bounds, ascending */
	size_t nbounds;
	_Atomic long long value; /* counter / gauge */
	_Atomic unsigned long long buckets[CM_HIST_MAX_BUCKETS + 1];
	_Atomic long long sum_micro; /* histogram sum in millionths */
	struct cm_metric *next;
};

void cm_metrics_register(struct cm_metric *m);

/*
 * A family: one metric name with label sets created on first use, e.g. requests by route and status.
 * Declare it static with CM_FAMILY(...), register it once, then cm_family_get(f, "route=\"x\",code=\"202\"")
 * returns that child (thread-safe). At most CM_FAMILY_MAX label sets; beyond that one child labelled
 * overflow="true" takes the rest, so a bug cannot grow memory without bound.
 */
#define CM_FAMILY_MAX 256
struct cm_family {
	const char *name, *help;
	enum cm_metric_type type;
	const double *bounds;
	size_t nbounds;
	pthread_mutex_t mu;
	size_t n;
	struct cm_metric *children[CM_FAMILY_MAX + 1];
	struct cm_family *next;
};
#define CM_FAMILY(nm, hp, tp, bd, nb)                                                      \
	{                                                                                  \
		.name = (nm), .help = (hp), .type = (tp), .bounds = (bd), .nbounds = (nb), \
		.mu = PTHREAD_MUTEX_INITIALIZER                                            \
	}
void cm_metrics_register_family(struct cm_family *f);
struct cm_metric *cm_family_get(struct cm_family *f, const char *labels);
/* Renders every registered metric. Returns a malloc'd NUL-terminated text; *len gets its length. */
char *cm_metrics_render(size_t *len);

static inline void cm_metric_add(struct cm_metric *m, long long n)
{
	atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}
static inline void cm_metric_set(struct cm_metric *m, long long v)
{
	atomic_store_explicit(&m->value, v, memory_order_relaxed);
}
void cm_metric_observe(struct cm_metric *m, double v);

/* Common bucket sets, in seconds. */
extern const double cm_buckets_latency[]; /* 100 µs .. 10 s */
extern const size_t cm_buckets_latency_n;

#endif
