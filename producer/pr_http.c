/*
 * pr_http.c - see pr_http.h.
 *
 * Life of a request: MHD calls access() first with the headers (we allocate struct pr_req and reject
 * an announced oversized body at once), then with body chunks (copied, up to max_body), then a last
 * time with no data: the handler runs. If it deferred, the connection is suspended under the
 * request's mutex; pr_req_answer() from the other thread takes the same mutex, so it can only resume
 * a connection that has been suspended. MHD calls access() once more after the resume and the
 * answer is queued. completed() frees the request.
 *
 * Slow clients: MHD's connection timeout is an idle timeout, which a client sending its headers one byte
 * at a time never meets (slowloris). Every connection is therefore tracked from its accept (or the end of
 * its previous request) until its headers are complete; a reaper thread shuts the socket of one that
 * takes longer than read_timeout_sec, and MHD then closes it as a peer that went away. A trickled body
 * is cut by access() itself (408). MHD notifies a connection's end before it closes the descriptor, and
 * both happen under conns_mu, so the reaper never touches a descriptor that was reused.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_time.h"
#include "pr_http.h"
#include "pr_metrics.h"

struct pr_http {
	struct MHD_Daemon *d;
	struct pr_http_opts o;
	pr_handler_fn handler;
	void *ctx;
	cm_ready_fn ready;
	void *ready_arg;
	atomic_int deferred; /* requests waiting for an answer from another thread */
	atomic_int active;   /* requests allocated and not yet completed */
	pthread_mutex_t conns_mu;
	struct conn *conns; /* every open connection (slowloris guard) */
	pthread_t reaper;
	atomic_int stopping;
};

/* An open connection, from MHD's STARTED notification to its CLOSED one. Fields under conns_mu. */
struct conn {
	struct conn *prev, *next;
	int fd;
	int64_t since_us; /* accepted, or its previous request completed */
	int reading_head; /* its request line and headers are not complete yet */
	int cut;	  /* shut by the reaper */
};

enum phase { READING, HANDLED };

struct pr_req {
	pthread_mutex_t mu;
	struct pr_http *h;
	struct MHD_Connection *conn;
	char *body;
	size_t len, cap;
	int too_large;
	enum phase phase;
	int deferred, suspended, answered, queued;
	unsigned status;
	char *content_type;
	char *text; /* the answer body */
	size_t text_len;
	int retry_after;
	int64_t start_us;
	const char *route;
	char *method, *url;
	struct {
		const char *k;
		char *v;
	} subject[3];
	int nsubject;
};

void pr_req_set_route(struct pr_req *r, const char *route)
{
	r->route = route;
}

void pr_req_set_subject(struct pr_req *r, const char *key, const char *value)
{
	if (r->nsubject < 3 && value) {
		r->subject[r->nsubject].k = key;
		r->subject[r->nsubject].v = strdup(value);
		r->nsubject++;
	}
}

static const char *reject_reason(unsigned status)
{
	switch (status) {
	case 400:
		return "bad_json";
	case 401:
		return "auth";
	case 403:
		return "tenancy";
	case 404:
		return "not_found";
	case 405:
		return "method";
	case 408:
		return "slow_client";
	case 409:
		return "conflict";
	case 413:
		return "too_large";
	case 415:
		return "content_type";
	case 422:
		return "validation";
	case 429:
		return "rate_limited";
	case 503:
		return "unavailable";
	default:
		return status >= 500 ? "internal" : NULL;
	}
}

static void access_log(struct pr_req *r, double secs)
{
	char status[8], ms[24], remote[64] = "";
	snprintf(status, sizeof(status), "%u", r->status);
	snprintf(ms, sizeof(ms), "%.3f", secs * 1000);
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr, remote,
			  sizeof(remote));
	struct cm_kv kv[8] = {{"method", r->method},
			      {"path", r->url},
			      {"status", status},
			      {"ms", ms},
			      {"remote", remote[0] ? remote : NULL}};
	size_t n = 5;
	for (int i = 0; i < r->nsubject; i++)
		kv[n++] = (struct cm_kv){r->subject[i].k, r->subject[i].v};
	cm_log_kv(r->status >= 500 ? CM_LOG_WARN : CM_LOG_INFO, kv, n, "request");
}

