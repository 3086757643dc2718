/*
 * wk_host_api.c - api.getJson / api.postJson with libcurl, and the address policy. See wk_host.h.
 *
 * Where the policy is enforced: curl resolves the name, and then asks our opensocket callback for a
 * socket to the address it is about to connect() to; the callback refuses addresses outside the
 * policy. So the address that is checked is the address that is used, for every hop: a DNS answer
 * that changes between a check and the connection (rebinding) cannot get past it. The URL checks
 * before that only give numeric hosts and the allow-list a clear early answer.
 *
 * Redirects are not left to curl: each hop is a new request that must pass the same checks and
 * stay on the same host, so headers set by the script never go anywhere else.
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "cm_config.h"
#include "cm_time.h"
#include "wk_host_int.h"
#include "wk_metrics.h"

#define MAX_URL_BYTES 8192
#define MAX_HEADERS 50
#define MAX_HEADER_BYTES 8192

/* ---- addresses ---- */

static enum wk_addr_class classify4(uint32_t a)
{
	static const struct {
		uint32_t net, mask;
		enum wk_addr_class c;
	} nets[] = {
		{0x00000000, 0xff000000, WK_ADDR_UNSPECIFIED}, /* 0.0.0.0/8 "this network" */
		{0x0a000000, 0xff000000, WK_ADDR_PRIVATE},     /* 10/8 */
		{0x64400000, 0xffc00000, WK_ADDR_CGNAT},       /* 100.64/10 */
		{0x7f000000, 0xff000000, WK_ADDR_LOOPBACK},    /* 127/8 */
		{0xa9fe0000, 0xffff0000, WK_ADDR_LINK_LOCAL},  /* 169.254/16 */
		{0xac100000, 0xfff00000, WK_ADDR_PRIVATE},     /* 172.16/12 */
		{0xc0000000, 0xffffff00, WK_ADDR_RESERVED},    /* 192.0.0/24 IETF protocol assignments */
		{0xc0000200, 0xffffff00, WK_ADDR_RESERVED},    /* 192.0.2/24 TEST-NET-1 */
		{0xc0586300, 0xffffff00, WK_ADDR_RESERVED},    /* 192.88.99/24 6to4 relay anycast */
		{0xc0a80000, 0xffff0000, WK_ADDR_PRIVATE},     /* 192.168/16 */
		{0xc6120000, 0xfffe0000, WK_ADDR_RESERVED},    /* 198.18/15 benchmarking */
		{0xc6336400, 0xffffff00, WK_ADDR_RESERVED},    /* 198.51.100/24 TEST-NET-2 */
		{0xcb007100, 0xffffff00, WK_ADDR_RESERVED},    /* 203.0.113/24 TEST-NET-3 */
		{0xe0000000, 0xf0000000, WK_ADDR_MULTICAST},   /* 224/4 */
		{0xf0000000, 0xf0000000, WK_ADDR_RESERVED},    /* 240/4, 255.255.255.255 */
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(nets); i++)
		if ((a & nets[i].mask) == nets[i].net)
			return nets[i].c;
	return WK_ADDR_PUBLIC;
}

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int zeros(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static enum wk_addr_class classify6(const unsigned char *b)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	if (zeros(b, 15))
		return b[15] == 1 ? WK_ADDR_LOOPBACK : b[15] == 0 ? WK_ADDR_UNSPECIFIED : classify4(be32(b + 12));
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0 ||
	    zeros(b, 12)) /* ::ffff:a.b.c.d, 64:ff9b::, ::a.b.c.d */
		return classify4(be32(b + 12));
	if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16 6to4 carries an IPv4 address */
		return classify4(be32(b + 2));
	if (b[0] == 0xff)
		return WK_ADDR_MULTICAST;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return WK_ADDR_LINK_LOCAL;
	if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)) /* fc00::/7, fec0::/10 */
		return WK_ADDR_UNIQUE_LOCAL;
	if (b[0] == 0x20 && b[1] == 0x01 &&
	    (b[2] < 0x02 || (b[2] == 0x0d && b[3] == 0xb8))) /* 2001::/23, 2001:db8::/32 */
		return WK_ADDR_RESERVED;
	if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0) /* 3fff::/20 documentation */
		return WK_ADDR_RESERVED;
	if ((b[0] & 0xe0) != 0x20) /* outside 2000::/3, the global unicast space */
		return WK_ADDR_RESERVED;
	return WK_ADDR_PUBLIC;
}

