/*
 * wk_js_int.h - what wk_js.c (the engine), wk_js_api.c (the bot API) and wk_js_script.c (dialog
 * scripts) share. Private to those three files.
 */
#ifndef WK_JS_INT_H
#define WK_JS_INT_H

#include <jansson.h>
#include <mujs.h>
#include <stddef.h>
#include "wk_js.h"

#define WK_JS_MAX_DEPTH 64
#define WK_JS_REQUEST_JSON "bj:request.json" /* registry key: this run's request.json */

/* One run: its request, its working copies of the state, and the effects it has recorded so far. */
struct run {
	const json_t *req;
	const struct wk_js_limits *lim;
	const struct wk_js_host *host;
	size_t calls;
	json_t *api_headers; /* api.setHeaders */
	int api_status;	     /* api.getLastResponseCode */
	/* working copies */
	json_t *lead;	   /* req.lead, borrowed (NULL when the job has no lead) */
	json_t *attrs;	   /* lead attributes */
	json_t *tags;	   /* lead tags, an array */
	json_t *bot_attrs; /* bot attributes */
	json_t *memory;
	json_t *ticket; /* ticket data, NULL when no ticket */
	/* effects */
	json_t *lead_set, *lead_del, *tags_add, *tags_del, *status_name;
	json_t *bot_set, *bot_del, *ticket_set;
	json_t *messages, *jobs, *log;
};

/* wk_js.c */
struct run *wk_js_cur(js_State *J); /* the run in progress on J */
void wk_js_push(js_State *J, const json_t *v, int depth);
void wk_js_push_or_null(js_State *J, const json_t *v);
/* The value at idx as JSON (a new reference); functions and undefined become null. Throws on depth. */
json_t *wk_js_value(js_State *J, int idx, int depth);
/* Calls a function body (compiled once per state). 0 with the result on the stack, or -1 with errstr. */
int wk_js_call_body(js_State *J, const char *body, const char *what, char *errstr, size_t errstr_size, int *line);
/* A condition's verdict: 1, 0, or -1 with errstr. Empty = 1. */
int wk_js_condition(js_State *J, const char *cond, const char *what, char *errstr, size_t errstr_size, int *line);

/* wk_js_api.c */
void wk_js_def_api(js_State *J); /* the globals of SPEC §4, once per state; they read wk_js_cur() */
struct run *wk_js_need_lead(js_State *J);
void wk_js_set_in(json_t *working, json_t *set, json_t *del, const char *k, json_t *v);
void wk_js_tag_add(struct run *r, const char *t);
void wk_js_tag_del(struct run *r, const char *t);
void wk_js_each_tag(js_State *J, int idx, void (*fn)(struct run *, const char *), const char *name);
json_t *wk_js_job_envelope(struct run *r, const json_t *params, char *err, size_t errsz);

/* wk_js_script.c */
int wk_js_script(js_State *J, struct run *r, const json_t *cmds, const char *name, char *err, size_t errsz, int *line);
int wk_js_handoffs(struct run *r, const char *name, char *err, size_t errsz);

#endif
