/*
 * cm_frame.c - length-prefixed JSON frames. See cm_frame.h.
 *
 * Writing serializes straight into one buffer behind a reserved header, so a frame leaves in one
 * write(2) when the descriptor takes it, and a message over the cap is refused while it is being
 * serialized instead of after.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_frame.h"
#include "cm_time.h"

struct buf {
	struct cm_buf text;
	size_t max;
	int over;
};

static int buf_put(const char *s, size_t n, void *arg)
{
	struct buf *b = arg;
	if (b->text.len - CM_FRAME_HEADER + n > b->max) {
		b->over = 1;
		return -1;
	}
	return cm_buf_add(&b->text, s, n);
}

/* Waits until fd is ready for events: 1 ready, 0 deadline passed, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline_us)
{
	for (;;) {
		int ms = -1;
		if (deadline_us) {
			int64_t left = deadline_us - cm_time_mono_us();
			if (left <= 0)
				return 0;
			ms = (int)((left + 999) / 1000);
		}
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 1;
		if (n == 0)
			continue; /* re-check the deadline (poll rounds) */
		if (errno != EINTR)
			return -1;
	}
}

/* send(2) with MSG_NOSIGNAL on a socket, so a closed peer is EPIPE and not a SIGPIPE; write(2) otherwise. */
static ssize_t put(int fd, const char *p, size_t n)
{
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
	if (w < 0 && errno == ENOTSOCK)
		w = write(fd, p, n);
	return w;
}

static int write_all(int fd, const char *p, size_t n, int64_t deadline_us, char *errstr, size_t errstr_size)
{
	while (n > 0) {
		ssize_t w = put(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline_us);
			if (r == 1)
				continue;
			if (r == 0) {
				snprintf(errstr, errstr_size, "timed out writing a frame");
				return CM_FRAME_TIMEOUT;
			}
		}
		snprintf(errstr, errstr_size, "writing a frame: %s", strerror(w < 0 ? errno : EIO));
		return CM_FRAME_ERROR;
	}
	return CM_FRAME_OK;
}

int cm_frame_write(int fd, const json_t *msg, size_t max, int64_t deadline_us, char *errstr, size_t errstr_size)
{
	if (max > UINT32_MAX)
		max = UINT32_MAX;
	struct buf b = {.max = max};
	static const char zero[CM_FRAME_HEADER];
	if (buf_put(zero, sizeof(zero), &b) == -1 || json_dump_callback(msg, buf_put, &b, JSON_COMPACT) == -1 ||
	    b.text.len == CM_FRAME_HEADER) {
		int rc = b.over ? CM_FRAME_TOO_LARGE : CM_FRAME_ERROR;
		if (b.over)
			snprintf(errstr, errstr_size, "frame larger than %zu bytes", max);
		else
			snprintf(errstr, errstr_size, "cannot serialize a frame (out of memory or not an object)");
		cm_buf_free(&b.text);
		return rc;
	}
	size_t n = b.text.len - CM_FRAME_HEADER;
	b.text.p[0] = (char)(n >> 24);
	b.text.p[1] = (char)(n >> 16);
	b.text.p[2] = (char)(n >> 8);
	b.text.p[3] = (char)n;
	int rc = write_all(fd, b.text.p, b.text.len, deadline_us, errstr, errstr_size);
	cm_buf_free(&b.text);
	return rc;
}

/* Reads exactly n bytes. *got tells how many came before an error or EOF. */
static int read_all(int fd, char *p, size_t n, size_t *got, int64_t deadline_us, char *errstr, size_t errstr_size)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = read(fd, p + *got, n - *got);
		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		if (r == 0) {
			snprintf(errstr, errstr_size, "the peer closed the stream");
			return CM_FRAME_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int w = wait_fd(fd, POLLIN, deadline_us);
			if (w == 1)
				continue;
			if (w == 0) {
				snprintf(errstr, errstr_size, "timed out reading a frame");
				return CM_FRAME_TIMEOUT;
			}
		}
		if (errno == ECONNRESET) {
			snprintf(errstr, errstr_size, "the peer closed the stream");
			return CM_FRAME_EOF;
		}
		snprintf(errstr, errstr_size, "reading a frame: %s", strerror(errno));
		return CM_FRAME_ERROR;
	}
	return CM_FRAME_OK;
}

int cm_frame_read(int fd, size_t max, int64_t deadline_us, json_t **out, char *errstr, size_t errstr_size)
{
	unsigned char h[CM_FRAME_HEADER];
	size_t got;
	*out = NULL;
	int rc = read_all(fd, (char *)h, sizeof(h), &got, deadline_us, errstr, errstr_size);
	if (rc != CM_FRAME_OK) {
		if (rc == CM_FRAME_EOF && got > 0) {
			snprintf(errstr, errstr_size, "the stream ended inside a frame header");
			return CM_FRAME_ERROR;
		}
		return rc;
	}
	size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | (size_t)h[3];
	if (n == 0 || n > max) {
		snprintf(errstr, errstr_size, "frame of %zu bytes (allowed: 1 to %zu)", n, max);
		return n ? CM_FRAME_TOO_LARGE : CM_FRAME_ERROR;
	}
	char *body = malloc(n);
	if (!body) {
		snprintf(errstr, errstr_size, "out of memory for a frame of %zu bytes", n);
		return CM_FRAME_ERROR;
	}
	rc = read_all(fd, body, n, &got, deadline_us, errstr, errstr_size);
	if (rc != CM_FRAME_OK) {
		free(body);
		if (rc == CM_FRAME_EOF) {
			snprintf(errstr, errstr_size, "the stream ended inside a frame (%zu of %zu bytes)", got, n);
			return CM_FRAME_ERROR;
		}
		return rc;
	}
	json_error_t jerr;
	json_t *v = json_loadb(body, n, JSON_ALLOW_NUL, &jerr);
	free(body);
	if (!v || !json_is_object(v)) {
		snprintf(errstr, errstr_size, "frame is not a JSON object%s%s", v ? "" : ": ", v ? "" : jerr.text);
		json_decref(v);
		return CM_FRAME_ERROR;
	}
	*out = v;
	return CM_FRAME_OK;
}
