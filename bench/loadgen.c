/*
 * loadgen - an open-loop HTTP/1.1 load generator for the schedule call (bench.py w3 and w4).
 *
 * One thread, non-blocking keep-alive connections on epoll, no library. With --rate R, request k is due
 * at start + k/R whatever the server does (open loop): when every connection is busy it waits in a queue,
 * and its latency counts from the moment it was due, so a slow server cannot hide its queueing
 * (coordinated omission). --rate 0 is a closed loop: each connection sends its next request as soon as
 * its answer arrives (the most that many connections carry).
 *
 *   build/rel/bench/loadgen --port P --path /api/v1/bots/900/jobs/schedule --token T [--host 127.0.0.1]
 *       [--conns 16] [--rate 1000] [--duration 10] [--drain 10] [--leads 1000] [--body TEMPLATE]
 *       [--records FILE]
 * TEMPLATE is the JSON body; %L becomes the lead id (1..leads, round robin) and %N the request number.
 * Prints one JSON object: answers by status, the rate of 202 answers, latency percentiles of the 202s from
 * the due time and from the actual send, the longest queue, 202s per second, the generator's own CPU
 * seconds. --records writes one line per answered request: "send_realtime_us latency_us status job_id"
 * (latency from the actual send; job id of a 202, else -).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum cstate { C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
	int fd;
	enum cstate state;
	char out[8192];
	size_t out_len, out_off;
	char in[16384];
	size_t in_len;
	int64_t due_us, sent_us, sent_real_us; /* of the request in flight (monotonic, realtime) */
};

struct rec {
	int64_t sent_real_us;
	int32_t latency_us;
	int16_t status;
	char job_id[37];
};

struct opts {
	const char *host, *path, *token, *body, *records;
	int port, conns, leads;
	double rate, duration, drain;
};

static struct {
	struct conn *c;
	struct opts o;
	int ep;
	int64_t t0;
	long started, answered, io_errors, connect_errors, max_queue;
	long status[600];
	int64_t *lat_due, *lat_send;
	size_t nlat, caplat;
	struct rec *recs;
	size_t nrecs, caprecs;
	long *per_sec;
	size_t nsec;
} g;

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int conn_open(struct conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.o.port)};
	if (inet_pton(AF_INET, g.o.host, &sa.sin_addr) != 1) {
		fprintf(stderr, "loadgen: --host must be an IPv4 address\n");
		exit(2);
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket");
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->in_len = c->out_len = c->out_off = 0;
	c->state = C_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 && errno != EINPROGRESS) {
		close(c->fd);
		c->fd = -1;
		g.connect_errors++;
		return -1;
	}
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl");
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
}

static void want_out(struct conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
	epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The body for request k, the template's %L and %N filled in. */
static size_t make_body(long k, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = g.o.body; *p && n + 32 < cap; p++) {
		if (p[0] == '%' && (p[1] == 'L' || p[1] == 'N')) {
			long v = p[1] == 'L' ? k % g.o.leads + 1 : k;
			n += (size_t)snprintf(out + n, cap - n, "%ld", v);
			p++;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return n;
}

static void conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (w < 0) {
			if (errno == EAGAIN) {
				want_out(c, 1);
				return;
			}
			return; /* the read side sees the error */
		}
		c->out_off += (size_t)w;
	}
}

