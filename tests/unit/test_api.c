/*
 * test_api.c - the producer's token headers (Metabot clients use three spellings).
 */
#include <criterion/criterion.h>

#include "pr_api.h"

Test(api, token_headers)
{
	static const struct {
		const char *label, *authorization, *authentication, *want;
	} c[] = {
		{"Authorization: Bearer", "Bearer bj_abc", NULL, "bj_abc"},
		{"bearer in any case", "bearer bj_abc", NULL, "bj_abc"},
		{"Authentication: token", NULL, "bj_abc", "bj_abc"},
		{"Authentication: Bearer token", NULL, "Bearer bj_abc", "bj_abc"},
		{"Authorization wins", "Bearer bj_a", "bj_b", "bj_a"},
		{"Authorization without Bearer", "Basic dXNlcjpwYXNz", NULL, NULL},
		{"empty bearer", "Bearer ", NULL, NULL},
		{"none", NULL, NULL, NULL},
		{"empty Authentication", NULL, "", NULL},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		const char *got = pr_api_token(c[i].authorization, c[i].authentication);
		if (c[i].want)
			cr_expect(got && strcmp(got, c[i].want) == 0, "%s: got %s, want %s", c[i].label,
				  got ? got : "NULL", c[i].want);
		else
			cr_expect(got == NULL, "%s: got %s, want NULL", c[i].label, got);
	}
}
