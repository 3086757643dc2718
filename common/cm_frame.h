/*
 * cm_frame.h - length-prefixed JSON frames on a stream file descriptor (a socket or a pipe).
 *
 * A frame is a 4-byte big-endian length n (1..max) followed by n bytes of compact JSON text: one
 * object (strings may hold \u0000). The worker and its sandbox children talk in frames (wk_sandbox.h
 * has that protocol).
 *
 * Deadlines are cm_time_mono_us() values; 0 means none (block). The descriptor may be blocking
 * (the calls then never poll: a sandbox child needs no poll(2)) or non-blocking (they wait in
 * poll(2) until the deadline). After any result but CM_FRAME_OK and CM_FRAME_TOO_LARGE from
 * cm_frame_write, the stream is out of step and only fit to be closed.
 */
#ifndef CM_FRAME_H
#define CM_FRAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"

#define CM_FRAME_HEADER 4

enum cm_frame_rc {
	CM_FRAME_OK = 0,
	CM_FRAME_ERROR = -1,	 /* I/O error or malformed frame (errstr says which) */
	CM_FRAME_EOF = -2,	 /* the peer closed the stream before the first byte of a frame */
	CM_FRAME_TIMEOUT = -3,	 /* the deadline passed */
	CM_FRAME_TOO_LARGE = -4, /* longer than max: when writing, nothing was written */
};

/* Writes msg (borrowed; an object or array) as one frame. Returns an enum cm_frame_rc. */
int cm_frame_write(int fd, const json_t *msg, size_t max, int64_t deadline_us, char *errstr,
		   size_t errstr_size) CM_MUSTCHECK;

/* Reads one frame; on CM_FRAME_OK *out is a new reference to a JSON object. Returns an enum cm_frame_rc. */
int cm_frame_read(int fd, size_t max, int64_t deadline_us, json_t **out, char *errstr, size_t errstr_size) CM_MUSTCHECK;

#endif
