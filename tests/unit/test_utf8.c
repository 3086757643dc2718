/*
 * test_utf8.c - UTF-8 validity (cm_utf8.h): what jansson accepts, and lossy JSON strings.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cm_compiler.h"
#include "cm_utf8.h"

Test(utf8, sequences)
{
	static const struct {
		const char *label, *s;
		size_t n, want;
	} c[] = {
		{"ASCII", "a", 1, 1},
		{"2 bytes", "\xc3\xa9", 2, 2},
		{"3 bytes", "\xe2\x82\xac", 3, 3},
		{"4 bytes", "\xf0\x9f\x99\x82", 4, 4},
		{"U+10FFFF", "\xf4\x8f\xbf\xbf", 4, 4},
		{"past U+10FFFF", "\xf4\x90\x80\x80", 4, 0},
		{"a lone continuation byte", "\x80", 1, 0},
		{"overlong 2 bytes", "\xc0\xaf", 2, 0},
		{"overlong 3 bytes", "\xe0\x80\xaf", 3, 0},
		{"overlong 4 bytes", "\xf0\x80\x80\xaf", 4, 0},
		{"a surrogate", "\xed\xa0\x80", 3, 0},
		{"cut short", "\xe2\x82", 2, 0},
		{"cut by n", "\xe2\x82\xac", 2, 0},
		{"not a continuation", "\xc3\x28", 2, 0},
		{"0xff", "\xff", 1, 0},
		{"nothing", "", 0, 0},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(c); i++) {
		size_t got = cm_utf8_seq(c[i].s, c[i].n);
		cr_expect_eq(got, c[i].want, "%s: got %zu, want %zu", c[i].label, got, c[i].want);
	}
}

Test(utf8, json_text_replaces_what_is_not_utf8)
{
	static const struct {
		const char *label, *s, *want;
	} c[] = {
		{"valid stays", "caf\xc3\xa9 \xf0\x9f\x99\x82", "caf\xc3\xa9 \xf0\x9f\x99\x82"},
		{"one bad byte",
		 "a\xff"
		 "b",
		 "a\xef\xbf\xbd"
		 "b"},
		{"a character cut at the end", "no such route: /\xe2\x82", "no such route: /\xef\xbf\xbd\xef\xbf\xbd"},
		{"overlong slash", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
		{"NULL", NULL, ""},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(c); i++) {
		json_t *j = cm_json_text(c[i].s);
		cr_assert(json_is_string(j), "%s: not a string", c[i].label);
		cr_expect_str_eq(json_string_value(j), c[i].want, "%s", c[i].label);
		json_decref(j);
	}
}
