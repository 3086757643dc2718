/*
 * wk_host_int.h - what wk_host.c (dispatch, findLeads runs) and wk_host_api.c (api.* over libcurl) share.
 * Not a public contract: everyone else includes wk_host.h.
 */
#ifndef WK_HOST_INT_H
#define WK_HOST_INT_H

#include "wk_host.h"

struct wk_host {
	PGconn *conn;	       /* borrowed, may be NULL */
	struct wk_host_opts o; /* o.api_allow_hosts is not used: see allow */
	char **allow;	       /* allow-list patterns, lower case: "a.example" or "*.b.example" */
	size_t nallow;
};

/* Parses "a.example, *.b.example" into h->allow. Returns -1 with errstr on a bad pattern. */
int wk_host_allow_parse(struct wk_host *h, const char *list, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* api.getJson (post = 0) / api.postJson (post = 1). Returns the result or NULL with *oc and errstr. */
json_t *wk_host_api_call(const struct wk_host *h, int post, const json_t *args, enum wk_host_outcome *oc, char *errstr,
			 size_t errstr_size);

#endif