const char *pr_req_header(struct pr_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *pr_req_query(struct pr_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *pr_req_body(struct pr_req *r, size_t *len)
{
	*len = r->len;
	return r->body ? r->body : "";
}

static void set_answer(struct pr_req *r, unsigned status, const char *content_type, char *text, size_t len,
		       int retry_after)
{
	r->status = status;
	free(r->content_type);
	r->content_type = strdup(content_type);
	free(r->text);
	r->text = text;
	r->text_len = len;
	r->retry_after = retry_after;
	r->answered = 1;
}

void pr_req_answer(struct pr_req *r, unsigned status, json_t *body, int retry_after_sec)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	pthread_mutex_lock(&r->mu);
	if (r->answered) {
		pthread_mutex_unlock(&r->mu);
		free(text);
		return;
	}
	set_answer(r, status, "application/json", text, text ? strlen(text) : 0, retry_after_sec);
	if (r->deferred) {
		atomic_fetch_sub(&r->h->deferred, 1);
		if (r->suspended) {
			r->suspended = 0;
			MHD_resume_connection(r->conn);
		}
	}
	pthread_mutex_unlock(&r->mu);
}

void pr_req_answer_text(struct pr_req *r, unsigned status, const char *content_type, const char *text, size_t len)
{
	char *copy = malloc(len + 1);
	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
	}
	pthread_mutex_lock(&r->mu);
	set_answer(r, status, content_type, copy, copy ? len : 0, 0);
	pthread_mutex_unlock(&r->mu);
}

void pr_req_defer(struct pr_req *r)
{
	/* Called by the handler, which runs under r->mu (see access()). */
	r->deferred = 1;
	atomic_fetch_add(&r->h->deferred, 1);
}

void pr_req_error(struct pr_req *r, unsigned status, const char *message, json_t *errors, int retry_after_sec)
{
	pr_req_answer(r, status, pr_error_body(message, errors), retry_after_sec);
}

static enum MHD_Result queue_answer(struct pr_req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		r->text_len, r->text ? r->text : (void *)"", r->text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	r->text = NULL; /* owned by the response now */
	r->queued = 1;
	MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
	if (r->retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", r->retry_after);
		MHD_add_response_header(resp, "Retry-After", ra);
	}
	enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	double secs = (double)(cm_time_mono_us() - r->start_us) / 1e6;
	pr_metrics_request(r->route ? r->route : "other", r->status, secs);
	const char *reason = reject_reason(r->status);
	if (reason)
		pr_metrics_rejected(reason);
	if (r->h->o.access_log)
		access_log(r, secs);
	return ret;
}

static enum MHD_Result error_now(struct pr_req *r, unsigned status, const char *message, const char *field,
				 const char *rule)
{
	json_t *errors = NULL;
	if (field) {
		errors = json_object();
		json_object_set_new(errors, field, json_pack("[s]", rule));
	}
	pr_req_error(r, status, message, errors, 0);
	return queue_answer(r);
}

/* Connection tracking for the slowloris guard (see the top of the file). */
static void conn_cb(void *cls, struct MHD_Connection *connection, void **socket_context,
		    enum MHD_ConnectionNotificationCode toe)
{
	struct pr_http *h = cls;
	struct conn *c = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(c = calloc(1, sizeof(*c))))
			return; /* untracked: MHD's idle timeout still applies */
		c->fd = ci->connect_fd;
		c->since_us = cm_time_mono_us();
		c->reading_head = 1;
		pthread_mutex_lock(&h->conns_mu);
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->conns_mu);
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	pthread_mutex_lock(&h->conns_mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&h->conns_mu);
	free(c);
	*socket_context = NULL;
}