enum wk_addr_class wk_host_addr_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		return classify4(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		return classify6(s6->sin6_addr.s6_addr);
	}
	return WK_ADDR_RESERVED;
}

const char *wk_host_addr_class_name(enum wk_addr_class c)
{
	switch (c) {
	case WK_ADDR_PUBLIC:
		return "a public address";
	case WK_ADDR_LOOPBACK:
		return "a loopback address";
	case WK_ADDR_PRIVATE:
		return "a private address";
	case WK_ADDR_CGNAT:
		return "a shared (CGNAT) address";
	case WK_ADDR_LINK_LOCAL:
		return "a link-local address";
	case WK_ADDR_UNIQUE_LOCAL:
		return "a unique-local address";
	case WK_ADDR_MULTICAST:
		return "a multicast address";
	case WK_ADDR_UNSPECIFIED:
		return "an unspecified address";
	default:
		return "a reserved address";
	}
}

int wk_host_addr_classify_text(const char *s, enum wk_addr_class *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
		s++, n -= 2;
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *zone = strchr(buf, '%'); /* fe80::1%eth0 */
	if (zone)
		*zone = '\0';
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, buf, &s4.sin_addr) == 1)
		*out = wk_host_addr_classify((const struct sockaddr *)&s4);
	else if (inet_pton(AF_INET6, buf, &s6.sin6_addr) == 1)
		*out = wk_host_addr_classify((const struct sockaddr *)&s6);
	else
		return -1;
	return 0;
}

/* ---- the allow-list ---- */

int wk_host_allow_parse(struct wk_host *h, const char *list, char *errstr, size_t errstr_size)
{
	if (!list || !*list)
		return 0;
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		goto oom;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*t))
			t++;
		size_t n = strlen(t);
		while (n && isspace((unsigned char)t[n - 1]))
			t[--n] = '\0';
		if (!n)
			continue;
		for (size_t i = 0; i < n; i++)
			t[i] = (char)tolower((unsigned char)t[i]);
		if (n >= 2 && t[0] == '[' && t[n - 1] == ']') /* [::1] -> ::1, as URL hosts are compared */
			t[n - 1] = '\0', t++;
		const char *name = strncmp(t, "*.", 2) == 0 ? t + 2 : t;
		if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-:_") != strlen(name)) {
			snprintf(errstr, errstr_size,
				 "--api-allow-hosts: '%s' is not a host name, an address or *.domain", t);
			free(copy);
			return -1;
		}
		char **np = realloc(h->allow, (h->nallow + 1) * sizeof(*np));
		if (!np)
			goto oom;
		h->allow = np;
		if (!(h->allow[h->nallow] = strdup(t)))
			goto oom;
		h->nallow++;
	}
	free(copy);
	return 0;
oom:
	free(copy);
	snprintf(errstr, errstr_size, "out of memory");
	return -1;
}

static int allowed_host(const struct wk_host *h, const char *host)
{
	if (!h->nallow)
		return 1;
	char name[256];
	snprintf(name, sizeof(name), "%s", host);
	size_t n = strlen(name);
	if (n && name[n - 1] == '.') /* "example.com." is example.com */
		name[--n] = '\0';
	for (size_t i = 0; i < h->nallow; i++) {
		const char *p = h->allow[i];
		if (strncmp(p, "*.", 2) == 0) {
			size_t m = strlen(p + 1); /* ".example.com" */
			if (n > m && strcmp(name + n - m, p + 1) == 0)
				return 1;
		} else if (strcmp(p, name) == 0) {
			return 1;
		}
	}
	return 0;
}

/* ---- URLs ---- */

