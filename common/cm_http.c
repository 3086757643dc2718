/*
 * cm_http.c - see cm_http.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_http.h"
#include "cm_metrics.h"

enum MHD_Result cm_http_text(struct MHD_Connection *c, unsigned status, const char *content_type, const char *text,
			     size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", content_type);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result cm_http_json(struct MHD_Connection *c, unsigned status, const json_t *body, const char *const *headers)
{
	char *s = json_dumps(body, JSON_COMPACT);
	if (!s)
		return MHD_NO;
	size_t len = strlen(s);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, s, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	for (size_t i = 0; headers && headers[i]; i += 2)
		MHD_add_response_header(r, headers[i], headers[i + 1]);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

int cm_http_builtin(struct MHD_Connection *c, const char *method, const char *url, cm_ready_fn ready, void *arg,
		    enum MHD_Result *ret)
{
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return 0;
	if (strcmp(url, "/healthz") == 0) {
		*ret = cm_http_text(c, MHD_HTTP_OK, "text/plain", "ok\n", 3);
		return 1;
	}
	if (strcmp(url, "/readyz") == 0) {
		char why[256] = "";
		int ok = ready ? ready(arg, why, sizeof(why)) : 1;
		char body[300];
		int n = snprintf(body, sizeof(body), "%s%s%s\n", ok ? "ready" : "not ready: ", ok ? "" : why, "");
		*ret = cm_http_text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body, (size_t)n);
		return 1;
	}
	if (strcmp(url, "/metrics") == 0) {
		size_t len;
		char *text = cm_metrics_render(&len);
		*ret = cm_http_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", text ? text : "", text ? len : 0);
		free(text);
		return 1;
	}
	return 0;
}

struct cm_httpd {
	struct MHD_Daemon *d;
	cm_ready_fn ready;
	void *arg;
};

static enum MHD_Result ops_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				   const char *version, const char *upload_data, size_t *upload_data_size,
				   void **req_cls)
{
	struct cm_httpd *h = cls;
	(void)version;
	(void)upload_data;
	if (*req_cls == NULL) {
		*req_cls = h; /* first call: headers only */
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0; /* ignore bodies */
		return MHD_YES;
	}
	enum MHD_Result ret;
	if (cm_http_builtin(c, method, url, h->ready, h->arg, &ret))
		return ret;
	static const char nf[] = "{\"success\":false,\"message\":\"not found\"}";
	return cm_http_text(c, MHD_HTTP_NOT_FOUND, "application/json", nf, sizeof(nf) - 1);
}

int cm_http_addr(const char *host, int port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

struct cm_httpd *cm_httpd_start(const char *host, int port, cm_ready_fn ready, void *arg, char *errstr,
				size_t errstr_size)
{
	struct sockaddr_in sa;
	if (cm_http_addr(host, port, &sa) == -1) {
		snprintf(errstr, errstr_size, "http host '%s' is not an IPv4 address", host);
		return NULL;
	}
	struct cm_httpd *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	h->ready = ready;
	h->arg = arg;
	h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, ops_handler, h,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	if (!h->d) {
		snprintf(errstr, errstr_size, "cannot listen on %s:%d (in use?)", host, port);
		free(h);
		return NULL;
	}
	return h;
}

void cm_httpd_stop(struct cm_httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