static void conn_send(struct conn *c, long k, int64_t due_us)
{
	char body[4096];
	size_t blen = make_body(k, body, sizeof(body));
	int n = snprintf(c->out, sizeof(c->out),
			 "POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			 g.o.path, g.o.host, g.o.port, g.o.token, blen, body);
	c->out_len = n > 0 && (size_t)n < sizeof(c->out) ? (size_t)n : 0;
	c->out_off = 0;
	c->in_len = 0;
	c->state = C_BUSY;
	c->due_us = due_us;
	c->sent_us = mono_us();
	c->sent_real_us = real_us();
	g.started++;
	conn_flush(c);
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap * 2 : 65536;
	while (n < need)
		n *= 2;
	void *q = realloc(p, n * size);
	if (!q)
		die("realloc");
	*cap = n;
	return q;
}

static void record(struct conn *c, int status, const char *body, size_t blen)
{
	int64_t now = mono_us();
	g.answered++;
	g.status[status > 0 && status < 600 ? status : 0]++;
	if (status == 202) {
		if (g.nlat == g.caplat) {
			size_t cap = g.caplat ? g.caplat * 2 : 65536;
			int64_t *d = realloc(g.lat_due, cap * sizeof(int64_t));
			if (d)
				g.lat_due = d;
			int64_t *s = realloc(g.lat_send, cap * sizeof(int64_t));
			if (s)
				g.lat_send = s;
			if (!d || !s)
				die("realloc");
			g.caplat = cap;
		}
		g.lat_due[g.nlat] = now - c->due_us;
		g.lat_send[g.nlat] = now - c->sent_us;
		g.nlat++;
		size_t s = (size_t)((now - g.t0) / 1000000);
		if (s < g.nsec)
			g.per_sec[s]++;
	}
	if (g.o.records) {
		g.recs = grow(g.recs, &g.caprecs, g.nrecs + 1, sizeof(struct rec));
		struct rec *r = &g.recs[g.nrecs++];
		r->sent_real_us = c->sent_real_us;
		r->latency_us = (int32_t)(now - c->sent_us);
		r->status = (int16_t)status;
		snprintf(r->job_id, sizeof(r->job_id), "-");
		const char *id = status == 202 ? memmem(body, blen, "\"job_id\":\"", 10) : NULL;
		if (id && (size_t)(body + blen - id) >= 10 + 36) {
			memcpy(r->job_id, id + 10, 36);
			r->job_id[36] = '\0';
		}
	}
}

/* A whole answer in c->in? Returns 1 when one was taken (c is idle again, or closed), 0 to read on. */
static int parse_answer(struct conn *c)
{
	const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	size_t hlen = (size_t)(end - c->in) + 4;
	int status = 0, close_after = 0;
	long clen = -1;
	if (c->in_len > 12 && !strncmp(c->in, "HTTP/1.", 7))
		status = atoi(c->in + 9);
	for (const char *p = c->in; p < end;) {
		const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *le = nl ? nl : end;
		if (le - p > 15 && !strncasecmp(p, "Content-Length:", 15))
			clen = strtol(p + 15, NULL, 10);
		else if (le - p >= 17 && !strncasecmp(p, "Connection: close", 17))
			close_after = 1;
		p = nl ? nl + 2 : end;
	}
	if (clen < 0) {
		g.io_errors++; /* chunked answers are not spoken here: the server does not send them */
		conn_close(c);
		return 1;
	}
	if (c->in_len < hlen + (size_t)clen)
		return 0;
	record(c, status, c->in + hlen, (size_t)clen);
	c->in_len = 0;
	c->state = C_IDLE;
	if (close_after) {
		conn_close(c);
		conn_open(c);
	}
	return 1;
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			g.connect_errors++;
			conn_close(c);
			return;
		}
		c->state = C_IDLE;
		want_out(c, 0);
		return;
	}
	if ((events & EPOLLOUT) && c->state == C_BUSY) {
		conn_flush(c);
		if (c->out_off == c->out_len)
			want_out(c, 0);
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	for (;;) {
		if (c->in_len == sizeof(c->in)) {
			g.io_errors++;
			conn_close(c);
			conn_open(c);
			return;
		}
		ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (r > 0) {
			c->in_len += (size_t)r;
			if (c->state == C_BUSY && parse_answer(c))
				return;
			continue;
		}
		if (r < 0 && errno == EAGAIN)
			return;
		/* Closed or failed: a request in flight is lost; an idle connection is simply opened again. */
		if (c->state == C_BUSY)
			g.io_errors++;
		conn_close(c);
		conn_open(c);
		return;
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
	if (!n)
		return -1;
	size_t k = (size_t)((double)(n - 1) * p / 100.0 + 0.5);
	return (double)v[k] / 1000.0;
}

static void print_lat(const char *name, int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	printf("\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}", name, pct_ms(v, n, 50),
	       pct_ms(v, n, 90), pct_ms(v, n, 99), pct_ms(v, n, 99.9), n ? (double)v[n - 1] / 1000.0 : -1.0);
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen --port P --path PATH --token T [--host H] [--conns N] [--rate R] "
			"[--duration S] [--drain S] [--leads L] [--body TEMPLATE] [--records FILE]\n");
	exit(2);
}

