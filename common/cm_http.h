/*
 * cm_http.h - libmicrohttpd helpers both binaries use: JSON answers, and the operational
 * endpoints /healthz (the process is alive), /readyz (it can do its work now) and /metrics.
 */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>
#include "cm_compiler.h"

/* Says whether the process is ready; on "no", writes why. Called from HTTP threads. */
typedef int (*cm_ready_fn)(void *arg, char *why, size_t why_size);

/* Queues a JSON response with status (body borrowed). Extra headers: NULL-terminated name/value pairs. */
enum MHD_Result cm_http_json(struct MHD_Connection *c, unsigned status, const json_t *body, const char *const *headers);
enum MHD_Result cm_http_text(struct MHD_Connection *c, unsigned status, const char *content_type, const char *text,
			     size_t len);

/*
 * If url is /healthz, /readyz or /metrics (GET or HEAD), queues the answer into *ret and returns 1;
 * else returns 0 and leaves *ret alone.
 */
int cm_http_builtin(struct MHD_Connection *c, const char *method, const char *url, cm_ready_fn ready, void *arg,
		    enum MHD_Result *ret);

struct cm_httpd;
/* A daemon that only serves the operational endpoints (the worker's). host "0.0.0.0" = all addresses. */
struct cm_httpd *cm_httpd_start(const char *host, int port, cm_ready_fn ready, void *arg, char *errstr,
				size_t errstr_size) CM_MUSTCHECK;
void cm_httpd_stop(struct cm_httpd *h); /* NULL-safe */

/* Fills a sockaddr_in for host:port. Returns -1 when host is not an IPv4 address. */
struct sockaddr_in;
int cm_http_addr(const char *host, int port, struct sockaddr_in *sa) CM_MUSTCHECK;

#endif
