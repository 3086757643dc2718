/*
 * test_map.c - the string -> int64 hash map, through growth.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "cm_map.h"

Test(map, put_get_replace_and_grow)
{
	struct cm_map *m = cm_map_new(0);
	char key[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(cm_map_put(m, key, i * 3), 0);
	}
	cr_assert_eq(cm_map_size(m), 10000);
	for (int i = 0; i < 10000; i++) {
		int64_t v = -1;
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert(cm_map_get(m, key, &v), "%s missing", key);
		cr_assert_eq(v, i * 3, "%s: got %lld, want %d", key, (long long)v, i * 3);
	}
	cr_assert_eq(cm_map_put(m, "k5", 99), 0);
	int64_t v;
	cr_assert(cm_map_get(m, "k5", &v));
	cr_assert_eq(v, 99);
	cr_assert_eq(cm_map_size(m), 10000, "replacing does not add");
	cr_assert_not(cm_map_get(m, "k10000", NULL));
	cr_assert_not(cm_map_get(m, "", NULL));
	cm_map_free(m);
	cm_map_free(NULL);
}
