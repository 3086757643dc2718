/*
 * test_frame.c - length-prefixed JSON frames (cm_frame.h): round trips, caps, EOF, truncation, deadlines.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_frame.h"
#include "cm_time.h"

static void pair(int sv[2], int nonblocking)
{
	cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	if (nonblocking) {
		fcntl(sv[0], F_SETFL, O_NONBLOCK);
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
	}
}

Test(frame, round_trips)
{
	static const char *cases[] = {
		"{}",
		"{\"type\":\"run\",\"v\":1,\"req\":{\"a\":[1,2.5,\"\\u00fc\",null,true,{\"b\":-0.1}]}}",
		"{\"big\":1e300,\"int\":9007199254740993,\"nul\":\"a\\u0000b\"}",
	};
	int sv[2];
	pair(sv, 1);
	for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
		char err[200];
		json_t *in = json_loads(cases[i], JSON_ALLOW_NUL, NULL), *out = NULL;
		cr_assert(in, "case %zu", i);
		cr_assert_eq(cm_frame_write(sv[0], in, 1024, 0, err, sizeof(err)), CM_FRAME_OK, "case %zu: %s", i, err);
		cr_assert_eq(cm_frame_read(sv[1], 1024, 0, &out, err, sizeof(err)), CM_FRAME_OK, "case %zu: %s", i,
			     err);
		char *g = json_dumps(out, JSON_COMPACT), *w = json_dumps(in, JSON_COMPACT);
		cr_expect(json_equal(in, out), "case %zu: got %s, want %s", i, g, w);
		free(g), free(w);
		json_decref(in), json_decref(out);
	}
	close(sv[0]), close(sv[1]);
}

Test(frame, caps_and_malformed_frames)
{
	static const struct {
		const char *label;
		const char *bytes;
		size_t n;
		int want;
		const char *want_err;
	} cases[] = {
		{"over the cap", "\0\0\1\0{}", 6, CM_FRAME_TOO_LARGE, "frame of 256 bytes (allowed: 1 to 100)"},
		{"empty", "\0\0\0\0", 4, CM_FRAME_ERROR, "frame of 0 bytes"},
		{"not JSON", "\0\0\0\3abc", 7, CM_FRAME_ERROR, "frame is not a JSON object"},
		{"an array", "\0\0\0\2[]", 6, CM_FRAME_ERROR, "frame is not a JSON object"},
		{"cut in the header", "\0\0", 2, CM_FRAME_ERROR, "inside a frame header"},
		{"cut in the body", "\0\0\0\x0a{\"a\":", 9, CM_FRAME_ERROR, "inside a frame (5 of 10 bytes)"},
		{"nothing", "", 0, CM_FRAME_EOF, "closed"},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
		int sv[2];
		char err[200] = "";
		json_t *out = NULL;
		pair(sv, 0);
		cr_assert_eq(write(sv[0], cases[i].bytes, cases[i].n), (ssize_t)cases[i].n);
		close(sv[0]);
		int rc = cm_frame_read(sv[1], 100, 0, &out, err, sizeof(err));
		cr_expect_eq(rc, cases[i].want, "%s: got %d, want %d (%s)", cases[i].label, rc, cases[i].want, err);
		cr_expect(strstr(err, cases[i].want_err) != NULL, "%s: got '%s', want '%s'", cases[i].label, err,
			  cases[i].want_err);
		cr_expect_null(out, "%s", cases[i].label);
		close(sv[1]);
	}
}

Test(frame, a_message_over_the_cap_is_not_written)
{
	int sv[2];
	char err[200];
	pair(sv, 1);
	json_t *m = json_pack("{ss}", "text", "0123456789012345678901234567890123456789");
	cr_expect_eq(cm_frame_write(sv[0], m, 20, 0, err, sizeof(err)), CM_FRAME_TOO_LARGE);
	cr_expect(strstr(err, "larger than 20 bytes") != NULL, "got '%s'", err);
	char b;
	cr_expect_eq(read(sv[1], &b, 1), -1, "nothing reached the peer");
	json_decref(m);
	close(sv[0]), close(sv[1]);
}

Test(frame, deadlines_on_non_blocking_descriptors)
{
	int sv[2];
	char err[200];
	json_t *out = NULL;
	pair(sv, 1);
	int64_t t0 = cm_time_mono_us();
	cr_expect_eq(cm_frame_read(sv[1], 100, t0 + 50000, &out, err, sizeof(err)), CM_FRAME_TIMEOUT, "%s", err);
	int64_t took = cm_time_mono_us() - t0;
	cr_expect(took >= 50000 && took < 1000000, "took %lld µs", (long long)took);

	/* A peer that does not read: the write waits for room, then gives up at the deadline. */
	json_t *big = json_pack("{ss}", "x", "");
	char *s = malloc(8 << 20);
	memset(s, 'x', (8 << 20) - 1);
	s[(8 << 20) - 1] = '\0';
	json_object_set_new(big, "x", json_string(s));
	free(s);
	cr_expect_eq(cm_frame_write(sv[0], big, 16 << 20, cm_time_mono_us() + 50000, err, sizeof(err)),
		     CM_FRAME_TIMEOUT, "%s", err);
	json_decref(big);

	/* A closed peer is an error, not a SIGPIPE. */
	close(sv[1]);
	json_t *m = json_pack("{si}", "a", 1);
	cr_expect_eq(cm_frame_write(sv[0], m, 100, 0, err, sizeof(err)), CM_FRAME_ERROR);
	json_decref(m);
	close(sv[0]);
}
