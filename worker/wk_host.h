/*
 * wk_host.h - the worker's answers to bot JavaScript's calls to the outside world: bot.findLeads
 * (PostgreSQL) and api.getJson / api.postJson (libcurl). A struct wk_js_host implementation (wk_js.h).
 *
 * Tenancy: a call sees only the leads of the bot of the job that runs. The bot id comes from the
 * worker, bound per run with wk_host_bind(); nothing in the call's arguments (which come from the
 * script, possibly through a sandbox child) can name another bot.
 *
 * findLeads(columns, where, orderBy, limit, offset):
 *   where    [field, value] | [field, op, value] | [field, "is null"] | a list of those (AND) | null
 *   fields   id, name, channel, status_id, muted, created_at, updated_at, tags (ops contains /
 *            not contains), attributes.<key> or attr.<key> (compared as text; <, <=, >, >= compare
 *            numerically when the value is a number, and then non-numeric attributes never match)
 *   ops      = != <> < <= > >= like, not like, in, not in, is null, is not null (case-insensitive).
 *            [field, value] means "=" ("contains" for tags); a null value means "is null".
 *            Negative ops (!=, <>, not like, not in) also match leads where the field is empty.
 *   columns  a list (or "a,b" string) of id, name, channel, status_id, muted, tags, attributes,
 *            created_at, updated_at; null = id, name, channel, status_id, muted, tags, attributes
 *   orderBy  "field [asc|desc][, field [asc|desc]]…" over the fields above but tags; empty fields
 *            last; ties are broken by id. Attributes sort numerically first, then as text.
 *   limit    null or 0 = the configured cap (find_limit); more than the cap is capped; offset >= 0.
 * The SQL is built from fixed fragments: field names come from an allow-list, every value and
 * attribute key is a parameter. It runs READ ONLY with a statement timeout.
 *
 * api.getJson(url) / api.postJson(url, body): http and https only, connect and total timeouts, a
 * response-size cap, at most WK_HOST_MAX_REDIRECTS redirects and only to the same host (followed
 * by this code, so each hop is checked again). Private, loopback, link-local (cloud metadata),
 * CGNAT, unique-local, multicast, unspecified and reserved targets are refused unless
 * allow_private: the check is made on the address curl is about to connect() to (its opensocket
 * callback), after DNS resolution, so DNS rebinding cannot slip past it. Environment proxies are
 * ignored. Result {"status": N, "body": <the JSON response, or the text when it is not JSON>}.
 *
 * Errors come back as one line that the script sees after "<method>: ", e.g.
 * "unknown field 'password'" or "127.0.0.1 is a loopback address (refused)". A findLeads that fails
 * because of the database (not the script) sets db_failed in its wk_host_run, so that the worker
 * retries the run instead of failing it.
 *
 * Threads: one caller at a time per struct wk_host (it uses its PostgreSQL connection); the
 * scheduler thread that owns the connection is that caller. api.* keeps no connection between
 * calls (a fresh curl handle each time, no reuse), so no socket outlives a call.
 */
#ifndef WK_HOST_H
#define WK_HOST_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "cm_compiler.h"
#include "wk_js.h"

#define WK_HOST_FIND_LIMIT_MAX 1000  /* the highest find_limit a configuration may set */
#define WK_HOST_FIND_TIMEOUT_MS 2000 /* statement_timeout of one findLeads query */
#define WK_HOST_MAX_REDIRECTS 3

struct wk_host_opts {
	long find_limit;	     /* most leads one findLeads call returns; also its default limit */
	long api_connect_timeout_ms; /* TCP + TLS connect */
	long api_timeout_ms;	     /* the whole call, redirects included */
	size_t api_max_bytes;	     /* largest response body */
	int api_allow_private;	     /* 1 = do not refuse private/loopback/link-local/… targets */
	const char *api_allow_hosts; /* "a.example,*.b.example" (borrowed, copied); NULL or "" = any */
};
extern const struct wk_host_opts wk_host_default_opts;

struct wk_host;