enum wk_host_outcome wk_host_url_check(const struct wk_host *h, const char *url, char *host, size_t host_size,
				       char *errstr, size_t errstr_size)
{
	enum wk_host_outcome oc = WK_HOST_INVALID;
	char *scheme = NULL, *user = NULL, *hname = NULL;
	CURLU *u = NULL;
	if (!url || !*url) {
		snprintf(errstr, errstr_size, "the URL is empty");
		return oc;
	}
	if (strlen(url) > MAX_URL_BYTES) {
		snprintf(errstr, errstr_size, "the URL is longer than %d bytes", MAX_URL_BYTES);
		return oc;
	}
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		snprintf(errstr, errstr_size, "'%.200s' is not a URL (http:// or https://…)", url);
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		snprintf(errstr, errstr_size, "only http and https URLs are allowed, not %.20s", scheme);
		oc = WK_HOST_REFUSED;
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		snprintf(errstr, errstr_size, "credentials in the URL are not supported (use api.setHeaders)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &hname, 0) != CURLUE_OK || !hname[0]) {
		snprintf(errstr, errstr_size, "'%.200s' has no host", url);
		goto out;
	}
	const char *hn = hname;
	size_t n = strlen(hn);
	if (n >= 2 && hn[0] == '[' && hn[n - 1] == ']')
		hn++, n -= 2;
	if (n >= host_size) {
		snprintf(errstr, errstr_size, "the host name is too long");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)hn[i]);
	host[n] = '\0';
	if (!allowed_host(h, host)) {
		snprintf(errstr, errstr_size, "%s is not an allowed host (--api-allow-hosts)", host);
		oc = WK_HOST_REFUSED;
		goto out;
	}
	enum wk_addr_class c;
	if (!h->o.api_allow_private && wk_host_addr_classify_text(host, &c) == 0 && c != WK_ADDR_PUBLIC) {
		snprintf(errstr, errstr_size, "%s is %s (refused)", host, wk_host_addr_class_name(c));
		oc = WK_HOST_REFUSED;
		goto out;
	}
	oc = WK_HOST_OK;
out:
	curl_free(scheme);
	curl_free(user);
	curl_free(hname);
	curl_url_cleanup(u);
	return oc;
}

/* ---- a call ---- */

