/*
 * sb_serve.h - the child's side of the sandbox protocol (wk_sandbox.h): greet, then serve runs
 * with one wk_js engine (its MuJS states reused, one bot each) until the socket closes. Host calls (findLeads, api.*) become call frames to
 * the parent, answered before the script goes on.
 */
#ifndef SB_SERVE_H
#define SB_SERVE_H

#include "wk_js.h"

/*
 * Runs one request that touches what the C library and MuJS set up lazily (time zone, qsort's
 * memory probe, stdio, the compile-check state), so that none of it first happens under seccomp.
 */
void sb_serve_warm(const struct wk_js_limits *lim);

/* Greets, then serves runs on fd. Returns the exit status: 0 when the parent closed the socket,
 * 3 when it broke the protocol. A host call whose answer never comes ends the process. */
int sb_serve(int fd, const struct wk_js_limits *lim);

#endif
