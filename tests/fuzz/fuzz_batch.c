/*
 * fuzz_batch.c - libFuzzer target: the outbox's batch reader (wk_batch.h) against jansson, the slow way
 * the relay takes whenever the reader refuses a row.
 *
 * Input: the text of an outbox row. Checks beyond "no crash, no leak, no undefined behaviour": when the
 * reader reads the whole text (0), jansson parses it too, as an array of as many elements, and each
 * message is that element's: the same key (a string or none), and a compacted payload that is valid JSON,
 * equal to the element's payload, with no whitespace between its tokens. When the reader refuses (-1),
 * nothing is produced from it: the relay then uses jansson, so there is nothing to compare.
 * Seeds: tests/fuzz/corpus/batch/ (tests/fuzz/seeds.py: the texts of tests/unit/test_batch.c and
 * PostgreSQL's printing of the worker's event batches).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wk_batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct wk_batch b;
	struct wk_batch_msg m;
	int n = wk_batch_count(text, size);
	if (n == -1)
		return 0;
	json_error_t err;
	json_t *all = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (!all) {
		/* What the reader leaves to PostgreSQL (UTF-8), and what jansson cannot hold (numbers beyond
		 * int64/double, a NUL in a name), which the slow way would have refused: nothing to compare. */
		enum json_error_code code = json_error_code(&err);
		if (code == json_error_invalid_utf8 || code == json_error_numeric_overflow ||
		    code == json_error_null_byte_in_key)
			return 0;
		abort();
	}
	if (!json_is_array(all) || json_array_size(all) != (size_t)n)
		abort();
	char *out = malloc(size + 1);
	if (!out)
		abort();
	wk_batch_init(&b, text, size);
	for (int i = 0; i < n; i++) {
		if (wk_batch_next(&b, &m) != 1)
			abort();
		const json_t *e = json_array_get(all, (size_t)i);
		const json_t *key = json_object_get(e, "key");
		if (m.key ? !json_is_string(key) || json_string_length(key) != m.key_len ||
				    memcmp(json_string_value(key), m.key, m.key_len) != 0
			  : json_is_string(key))
			abort();
		size_t len = wk_batch_compact(m.payload, m.payload_len, out);
		json_t *payload = json_loadb(out, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		if (!payload || !json_equal(payload, json_object_get(e, "payload")))
			abort();
		json_decref(payload);
		/* compact: no whitespace outside strings */
		int in_string = 0;
		for (size_t k = 0; k < len; k++) {
			if (in_string && out[k] == '\\')
				k++;
			else if (out[k] == '"')
				in_string = !in_string;
			else if (!in_string && strchr(" \t\r\n", out[k]) && out[k] != '\0')
				abort();
		}
	}
	for (int again = 0; again < 2; again++)
		if (wk_batch_next(&b, &m) != 0)
			abort(); /* the count's end, and after the end the end again */
	free(out);
	json_decref(all);
	return 0;
}