struct xfer {
	const struct wk_host *h;
	const char *host;
	char *buf;
	size_t len, cap;
	int too_big;
	char refused[300]; /* why the opensocket callback said no */
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	if (x->len + n > x->h->o.api_max_bytes) {
		x->too_big = 1;
		return 0; /* stop reading: curl fails the transfer with CURLE_WRITE_ERROR */
	}
	if (x->len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 16384;
		while (cap < x->len + n + 1)
			cap *= 2;
		char *nb = realloc(x->buf, cap);
		if (!nb)
			return 0;
		x->buf = nb;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, p, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

/* The policy check on the address curl is about to connect to (after its DNS resolution). */
static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct xfer *x = ud;
	if (purpose != CURLSOCKTYPE_IPCXN || (a->family != AF_INET && a->family != AF_INET6)) {
		snprintf(x->refused, sizeof(x->refused), "%s: unsupported connection (refused)", x->host);
		return CURL_SOCKET_BAD;
	}
	if (!x->h->o.api_allow_private) {
		enum wk_addr_class c = wk_host_addr_classify(&a->addr);
		if (c != WK_ADDR_PUBLIC) {
			char ip[INET6_ADDRSTRLEN] = "?";
			const void *src =
				a->family == AF_INET
					? (const void *)&((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr
					: (const void *)&((const struct sockaddr_in6 *)(const void *)&a->addr)
						  ->sin6_addr;
			inet_ntop(a->family, src, ip, sizeof(ip));
			if (strcmp(ip, x->host) == 0)
				snprintf(x->refused, sizeof(x->refused), "%s is %s (refused)", ip,
					 wk_host_addr_class_name(c));
			else
				snprintf(x->refused, sizeof(x->refused), "%s (%s) is %s (refused)", x->host, ip,
					 wk_host_addr_class_name(c));
			return CURL_SOCKET_BAD;
		}
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int header_name_ok(const char *k)
{
	static const char *const forbidden[] = {
		"host",	      "content-length", "transfer-encoding",   "connection",	  "upgrade", "te", "trailer",
		"keep-alive", "expect",		"proxy-authorization", "proxy-connection"};
	size_t n = strlen(k);
	if (n == 0 || n > 100 ||
	    strspn(k, "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != n)
		return 0;
	for (size_t i = 0; i < CM_ARRAY_LEN(forbidden); i++)
		if (strcasecmp(k, forbidden[i]) == 0)
			return 0;
	return 1;
}

/* The script's headers (api.setHeaders) plus our defaults, as a curl list. -1 with errstr when one is bad. */
static int build_headers(const json_t *headers, int post, struct curl_slist **out, char *errstr, size_t errstr_size)
{
	struct curl_slist *l = NULL;
	int accept = 0, ctype = 0;
	char line[MAX_HEADER_BYTES + 110];
	const char *k;
	json_t *v;
	*out = NULL;
	if (headers && !json_is_object(headers) && !json_is_null(headers)) {
		snprintf(errstr, errstr_size, "headers must be an object");
		return -1;
	}
	if (json_object_size(headers) > MAX_HEADERS) {
		snprintf(errstr, errstr_size, "at most %d headers", MAX_HEADERS);
		return -1;
	}
	json_object_foreach((json_t *)headers, k, v)
	{
		char val[MAX_HEADER_BYTES + 1];
		if (!header_name_ok(k)) {
			snprintf(errstr, errstr_size, "header '%.100s' may not be set", k);
			goto err;
		}
		if (json_is_string(v) && json_string_length(v) <= MAX_HEADER_BYTES)
			snprintf(val, sizeof(val), "%s", json_string_value(v));
		else if (json_is_integer(v))
			snprintf(val, sizeof(val), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else if (json_is_real(v))
			snprintf(val, sizeof(val), "%.17g", json_real_value(v));
		else if (json_is_boolean(v))
			snprintf(val, sizeof(val), "%s", json_is_true(v) ? "true" : "false");
		else {
			snprintf(errstr, errstr_size, "header '%.100s': the value must be a string of at most %d bytes",
				 k, MAX_HEADER_BYTES);
			goto err;
		}
		if (json_is_string(v) && (strlen(val) != json_string_length(v) || strpbrk(val, "\r\n"))) {
			snprintf(errstr, errstr_size, "header '%.100s': the value must be one line", k);
			goto err;
		}
		accept |= strcasecmp(k, "accept") == 0;
		ctype |= strcasecmp(k, "content-type") == 0;
		/* "Name;" is curl's way to send a header with an empty value ("Name:" would remove it) */
		snprintf(line, sizeof(line), val[0] ? "%s: %s" : "%s;", k, val);
		struct curl_slist *nl = curl_slist_append(l, line);
		if (!nl)
			goto oom;
		l = nl;
	}
	const char *defaults[] = {accept ? NULL : "Accept: application/json",
				  post && !ctype ? "Content-Type: application/json" : NULL, "Expect:"};
	for (size_t i = 0; i < CM_ARRAY_LEN(defaults); i++) {
		if (!defaults[i])
			continue;
		struct curl_slist *nl = curl_slist_append(l, defaults[i]);
		if (!nl)
			goto oom;
		l = nl;
	}
	*out = l;
	return 0;
oom:
	snprintf(errstr, errstr_size, "out of memory");
err:
	curl_slist_free_all(l);
	return -1;
}

/* Length of the valid UTF-8 sequence at p[0..n), 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] < 0x80	     ? 1
		     : (p[0] & 0xe0) == 0xc0 ? 2
		     : (p[0] & 0xf0) == 0xe0 ? 3
		     : (p[0] & 0xf8) == 0xf0 ? 4
					     : 0;
	if (!len || len > n)
		return 0;
	uint32_t cp = len == 1 ? p[0] : p[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string of bytes that may not be UTF-8: invalid sequences become U+FFFD. */
static json_t *text_value(const char *p, size_t n)
{
	json_t *s = json_stringn(p, n);
	if (s)
		return s;
	char *out = malloc(n * 3 + 1);
	if (!out)
		return json_null();
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_len((const unsigned char *)p + i, n - i);
		if (len) {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		} else {
			out[o++] = (char)0xef; /* U+FFFD */
			out[o++] = (char)0xbf;
			out[o++] = (char)0xbd;
			i++;
		}
	}
	s = json_stringn(out, o);
	free(out);
	return s ? s : json_null();
}

static int is_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

json_t *wk_host_api_call(const struct wk_host *h, int post, const json_t *args, enum wk_host_outcome *oc, char *errstr,
			 size_t errstr_size)
{
	const char *url = json_string_value(json_object_get(args, "url"));
	char host[256], host2[256], errbuf[CURL_ERROR_SIZE] = "";
	char *body = NULL, *next_url = NULL;
	struct curl_slist *hdrs = NULL;
	struct xfer x = {.h = h, .host = host};
	json_t *out = NULL;
	CURL *c = NULL;
	const int is_post = post;
	int64_t start = cm_time_mono_us(), deadline = start + (int64_t)h->o.api_timeout_ms * 1000;

	*oc = wk_host_url_check(h, url, host, sizeof(host), errstr, errstr_size);
	if (*oc != WK_HOST_OK)
		return NULL;
	*oc = WK_HOST_INVALID;
	if (build_headers(json_object_get(args, "headers"), post, &hdrs, errstr, errstr_size) == -1)
		goto out;
	if (post) {
		const json_t *b = json_object_get(args, "body");
		body = json_dumps(b ? b : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
		if (!body) {
			snprintf(errstr, errstr_size, "the body cannot be sent as JSON");
			goto out;
		}
	}
	*oc = WK_HOST_FAILED;
	c = curl_easy_init();
	if (!c) {
		snprintf(errstr, errstr_size, "cannot start an HTTP client");
		goto out;
	}
	/* One connection per call, not kept: nothing of one bot's call outlives it. */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* ignore http_proxy & co: the checks are on the real target */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->o.api_connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->o.api_max_bytes);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &x);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "botjobs/" CM_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (post) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}

	long status = 0;
	for (int hop = 0;; hop++) {
		int64_t left_ms = (deadline - cm_time_mono_us()) / 1000;
		if (left_ms < 1) {
			snprintf(errstr, errstr_size, "timed out after %ld ms", h->o.api_timeout_ms);
			goto done;
		}
		curl_easy_setopt(c, CURLOPT_URL, next_url ? next_url : url);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left_ms);
		x.len = 0, x.too_big = 0, x.refused[0] = '\0', errbuf[0] = '\0';
		CURLcode rc = curl_easy_perform(c);
		if (rc != CURLE_OK) {
			if (x.refused[0]) {
				*oc = WK_HOST_REFUSED;
				snprintf(errstr, errstr_size, "%s", x.refused);
			} else if (x.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
				snprintf(errstr, errstr_size, "the response is larger than %zu bytes (refused)",
					 h->o.api_max_bytes);
			} else if (rc == CURLE_OPERATION_TIMEDOUT) {
				snprintf(errstr, errstr_size, "%s: timed out after %ld ms", host,
					 (cm_time_mono_us() - start) / 1000);
			} else {
				snprintf(errstr, errstr_size, "%s: %s", host,
					 errbuf[0] ? errbuf : curl_easy_strerror(rc));
			}
			goto done;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		char *loc = NULL;
		curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
		if (!is_redirect(status) || !loc)
			break;
		if (hop == WK_HOST_MAX_REDIRECTS) {
			snprintf(errstr, errstr_size, "more than %d redirects", WK_HOST_MAX_REDIRECTS);
			goto done;
		}
		enum wk_host_outcome o2 = wk_host_url_check(h, loc, host2, sizeof(host2), errstr, errstr_size);
		if (o2 != WK_HOST_OK) {
			*oc = o2;
			char why[300];
			snprintf(why, sizeof(why), "%s", errstr);
			snprintf(errstr, errstr_size, "redirect: %s", why);
			goto done;
		}
		if (strcmp(host, host2) != 0) {
			*oc = WK_HOST_REFUSED;
			snprintf(errstr, errstr_size, "redirect from %s to another host (%s) refused", host, host2);
			goto done;
		}
		char *nu = strdup(loc);
		if (!nu) {
			snprintf(errstr, errstr_size, "out of memory");
			goto done;
		}
		free(next_url);
		next_url = nu;
		/* As browsers do: 303, and 301/302 after a POST, continue with a GET. */
		if (post && (status == 301 || status == 302 || status == 303)) {
			curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
			post = 0;
		}
	}
	json_t *b = NULL;
	if (x.len)
		b = json_loadb(x.buf, x.len, JSON_DECODE_ANY, NULL);
	if (!b)
		b = text_value(x.buf ? x.buf : "", x.len);
	out = json_pack("{sIso}", "status", (json_int_t)status, "body", b);
	*oc = WK_HOST_OK;
done:
	cm_metric_observe(&wk_m_api_seconds[is_post], (double)(cm_time_mono_us() - start) / 1e6);
out:
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	free(body);
	free(next_url);
	free(x.buf);
	return out;
}
