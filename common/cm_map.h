/*
 * cm_map.h - a string -> int64 hash map (open addressing, FNV-1a), for read-mostly lookups such as
 * the producer's catalog. Not thread-safe: build it, then share it read-only (or guard it).
 */
#ifndef CM_MAP_H
#define CM_MAP_H

#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"

struct cm_map;

struct cm_map *cm_map_new(size_t expected);
void cm_map_free(struct cm_map *m); /* NULL-safe */
/* Inserts or replaces (the key is copied). Returns -1 when out of memory. */
int cm_map_put(struct cm_map *m, const char *key, int64_t val) CM_MUSTCHECK;
/* Returns 1 and sets *val when the key is there, else 0. val may be NULL. */
int cm_map_get(const struct cm_map *m, const char *key, int64_t *val);
size_t cm_map_size(const struct cm_map *m);

#endif
