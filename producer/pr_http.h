/*
 * pr_http.h - the producer's HTTP server (libmicrohttpd): reads request bodies with a size cap and a
 * read timeout, hands complete requests to a handler, and lets the handler answer later from another
 * thread (the Kafka delivery report) without holding an HTTP thread: the connection is suspended
 * until the answer is there.
 *
 * A handler answers exactly once: pr_req_answer() (while it runs, or later from any thread after
 * pr_req_defer()). Bodies of answers are stolen JSON.
 */
#ifndef PR_HTTP_H
#define PR_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include "cm_compiler.h"
#include "cm_http.h"

struct pr_http_opts {
	const char *host;
	int port;
	int threads;	      /* HTTP worker threads */
	size_t max_body;      /* bytes; more is answered 413 */
	int read_timeout_sec; /* a connection idle, or slower to send its headers or body, is closed after this */
	int max_connections;
	int max_per_ip; /* concurrent connections from one address, 0 = no limit */
	int access_log; /* one log line per request */
};

struct pr_req;
typedef void (*pr_handler_fn)(void *ctx, struct pr_req *req, const char *method, const char *url);

struct pr_http;

struct pr_http *pr_http_start(const struct pr_http_opts *o, pr_handler_fn handler, void *ctx, cm_ready_fn ready,
			      void *ready_arg, char *errstr, size_t errstr_size) CM_MUSTCHECK;
/* Stops accepting new connections (the port is released); requests in progress go on. */
void pr_http_quiesce(struct pr_http *h);
/* Waits up to timeout_ms for deferred requests to be answered, then stops the server. NULL-safe. */
void pr_http_stop(struct pr_http *h, int timeout_ms);

const char *pr_req_header(struct pr_req *r, const char *name); /* NULL when absent */
/* The route's name for metrics and the access log ("schedule", "job", ...); borrowed, static. */
void pr_req_set_route(struct pr_req *r, const char *route);
/* A subject for the access log line (key is static; value is copied). At most 3. */
void pr_req_set_subject(struct pr_req *r, const char *key, const char *value);
const char *pr_req_query(struct pr_req *r, const char *name); /* a query-string argument */
const char *pr_req_body(struct pr_req *r, size_t *len);
/* The answer: status, body (stolen; NULL = no body), optional Retry-After seconds (0 = none). */
void pr_req_answer(struct pr_req *r, unsigned status, json_t *body, int retry_after_sec);
/* Promises an answer from another thread later (the connection is suspended until then). */
void pr_req_defer(struct pr_req *r);
/* Answers with a ready-made body of any type (for /api/docs). Copies text. */
void pr_req_answer_text(struct pr_req *r, unsigned status, const char *content_type, const char *text, size_t len);

/* Failure answer in the API's one error shape:
 * {"success":false,"message":message,"errors":errors}. errors is stolen and may be NULL. */
void pr_req_error(struct pr_req *r, unsigned status, const char *message, json_t *errors, int retry_after_sec);
/* That shape as JSON (a new reference; errors is stolen, NULL or empty = no "errors"). Bytes of message
 * that are not UTF-8 become U+FFFD, so a message quoting a client's bytes still makes an answer. */
json_t *pr_error_body(const char *message, json_t *errors);

#endif
