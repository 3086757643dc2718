/*
 * test_buf.c - the growing byte buffer (cm_buf.h).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cm_buf.h"

Test(buf, appends_across_growth_and_stays_a_c_string)
{
	struct cm_buf b = {0};
	char want[5000];
	size_t n = 0;
	for (int i = 0; i < 1000; i++) {
		char piece[8];
		int k = snprintf(piece, sizeof(piece), "%d,", i % 97);
		if (i % 3 == 0) {
			for (int j = 0; j < k; j++)
				cr_assert_eq(cm_buf_addc(&b, piece[j]), 0);
		} else {
			cr_assert_eq(cm_buf_add(&b, piece, (size_t)k), 0);
		}
		memcpy(want + n, piece, (size_t)k);
		n += (size_t)k;
		cr_assert_eq(b.len, n);
		cr_assert(b.cap > b.len, "room for the NUL");
		cr_assert_eq(b.p[b.len], '\0');
	}
	cr_assert_eq(memcmp(b.p, want, n), 0);
	cm_buf_free(&b);
	cr_assert(b.p == NULL && b.len == 0 && b.cap == 0);
}

Test(buf, an_empty_add_gives_an_empty_string)
{
	struct cm_buf b = {0};
	cr_assert_eq(cm_buf_add(&b, "", 0), 0);
	cr_assert_str_eq(b.p, "");
	cm_buf_free(&b);
}

Test(buf, a_size_that_cannot_be_had_is_refused_and_the_buffer_kept)
{
	struct cm_buf b = {0};
	cr_assert_eq(cm_buf_add(&b, "abc", 3), 0);
	cr_assert_eq(cm_buf_reserve(&b, SIZE_MAX - 2), -1);
	cr_assert_eq(cm_buf_reserve(&b, SIZE_MAX / 2), -1);
	cr_assert_str_eq(b.p, "abc");
	cr_assert_eq(b.len, 3);
	cm_buf_free(&b);
}