static void parse_opts(int argc, char **argv)
{
	static const struct option lo[] = {{"host", 1, 0, 'h'},	    {"port", 1, 0, 'p'},    {"path", 1, 0, 'P'},
					   {"token", 1, 0, 't'},    {"conns", 1, 0, 'c'},   {"rate", 1, 0, 'r'},
					   {"duration", 1, 0, 'd'}, {"drain", 1, 0, 'D'},   {"leads", 1, 0, 'l'},
					   {"body", 1, 0, 'b'},	    {"records", 1, 0, 'o'}, {0, 0, 0, 0}};
	g.o = (struct opts){
		.host = "127.0.0.1",
		.conns = 16,
		.rate = 1000,
		.duration = 10,
		.drain = 10,
		.leads = 1000,
		.body = "{\"trigger_code\":\"trivial\",\"lead_id\":%L,\"script_request_params\":{\"n\":%N}}"};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'h':
			g.o.host = optarg;
			break;
		case 'p':
			g.o.port = atoi(optarg);
			break;
		case 'P':
			g.o.path = optarg;
			break;
		case 't':
			g.o.token = optarg;
			break;
		case 'c':
			g.o.conns = atoi(optarg);
			break;
		case 'r':
			g.o.rate = strtod(optarg, NULL);
			break;
		case 'd':
			g.o.duration = strtod(optarg, NULL);
			break;
		case 'D':
			g.o.drain = strtod(optarg, NULL);
			break;
		case 'l':
			g.o.leads = atoi(optarg);
			break;
		case 'b':
			g.o.body = optarg;
			break;
		case 'o':
			g.o.records = optarg;
			break;
		default:
			usage();
		}
	}
	if (!g.o.port || !g.o.path || !g.o.token || g.o.conns < 1 || g.o.leads < 1 || g.o.rate < 0 || g.o.duration <= 0)
		usage();
}