/*
 * Creates a host over conn (borrowed; it must outlive the host; NULL = findLeads is not available).
 * Call curl_global_init() once before threads start. Returns NULL with errstr (bad allow-list).
 */
struct wk_host *wk_host_new(PGconn *conn, const struct wk_host_opts *opts, char *errstr,
			    size_t errstr_size) CM_MUSTCHECK;
void wk_host_free(struct wk_host *h); /* NULL-safe */

/* One run's view of the host: lives on the caller's stack for the run. */
struct wk_host_run {
	struct wk_js_host js; /* what wk_runtime_run gets */
	struct wk_host *host; /* borrowed */
	int64_t bot_id;	      /* the job's bot: the only leads findLeads sees */
	const char *job_id;   /* for log lines (borrowed, may be NULL) */
	int db_failed;	      /* a findLeads failed because of the database, not the script */
};

/* Fills run for a job of bot_id and returns &run->js; NULL when h is NULL (no host calls). */
const struct wk_js_host *wk_host_bind(struct wk_host *h, int64_t bot_id, const char *job_id, struct wk_host_run *run);

/* ---- the pieces, exposed for tests ---- */

/* The wk_js_call_fn: ctx is a struct wk_host_run. */
json_t *wk_host_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size);

/* How a call ended, for metrics. */
enum wk_host_outcome { WK_HOST_OK, WK_HOST_INVALID, WK_HOST_REFUSED, WK_HOST_FAILED };

/* findLeads -> one SQL statement with text parameters; params[0] is the bot id. */
struct wk_host_query {
	char *sql;
	char **params;
	int nparams, cap;
};
/* Builds the statement for args (borrowed, the wk_js.h findLeads shape). Returns -1 with errstr. */
int wk_host_find_build(const json_t *args, int64_t bot_id, long find_limit, struct wk_host_query *q, char *errstr,
		       size_t errstr_size) CM_MUSTCHECK;
void wk_host_query_clear(struct wk_host_query *q); /* NULL-safe, may be called twice */

/* Address classes; everything but WK_ADDR_PUBLIC is refused unless allow_private. */
enum wk_addr_class {
	WK_ADDR_PUBLIC,
	WK_ADDR_LOOPBACK,     /* 127/8, ::1 */
	WK_ADDR_PRIVATE,      /* 10/8, 172.16/12, 192.168/16 */
	WK_ADDR_CGNAT,	      /* 100.64/10 shared address space */
	WK_ADDR_LINK_LOCAL,   /* 169.254/16 (cloud metadata), fe80::/10 */
	WK_ADDR_UNIQUE_LOCAL, /* fc00::/7, and the deprecated site-local fec0::/10 */
	WK_ADDR_MULTICAST,    /* 224/4, ff00::/8 */
	WK_ADDR_UNSPECIFIED,  /* 0.0.0.0/8, :: */
	WK_ADDR_RESERVED,     /* documentation, benchmarking, 240/4, broadcast, IETF protocol assignments… */
};
/* Classifies an AF_INET/AF_INET6 address; IPv4 mapped, compatible, NAT64 and 6to4 IPv6 addresses
 * are classified by the IPv4 address they carry. Other families are WK_ADDR_RESERVED. */
enum wk_addr_class wk_host_addr_classify(const struct sockaddr *sa);
/* "a loopback address", "a private address", … */
const char *wk_host_addr_class_name(enum wk_addr_class c);
/* Parses a numeric IPv4/IPv6 text (brackets allowed) and classifies it; -1 when s is not numeric. */
int wk_host_addr_classify_text(const char *s, enum wk_addr_class *out);

/*
 * Checks a URL for h's policy before any connection: http/https, a host, no credentials, the
 * allow-list, and a numeric host's address class. host gets the host name in lower case (no
 * brackets). Returns WK_HOST_OK, or WK_HOST_INVALID / WK_HOST_REFUSED with errstr.
 */
enum wk_host_outcome wk_host_url_check(const struct wk_host *h, const char *url, char *host, size_t host_size,
				       char *errstr, size_t errstr_size);

#endif
