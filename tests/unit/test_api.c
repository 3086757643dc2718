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

/* Found by fuzz_api: a 404 for a path that is not UTF-8 ("no such route: POST /…\xc1…") had an empty
 * body, json_pack refusing the message; and a message cut inside a character did the same. */
Test(api, error_bodies_survive_bytes_that_are_not_utf8)
{
	json_t *b = pr_error_body("no such route: POST /api/v1/bots/1/jobs/\xc1plhedule", NULL);
	cr_assert(json_is_object(b), "an answer");
	cr_expect(json_is_false(json_object_get(b, "success")));
	cr_expect_str_eq(json_string_value(json_object_get(b, "message")),
			 "no such route: POST /api/v1/bots/1/jobs/\xef\xbf\xbdplhedule");
	cr_expect_null(json_object_get(b, "errors"), "no errors given, none shown");
	json_decref(b);

	b = pr_error_body("invalid fields", json_pack("{s[s]}", "run_at", "must match"));
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(b, "errors"), "run_at"), 0)),
			 "must match");
	json_decref(b);
}
