/*
 * test_batch.c - the outbox's batch reader (wk_batch.h): the messages of a batch row, compacted, exactly
 * as jansson's parse-and-print made them; anything it does not read is refused (-1), never misread.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "wk_batch.h"

/* Reads every message of text (an exact-size copy, so that ASan sees a read past its end); returns the
 * last wk_batch_next result (0 or -1) and how many messages came before it. */
static int read_all(const char *text, size_t len, json_t *msgs)
{
	char *copy = malloc(len ? len : 1);
	memcpy(copy, text, len);
	struct wk_batch b;
	struct wk_batch_msg m;
	int rc;
	wk_batch_init(&b, copy, len);
	while ((rc = wk_batch_next(&b, &m)) == 1) {
		char *out = malloc(m.payload_len + 1);
		size_t n = wk_batch_compact(m.payload, m.payload_len, out);
		json_array_append_new(msgs, json_pack("{s:s% s:s%}", "key", m.key ? m.key : "(null)",
						      m.key ? m.key_len : 6, "payload", out, n));
		free(out);
	}
	free(copy);
	return rc;
}

Test(batch, reads_the_text_postgresql_prints_for_a_jsonb_batch)
{
	const char *text =
		"[{\"key\": \"900:17\", \"payload\": {\"v\": 1, \"at\": \"2026-11-26T07:00:00.000Z\", \"type\":"
		" \"job.started\", \"lead_id\": 17}}, {\"key\": null, \"payload\": [1, 2.5e-3, \"a \\\"b\\\" "
		"\\u00e9\", true, false, null, {}, []]}]";
	json_t *msgs = json_array();
	cr_assert_eq(read_all(text, strlen(text), msgs), 0);
	cr_assert_eq(json_array_size(msgs), 2);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "key")), "900:17");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "payload")),
			 "{\"v\":1,\"at\":\"2026-11-26T07:00:00.000Z\",\"type\":\"job.started\",\"lead_id\":17}");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "key")), "(null)");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "payload")),
			 "[1,2.5e-3,\"a \\\"b\\\" \\u00e9\",true,false,null,{},[]]",
			 "spaces inside strings stay, escapes are copied as they are");
	json_decref(msgs);
}

Test(batch, an_empty_batch_has_no_messages)
{
	json_t *msgs = json_array();
	cr_expect_eq(read_all("[]", 2, msgs), 0);
	cr_expect_eq(read_all(" [ \n ] ", 7, msgs), 0);
	cr_expect_eq(json_array_size(msgs), 0);
	json_decref(msgs);
}

Test(batch, refuses_what_it_does_not_read)
{
	static const char *bad[] = {
		"",
		"{}",
		"[1]",
		"[{}]",
		"[{\"key\": \"a\"}]",				      /* no payload */
		"[{\"key\": \"a\\u0041\", \"payload\": 1}]",	      /* a key with an escape: jansson unescapes it */
		"[{\"key\": 5, \"payload\": 1}]",		      /* a key that is not a string */
		"[{\"key\": \"a\", \"key\": \"b\", \"payload\": 1}]", /* a member twice */
		"[{\"key\": \"a\", \"payload\": 1, \"other\": 2}]",   /* another member */
		"[{\"key\": \"a\", \"payload\": 1},]",		      /* a trailing comma */
		"[{\"key\": \"a\", \"payload\": 1}] x",		      /* text after the array */
		"[{\"key\": \"a\", \"payload\": {\"x\": }}]",	      /* no value */
		"[{\"key\": \"a\", \"payload\": {\"x\" 1}}]",	      /* no colon */
		"[{\"key\": \"a\", \"payload\": {1: 1}}]",	      /* a name that is not a string */
		"[{\"key\": \"a\", \"payload\": [1 2]}]",	      /* no comma */
		"[{\"key\": \"a\", \"payload\": [1}]}]",	      /* brackets that do not pair */
		"[{\"key\": \"a\", \"payload\": 01}]",		      /* not a JSON number */
		"[{\"key\": \"a\", \"payload\": 1.}]",
		"[{\"key\": \"a\", \"payload\": -}]",
		"[{\"key\": \"a\", \"payload\": 1e}]",
		"[{\"key\": \"a\", \"payload\": tru}]",
		"[{\"key\": \"a\", \"payload\": \"\\x\"}]", /* not an escape */
		"[{\"key\": \"a\", \"payload\": \"\\u12g4\"}]",
		"[{\"key\": \"a\", \"payload\": \"\\uD83D\\ude00\"}]", /* surrogates: the slow way */
		"[{\"key\": \"a\", \"payload\": \"a\tb\"}]",	       /* a control character in a string */
		"[{\"key\": \"a\", \"payload\": \"open}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *msgs = json_array();
		/* -1 in the end (messages read before it don't count: the relay produces only after a whole pass) */
		cr_expect_eq(read_all(bad[i], strlen(bad[i]), msgs), -1, "%s", bad[i]);
		cr_expect_eq(wk_batch_count(bad[i], strlen(bad[i])), -1, "%s", bad[i]);
		json_decref(msgs);
	}
}