static void conn_mark(struct pr_http *h, struct MHD_Connection *conn, int reading_head)
{
	const union MHD_ConnectionInfo *ci =
		conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
	struct conn *c = ci ? ci->socket_context : NULL;
	if (!c)
		return;
	pthread_mutex_lock(&h->conns_mu);
	c->reading_head = reading_head;
	c->since_us = cm_time_mono_us();
	pthread_mutex_unlock(&h->conns_mu);
}

static void *reaper_main(void *arg)
{
	struct pr_http *h = arg;
	const int64_t limit_us = (int64_t)h->o.read_timeout_sec * CM_US_PER_SEC;
	while (!atomic_load(&h->stopping)) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
		int64_t now = cm_time_mono_us();
		int cut = 0;
		pthread_mutex_lock(&h->conns_mu);
		for (struct conn *c = h->conns; c; c = c->next) {
			if (c->reading_head && !c->cut && now - c->since_us > limit_us) {
				shutdown(c->fd, SHUT_RDWR);
				c->cut = 1;
				cut++;
			}
		}
		pthread_mutex_unlock(&h->conns_mu);
		if (cut)
			cm_log_info("http: closed %d connection(s) that sent no complete request headers within %d s",
				    cut, h->o.read_timeout_sec);
	}
	return NULL;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct pr_http *h = cls;
	struct pr_req *r = *req_cls;
	(void)version;

	if (!r) {
		enum MHD_Result ret;
		conn_mark(h, conn, 0);
		if (cm_http_builtin(conn, method, url, h->ready, h->ready_arg, &ret))
			return ret;
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		/* Recursive: the handler runs under mu and may answer synchronously. */
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&r->mu, &ma);
		pthread_mutexattr_destroy(&ma);
		atomic_fetch_add(&h->active, 1);
		cm_metric_add(&pr_m_in_flight, 1);
		r->h = h;
		r->conn = conn;
		r->start_us = cm_time_mono_us();
		r->method = strdup(method);
		r->url = strdup(url);
		*req_cls = r;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > h->o.max_body) {
			char rule[64];
			snprintf(rule, sizeof(rule), "must be at most %zu bytes", h->o.max_body);
			r->phase = HANDLED;
			return error_now(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", "body", rule);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->phase != READING || r->too_large)
			return MHD_YES;
		if (cm_time_mono_us() - r->start_us > (int64_t)h->o.read_timeout_sec * 1000000) {
			/* A client trickling its body: answer and close, do not hold the connection. */
			r->phase = HANDLED;
			char rule[96];
			snprintf(rule, sizeof(rule), "must arrive within %d s", h->o.read_timeout_sec);
			return error_now(r, MHD_HTTP_REQUEST_TIMEOUT, "request body too slow", "body", rule);
		}
		if (r->len + n > h->o.max_body) {
			/* Answer now: MHD closes the connection instead of reading the rest. */
			r->too_large = 1;
			free(r->body);
			r->body = NULL;
			r->phase = HANDLED;
			char rule[64];
			snprintf(rule, sizeof(rule), "must be at most %zu bytes", h->o.max_body);
			return error_now(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", "body", rule);
		}
		if (r->len + n + 1 > r->cap) {
			size_t cap = r->cap ? r->cap : 1024;
			while (cap < r->len + n + 1)
				cap *= 2;
			char *nb = realloc(r->body, cap);
			if (!nb)
				return MHD_NO;
			r->body = nb;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload_data, n);
		r->len += n;
		r->body[r->len] = '\0';
		return MHD_YES;
	}
	if (r->phase == READING) {
		r->phase = HANDLED;
		pthread_mutex_lock(&r->mu);
		h->handler(h->ctx, r, method, url);
		if (!r->answered && !r->deferred)
			set_answer(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json",
				   strdup("{\"success\":false,\"message\":\"internal error: no answer\"}"), 53, 0);
		if (!r->answered) {
			r->suspended = 1;
			MHD_suspend_connection(conn);
			pthread_mutex_unlock(&r->mu);
			return MHD_YES;
		}
		pthread_mutex_unlock(&r->mu);
		return queue_answer(r);
	}
	/* Called again: after the resume of a deferred request, or after an early answer. */
	pthread_mutex_lock(&r->mu);
	int ready = r->answered && !r->queued;
	pthread_mutex_unlock(&r->mu);
	return ready ? queue_answer(r) : MHD_YES;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	struct pr_http *h = cls;
	struct pr_req *r = *req_cls;
	(void)toe;
	conn_mark(h, conn, 1); /* a kept-alive connection has read_timeout_sec for its next request's headers */
	if (!r)
		return;
	atomic_fetch_sub(&h->active, 1);
	cm_metric_add(&pr_m_in_flight, -1);
	pthread_mutex_destroy(&r->mu);
	for (int i = 0; i < r->nsubject; i++)
		free(r->subject[i].v);
	free(r->method);
	free(r->url);
	free(r->body);
	free(r->text);
	free(r->content_type);
	free(r);
	*req_cls = NULL;
}

struct pr_http *pr_http_start(const struct pr_http_opts *o, pr_handler_fn handler, void *ctx, cm_ready_fn ready,
			      void *ready_arg, char *errstr, size_t errstr_size)
{
	struct sockaddr_in sa;
	if (cm_http_addr(o->host, o->port, &sa) == -1) {
		snprintf(errstr, errstr_size, "http host '%s' is not an IPv4 address", o->host);
		return NULL;
	}
	struct pr_http *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	h->o = *o;
	h->handler = handler;
	h->ctx = ctx;
	h->ready = ready;
	h->ready_arg = ready_arg;
	pthread_mutex_init(&h->conns_mu, NULL);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)o->read_timeout_sec, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned)o->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				MHD_OPTION_NOTIFY_COMPLETED, completed_cb, h, MHD_OPTION_NOTIFY_CONNECTION, conn_cb, h,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_per_ip,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
	if (!h->d) {
		snprintf(errstr, errstr_size, "cannot listen on %s:%d (in use?)", o->host, o->port);
		goto err;
	}
	if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
		snprintf(errstr, errstr_size, "cannot start the slow-client reaper thread");
		MHD_stop_daemon(h->d);
		goto err;
	}
	return h;
