/*
 * fuzz_frame.c - libFuzzer target: the sandbox protocol's frame decoder (cm_frame_read), on a stream
 * of arbitrary bytes from the peer, as the worker reads a (possibly subverted) sandbox child and the
 * child reads the worker.
 *
 * Input: the bytes the peer sends, then end of stream. The first byte picks the reader's cap (as
 * max, 1 << (byte % 20): from 1 byte up to 512 KiB), so the size checks meet frames on both sides of
 * the cap. Frames are read until one is refused or the stream ends.
 * Checks beyond "no crash, no leak, no undefined behaviour":
 *   - every result is one of enum cm_frame_rc, an object only with CM_FRAME_OK, a reason otherwise;
 *   - a decoded frame written back with cm_frame_write and read again is the same JSON.
 * Seeds: tests/fuzz/corpus/frame/ (the frames of tests/unit/test_frame.c and test_sandbox.c).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const json_t *m)
{
	int sv[2];
	char err[300];
	json_t *back = NULL;
	/* Nobody reads while it is written: keep it within the socket's buffer. */
	if (json_dumpb(m, NULL, 0, JSON_COMPACT) > 100000)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	/* Both ends non-blocking with a deadline: the worker's way (the child blocks; fuzz_frame reads that way). */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	int rc = cm_frame_write(sv[0], m, 1 << 20, 0, err, sizeof(err));
	if (rc != CM_FRAME_OK) {
		fprintf(stderr, "cannot write back a frame we read: %s\n", err);
		abort();
	}
	close(sv[0]);
	rc = cm_frame_read(sv[1], 1 << 20, 0, &back, err, sizeof(err));
	if (rc != CM_FRAME_OK || !json_equal(m, back)) {
		fprintf(stderr, "round trip: rc %d (%s)\n", rc, err);
		abort();
	}
	json_decref(back);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 100000)
		return 0; /* the socket's buffer takes it all before the first read */
	size_t max = (size_t)1 << (data[0] % 20);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	if (size > 1 && write(sv[0], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(sv[0]);
	for (;;) {
		char err[300] = "";
		json_t *m = (json_t *)(uintptr_t)1;
		int rc = cm_frame_read(sv[1], max, 0, &m, err, sizeof(err));
		if (rc == CM_FRAME_OK) {
			if (!json_is_object(m))
				abort();
			round_trip(m);
			json_decref(m);
			continue;
		}
		if (m != NULL || !err[0] || (rc != CM_FRAME_ERROR && rc != CM_FRAME_EOF && rc != CM_FRAME_TOO_LARGE))
			abort();
		break;
	}
	close(sv[1]);
	return 0;
}
