/*
 * test_id.c - SHA-256 against FIPS 180-4 vectors, UUIDs, API tokens, constant-time comparison.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cm_id.h"
#include "cm_sha256.h"

static void hex_of(const char *in, size_t n, char out[65])
{
	uint8_t d[CM_SHA256_LEN];
	cm_sha256(in, n, d);
	cm_hex(d, sizeof(d), out);
}

Test(sha256, fips_vectors)
{
	static const struct {
		const char *label, *in, *want;
	} v[] = {
		{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	};
	char got[65];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		hex_of(v[i].in, strlen(v[i].in), got);
		cr_expect_str_eq(got, v[i].want, "%s: got %s, want %s", v[i].label, got, v[i].want);
	}
}

Test(sha256, million_a_streamed_in_odd_chunks)
{
	struct cm_sha256 c;
	char chunk[997];
	memset(chunk, 'a', sizeof(chunk));
	cm_sha256_init(&c);
	size_t left = 1000000;
	while (left) {
		size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
		cm_sha256_update(&c, chunk, n);
		left -= n;
	}
	uint8_t d[CM_SHA256_LEN];
	char got[65];
	cm_sha256_final(&c, d);
	cm_hex(d, sizeof(d), got);
	cr_assert_str_eq(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(uuid, v7_is_valid_ordered_and_unique)
{
	char a[CM_UUID_STRLEN + 1], b[CM_UUID_STRLEN + 1];
	cr_assert_eq(cm_uuid_v7(a), 0);
	cr_assert(cm_uuid_valid(a), "got %s", a);
	cr_assert_eq(a[14], '7', "version nibble: got %c in %s", a[14], a);
	cr_assert(strchr("89ab", a[19]) != NULL, "variant: got %c in %s", a[19], a);
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(cm_uuid_v7(b), 0);
		cr_assert(strcmp(a, b) != 0, "duplicate %s", a);
		/* the first 48 bits are milliseconds: never decreasing */
		cr_assert(strncmp(a, b, 13) <= 0, "time order: %s then %s", a, b);
		memcpy(a, b, sizeof(a));
	}
}

Test(uuid, name_based_is_deterministic)
{
	char a[CM_UUID_STRLEN + 1], b[CM_UUID_STRLEN + 1], c[CM_UUID_STRLEN + 1];
	cm_uuid_from_name("botjobs.idempotency", "42:order-1", 10, a);
	cm_uuid_from_name("botjobs.idempotency", "42:order-1", 10, b);
	cm_uuid_from_name("botjobs.idempotency", "43:order-1", 10, c);
	cr_assert_str_eq(a, b);
	cr_assert_str_neq(a, c);
	cr_assert(cm_uuid_valid(a));
	cr_assert_eq(a[14], '8', "version 8: got %s", a);
}

Test(uuid, validation)
{
	cr_assert(cm_uuid_valid("01a212f2-b91c-7e27-83e4-9f71b82b0035"));
	cr_assert(cm_uuid_valid("01A212F2-B91C-7E27-83E4-9F71B82B0035"));
	cr_assert_not(cm_uuid_valid("01a212f2b91c7e2783e49f71b82b0035"));
	cr_assert_not(cm_uuid_valid("01a212f2-b91c-7e27-83e4-9f71b82b003"));
	cr_assert_not(cm_uuid_valid("01a212f2-b91c-7e27-83e4-9f71b82b00355"));
	cr_assert_not(cm_uuid_valid("01a212f2-b91c-7e27-83e4-9f71b82b003g"));
	cr_assert_not(cm_uuid_valid("'; DROP TABLE jobs;--'"));
}

Test(token, format_and_hash)
{
	char t1[64], t2[64], h[65];
	cr_assert_eq(cm_token_new(t1, sizeof(t1)), 0);
	cr_assert_eq(cm_token_new(t2, sizeof(t2)), 0);
	cr_assert_eq(strlen(t1), 46, "got %zu: %s", strlen(t1), t1);
	cr_assert_eq(strncmp(t1, "bj_", 3), 0);
	cr_assert_str_neq(t1, t2);
	for (const char *p = t1 + 3; *p; p++)
		cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p), "char %c",
			  *p);
	cm_token_hash_hex("abc", h);
	cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cr_assert_eq(cm_token_new(t1, 20), -1, "a short buffer is refused");
}

Test(token, constant_time_equal)
{
	cr_assert(cm_ct_equal("abcdef", "abcdef", 6));
	cr_assert_not(cm_ct_equal("abcdef", "abcdeg", 6));
	cr_assert_not(cm_ct_equal("xbcdef", "abcdef", 6));
	cr_assert(cm_ct_equal("", "", 0));
}