Test(batch, every_cut_short_batch_is_refused)
{
	const char *text = "[{\"key\": \"1:2\", \"payload\": {\"a\": [1, {\"b\": \"c\\\"d\"}], \"e\": -1.5E+3}}, "
			   "{\"key\": null, \"payload\": \"x\"}]";
	size_t len = strlen(text);
	for (size_t cut = 0; cut < len; cut++) {
		json_t *msgs = json_array();
		cr_expect_eq(read_all(text, cut, msgs), -1, "cut at %zu", cut);
		json_decref(msgs);
	}
}

Test(batch, nesting_is_bounded)
{
	char text[512];
	for (int depth = 62; depth <= 64; depth++) {
		int n = snprintf(text, sizeof(text), "[{\"key\": null, \"payload\": ");
		for (int i = 0; i < depth; i++)
			text[n++] = '[';
		for (int i = 0; i < depth; i++)
			text[n++] = ']';
		n += snprintf(text + n, sizeof(text) - (size_t)n, "}]");
		json_t *msgs = json_array();
		/* 63 levels of payload are the most it reads (the batch and the message are two more) */
		cr_expect_eq(read_all(text, (size_t)n, msgs), depth <= 63 ? 0 : -1, "depth %d", depth);
		json_decref(msgs);
	}
}

/* A random JSON value of at most depth levels (a fixed seed: the same values every run). */
static json_t *random_value(unsigned *seed, int depth)
{
	static const char *strings[] = {"",
					"plain",
					"with \"quotes\" and \\ backslash",
					"tab\tnew\nline",
					"\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
					"/slash/",
					"\x01\x1f"};
	switch (rand_r(seed) % (depth > 0 ? 8 : 5)) {
	case 0:
		return json_integer(rand_r(seed) % 2000000 - 1000000);
	case 1:
		return json_real((double)(rand_r(seed) % 100000) / 7.0);
	case 2:
		return json_string(strings[rand_r(seed) % (sizeof(strings) / sizeof(strings[0]))]);
	case 3:
		return rand_r(seed) % 2 ? json_true() : json_false();
	case 4:
		return json_null();
	case 5:
	case 6: {
		json_t *o = json_object();
		int n = rand_r(seed) % 5;
		for (int i = 0; i < n; i++) {
			char k[40];
			snprintf(k, sizeof(k), "k%d \"%d\"", i, rand_r(seed) % 10);
			json_object_set_new(o, k, random_value(seed, depth - 1));
		}
		return o;
	}
	default: {
		json_t *a = json_array();
		int n = rand_r(seed) % 5;
		for (int i = 0; i < n; i++)
			json_array_append_new(a, random_value(seed, depth - 1));
		return a;
	}
	}
}

Test(batch, gives_what_parsing_and_printing_with_jansson_gives)
{
	unsigned seed = 7;
	for (int round = 0; round < 300; round++) {
		json_t *batch = json_array(), *want = json_array();
		int n = rand_r(&seed) % 6;
		for (int i = 0; i < n; i++) {
			char key[32];
			snprintf(key, sizeof(key), "%d:%d", rand_r(&seed) % 1000, rand_r(&seed) % 100000);
			int null_key = rand_r(&seed) % 5 == 0;
			json_t *payload = random_value(&seed, 4);
			json_array_append_new(batch,
					      json_pack("{s:o s:o}", "key", null_key ? json_null() : json_string(key),
							"payload", payload));
			char *text = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
			json_array_append_new(
				want, json_pack("{s:s s:s}", "key", null_key ? "(null)" : key, "payload", text));
			free(text);
		}
		/* as PostgreSQL prints it (", " and ": "), on several lines, and compact */
		static const size_t flags[] = {0, JSON_INDENT(2), JSON_COMPACT};
		for (size_t f = 0; f < 3; f++) {
			char *text = json_dumps(batch, flags[f]);
			json_t *got = json_array();
			cr_assert_eq(read_all(text, strlen(text), got), 0, "%s", text);
			cr_assert(json_equal(got, want), "round %d flags %zu: %s", round, f, text);
			json_decref(got);
			free(text);
		}
		json_decref(batch);
		json_decref(want);
	}
}

Test(batch, count_is_the_number_of_messages_read_to_the_end)
{
	static const struct {
		const char *text;
		int want;
	} c[] = {
		{"[]", 0},
		{" [ ] ", 0},
		{"[{\"key\":\"1:2\",\"payload\":{}}]", 1},
		{"[{\"key\": null, \"payload\": 1}, {\"key\": \"a\", \"payload\": [1, {\"b\": []}]},"
		 " {\"payload\": \"x\", \"key\": \"c\"}]",
		 3},
		{"[{\"key\":\"a\",\"payload\":1},{\"key\":\"a\",\"payload\":1}", -1}, /* no ']' */
		{"[{\"key\":\"a\",\"payload\":1}] x", -1},
		{"{\"key\":\"a\",\"payload\":1}", -1},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		json_t *msgs = json_array();
		int rc = read_all(c[i].text, strlen(c[i].text), msgs);
		cr_expect_eq(wk_batch_count(c[i].text, strlen(c[i].text)), c[i].want, "%s", c[i].text);
		cr_expect_eq(c[i].want == -1 ? rc : (int)json_array_size(msgs), c[i].want, "%s", c[i].text);
		json_decref(msgs);
	}
}
