/*
 * cm_map.c - see cm_map.h. Keys are stored inline after their slot's pointer; the table stays at most
 * half full, so probes are short.
 */
#include <stdlib.h>
#include <string.h>

#include "cm_map.h"

struct slot {
	char *key;
	int64_t val;
	uint64_t hash;
};

struct cm_map {
	struct slot *slots;
	size_t cap, n;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct cm_map *cm_map_new(size_t expected)
{
	struct cm_map *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cap = 16;
	while (m->cap < expected * 2)
		m->cap *= 2;
	m->slots = calloc(m->cap, sizeof(struct slot));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void cm_map_free(struct cm_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static struct slot *find(const struct cm_map *m, const char *key, uint64_t h)
{
	size_t i = h & (m->cap - 1);
	for (;;) {
		struct slot *s = &m->slots[i];
		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

static int grow(struct cm_map *m)
{
	struct cm_map big = {.cap = m->cap * 2, .n = 0};
	big.slots = calloc(big.cap, sizeof(struct slot));
	if (!big.slots)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key)
			*find(&big, m->slots[i].key, m->slots[i].hash) = m->slots[i];
	}
	free(m->slots);
	m->slots = big.slots;
	m->cap = big.cap;
	return 0;
}

int cm_map_put(struct cm_map *m, const char *key, int64_t val)
{
	if ((m->n + 1) * 2 > m->cap && grow(m) == -1)
		return -1;
	uint64_t h = fnv(key);
	struct slot *s = find(m, key, h);
	if (!s->key) {
		if (!(s->key = strdup(key)))
			return -1;
		s->hash = h;
		m->n++;
	}
	s->val = val;
	return 0;
}

int cm_map_get(const struct cm_map *m, const char *key, int64_t *val)
{
	struct slot *s = find(m, key, fnv(key));
	if (!s->key)
		return 0;
	if (val)
		*val = s->val;
	return 1;
}

size_t cm_map_size(const struct cm_map *m)
{
	return m->n;
}