int main(int argc, char **argv)
{
	parse_opts(argc, argv);
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g.ep < 0 || tfd < 0)
		die("epoll/timerfd");
	struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(g.ep, EPOLL_CTL_ADD, tfd, &tev);
	g.c = calloc((size_t)g.o.conns, sizeof(*g.c));
	g.nsec = (size_t)(g.o.duration + g.o.drain) + 2;
	g.per_sec = calloc(g.nsec, sizeof(long));
	if (!g.c || !g.per_sec)
		die("calloc");
	for (int i = 0; i < g.o.conns; i++)
		conn_open(&g.c[i]);
	/* Every connection established before the clock starts. */
	int64_t give_up = mono_us() + 5000000;
	for (;;) {
		int up = 0;
		for (int i = 0; i < g.o.conns; i++)
			up += g.c[i].fd >= 0 && g.c[i].state == C_IDLE;
		if (up == g.o.conns || mono_us() > give_up)
			break;
		struct epoll_event evs[256];
		int n = epoll_wait(g.ep, evs, 256, 100);
		for (int i = 0; i < n; i++)
			if (evs[i].data.ptr)
				conn_event(evs[i].data.ptr, evs[i].events);
	}

	g.t0 = mono_us();
	int64_t end = g.t0 + (int64_t)(g.o.duration * 1e6), stop = end + (int64_t)(g.o.drain * 1e6);
	double per_us = g.o.rate / 1e6;
	long next = 0;	      /* requests started so far = the number of the next one */
	int64_t armed_at = 0; /* the timer's expiry, 0 = not armed */
	for (;;) {
		int64_t now = mono_us();
		int busy = 0, idle = 0;
		if (now < end) {
			long due = g.o.rate > 0 ? (long)((double)(now - g.t0) * per_us) + 1 : (long)1e15;
			for (int i = 0; i < g.o.conns && next < due; i++) {
				struct conn *c = &g.c[i];
				if (c->fd < 0 && g.connect_errors < 10L * g.o.conns)
					conn_open(c);
				if (c->fd >= 0 && c->state == C_IDLE) {
					int64_t due_us = g.o.rate > 0 ? g.t0 + (int64_t)((double)next / per_us) : now;
					conn_send(c, next++, due_us);
				}
			}
			if (g.o.rate > 0 && due - next > g.max_queue)
				g.max_queue = due - next;
		}
		for (int i = 0; i < g.o.conns; i++) {
			busy += g.c[i].fd >= 0 && g.c[i].state == C_BUSY;
			idle += g.c[i].fd >= 0 && g.c[i].state == C_IDLE;
		}
		if (now >= end && (busy == 0 || now >= stop))
			break;
		/* Wake at the next request's due time (to the microsecond) when a connection is free for it, on an
		 * answer, and at the end at the latest. */
		int64_t wake = now < end ? end : stop;
		if (g.o.rate > 0 && now < end && idle > 0) {
			int64_t nd = g.t0 + (int64_t)((double)next / per_us);
			if (nd < wake)
				wake = nd;
		}
		/* The next due time only moves later, so a timer set earlier at worst wakes us once for nothing. */
		if (wake > now && wake != armed_at) {
			struct itimerspec its = {
				.it_value = {.tv_sec = wake / 1000000, .tv_nsec = (wake % 1000000) * 1000}};
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
			armed_at = wake;
		}
		struct epoll_event evs[256];
		int n = epoll_wait(g.ep, evs, 256, wake > now ? 200 : 0);
		for (int i = 0; i < n; i++) {
			if (!evs[i].data.ptr) {
				uint64_t x;
				if (read(tfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
					die("timerfd");
				armed_at = 0;
				continue;
			}
			conn_event(evs[i].data.ptr, evs[i].events);
		}
	}
	double elapsed = (double)(mono_us() - g.t0) / 1e6;
	long inflight = 0;
	for (int i = 0; i < g.o.conns; i++)
		inflight += g.c[i].fd >= 0 && g.c[i].state == C_BUSY;

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		     (double)ru.ru_stime.tv_usec / 1e6;
	long wanted = g.o.rate > 0 ? (long)(g.o.rate * g.o.duration) : g.started;
	printf("{\"conns\":%d,\"rate\":%.1f,\"duration_s\":%.3f,\"elapsed_s\":%.3f,\"wanted\":%ld,\"started\":%ld,"
	       "\"answered\":%ld,\"unanswered\":%ld,\"io_errors\":%ld,\"connect_errors\":%ld,\"max_queue\":%ld,"
	       "\"accepted_per_s\":%.1f,\"loadgen_cpu_s\":%.3f,\"status\":{",
	       g.o.conns, g.o.rate, g.o.duration, elapsed, wanted, g.started, g.answered, inflight, g.io_errors,
	       g.connect_errors, g.max_queue, (double)g.nlat / g.o.duration, cpu);
	int first = 1;
	for (int s = 0; s < 600; s++)
		if (g.status[s]) {
			printf("%s\"%d\":%ld", first ? "" : ",", s, g.status[s]);
			first = 0;
		}
	printf("},");
	print_lat("latency_ms", g.lat_due, g.nlat);
	printf(",");
	print_lat("service_ms", g.lat_send, g.nlat);
	printf(",\"per_second\":[");
	for (size_t s = 0; s < (size_t)g.o.duration && s < g.nsec; s++)
		printf("%s%ld", s ? "," : "", g.per_sec[s]);
	printf("]}\n");
	if (g.o.records) {
		FILE *f = fopen(g.o.records, "w");
		if (!f)
			die(g.o.records);
		for (size_t i = 0; i < g.nrecs; i++)
			fprintf(f, "%lld %d %d %s\n", (long long)g.recs[i].sent_real_us, g.recs[i].latency_us,
				g.recs[i].status, g.recs[i].job_id);
		fclose(f);
	}
	return 0;
}
