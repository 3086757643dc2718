/*
 * pr_ratelimit.c - see pr_ratelimit.h.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "cm_map.h"
#include "pr_ratelimit.h"

struct bucket {
	double tokens;
	int64_t last_us;
};

struct pr_ratelimit {
	double rate, burst;
	pthread_mutex_t mu;
	struct cm_map *index; /* key -> position in buckets */
	struct bucket *buckets;
	size_t n, cap;
};

struct pr_ratelimit *pr_ratelimit_new(double rate, double burst)
{
	struct pr_ratelimit *r = calloc(1, sizeof(*r));
	if (!r || !(r->index = cm_map_new(64))) {
		free(r);
		return NULL;
	}
	r->rate = rate;
	r->burst = burst < 1 ? 1 : burst;
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void pr_ratelimit_free(struct pr_ratelimit *r)
{
	if (!r)
		return;
	cm_map_free(r->index);
	free(r->buckets);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int pr_ratelimit_take(struct pr_ratelimit *r, const char *key, int64_t now_us, int *retry_after_sec)
{
	if (!r || r->rate <= 0)
		return 1;
	int ok = 1;
	pthread_mutex_lock(&r->mu);
	int64_t pos;
	struct bucket *b = NULL;
	if (cm_map_get(r->index, key, &pos)) {
		b = &r->buckets[pos];
	} else {
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 64;
			struct bucket *nb = realloc(r->buckets, cap * sizeof(*nb));
			if (!nb)
				goto out; /* out of memory: let it through rather than refuse everyone */
			r->buckets = nb;
			r->cap = cap;
		}
		if (cm_map_put(r->index, key, (int64_t)r->n) == -1)
			goto out;
		b = &r->buckets[r->n++];
		b->tokens = r->burst;
		b->last_us = now_us;
	}
	b->tokens += (double)(now_us - b->last_us) / 1e6 * r->rate;
	if (b->tokens > r->burst)
		b->tokens = r->burst;
	b->last_us = now_us;
	if (b->tokens >= 1) {
		b->tokens -= 1;
	} else {
		ok = 0;
		*retry_after_sec = (int)ceil((1 - b->tokens) / r->rate);
		if (*retry_after_sec < 1)
			*retry_after_sec = 1;
	}
out:
	pthread_mutex_unlock(&r->mu);
	return ok;
}