err:
	pthread_mutex_destroy(&h->conns_mu);
	free(h);
	return NULL;
}

void pr_http_quiesce(struct pr_http *h)
{
	if (h && h->d) {
		MHD_socket s = MHD_quiesce_daemon(h->d);
		if (s != MHD_INVALID_SOCKET)
			close(s);
	}
}

void pr_http_stop(struct pr_http *h, int timeout_ms)
{
	if (!h)
		return;
	/* MHD aborts when stopped with suspended connections: wait until every deferred one is answered
	 * (the caller has flushed Kafka, so every delivery report has fired) and had a moment to be sent. */
	int waited = 0;
	for (; atomic_load(&h->deferred) > 0 && waited < timeout_ms; waited += 10) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&h->deferred) > 0) {
		/* Cannot happen once Kafka was flushed (every message gets a report); never stop suspended. */
		cm_log_error("http: %d request(s) still waiting for Kafka; not stopping the server cleanly",
			     atomic_load(&h->deferred));
		return;
	}
	/* Give resumed requests the moment they need to send their answers. */
	for (int w = 0; atomic_load(&h->active) > 0 && w < 1000; w += 10) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	atomic_store(&h->stopping, 1);
	pthread_join(h->reaper, NULL);
	MHD_stop_daemon(h->d); /* notifies every connection's end: conns_mu is still needed */
	pthread_mutex_destroy(&h->conns_mu);
	free(h);
}
