/*
 * wk_sandbox.c - the sandbox pool, the worker's side. See wk_sandbox.h for the contract and the protocol.
 *
 * A child is greeted lazily: a replacement is spawned right after a run ends and its hello is read
 * when a run first takes it, so its exec and start-up overlap with the worker's other work (the
 * pool is FIFO for that reason). Retired children are closed, not killed (they exit 0 and, in a
 * sanitizer build, check their leaks), and reaped later without blocking a run.
 */
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np, sigabbrev_np */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm_frame.h"
#include "cm_log.h"
#include "cm_time.h"
#include "wk_sandbox.h"

#define GREET_TIMEOUT_US (10 * CM_US_PER_SEC)
#define RETIRE_GRACE_US (3 * CM_US_PER_SEC) /* a retired child that has not exited by then is killed */
#define DEATH_WAIT_US 200000		    /* how long a child that closed its socket may take to die */
#define SPAWN_TRIES 2
#define MAX_ARGS 16
#define MAX_ENV 8

struct child {
	pid_t pid;
	int fd;	      /* the protocol socket, non-blocking */
	int lifeline; /* the write end of its lifeline; closing it (or dying) sends the child SIGIO */
	int greeted;
	int runs;
	int64_t spawned_us; /* monotonic */
	struct child *next;
};

struct zombie {
	pid_t pid;
	int lifeline; /* kept open until reaped, so a retiring child can exit on its own */
	int64_t since_us;
	struct zombie *next;
};

struct wk_sandbox {
	struct wk_sandbox_opts o;
	char path[PATH_MAX];
	char args[MAX_ARGS][160];
	char *argv[MAX_ARGS + 1];
	char envs[MAX_ENV][512];
	char *envp[MAX_ENV + 1];
	pthread_mutex_t mu;
	struct child *idle_head, *idle_tail;
	int starting; /* spare children top_up is starting now (so that threads do not all start one) */
	struct zombie *zombies;
	struct wk_sandbox_stats st;
};

/* ---- processes ---- */

static const char *sig_name(int sig)
{
	const char *n = sigabbrev_np(sig);
	return n ? n : "?";
}

/* "signal 11, SIGSEGV" / "status 3" */
static void describe_status(int status, char *buf, size_t n)
{
	if (status == -1)
		snprintf(buf, n, "exit status unknown");
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "signal %d, SIG%s", WTERMSIG(status), sig_name(WTERMSIG(status)));
	else if (WIFEXITED(status))
		snprintf(buf, n, "status %d", WEXITSTATUS(status));
	else
		snprintf(buf, n, "wait status %#x", (unsigned)status);
}

/* Waits for pid; returns its status, or -1 when it cannot be had (SIGCHLD ignored by the program). */
static int reap(pid_t pid)
{
	int status;
	for (;;) {
		if (waitpid(pid, &status, 0) == pid)
			return status;
		if (errno != EINTR)
			return -1;
	}
}

static int kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	return reap(pid);
}

/* The status of a child that closed its socket: it is dying; give it a moment, then kill it. */
static int reap_dying(pid_t pid)
{
	int64_t until = cm_time_mono_us() + DEATH_WAIT_US;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (cm_time_mono_us() > until)
			return kill_and_reap(pid);
		struct timespec ts = {0, 500000};
		nanosleep(&ts, NULL);
	}
}

static void zombies_add(struct wk_sandbox *sb, pid_t pid, int lifeline)
{
	struct zombie *z = malloc(sizeof(*z));
	if (!z) {
		kill_and_reap(pid);
		close(lifeline);
		return;
	}
	z->pid = pid;
	z->lifeline = lifeline;
	z->since_us = cm_time_mono_us();
	pthread_mutex_lock(&sb->mu);
	z->next = sb->zombies;
	sb->zombies = z;
	pthread_mutex_unlock(&sb->mu);
}

/* Reaps retired children that have exited; kills those past their grace. Never blocks for long. */
static void zombies_reap(struct wk_sandbox *sb, int kill_late)
{
	pthread_mutex_lock(&sb->mu);
	struct zombie **pp = &sb->zombies;
	int64_t now = cm_time_mono_us();
	while (*pp) {
		struct zombie *z = *pp;
		pid_t r = waitpid(z->pid, NULL, WNOHANG);
		if (r == 0 && kill_late && now - z->since_us > RETIRE_GRACE_US) {
			kill(z->pid, SIGKILL);
			r = waitpid(z->pid, NULL, 0);
		}
		if (r != 0) { /* reaped, or not ours to reap any more */
			*pp = z->next;
			close(z->lifeline);
			free(z);
			continue;
		}
		pp = &z->next;
	}
	pthread_mutex_unlock(&sb->mu);
}

static void child_free(struct child *c)
{
	close(c->fd);
	close(c->lifeline);
	free(c);
}

/* Closes a child that did nothing wrong: it sees EOF and exits 0; reaped later. */
static void child_retire(struct wk_sandbox *sb, struct child *c)
{
	close(c->fd);
	if (c->pid > 0)
		zombies_add(sb, c->pid, c->lifeline);
	else
		close(c->lifeline);
	free(c);
}

static void child_kill(struct child *c)
{
	kill_and_reap(c->pid);
	child_free(c);
}

/* A descriptor number >= min (the spawn's dup2 steps need the low numbers free). Consumes fd. */
static int fd_above(int fd, int min)
{
	if (fd >= min)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
	close(fd);
	return n;
}

static struct child *child_spawn(struct wk_sandbox *sb, char *errstr, size_t errstr_size)
{
	int sv[2] = {-1, -1}, lp[2] = {-1, -1};
	struct child *c = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_ok = 0, attr_ok = 0;
	sigset_t none, all;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		snprintf(errstr, errstr_size, "socketpair: %s", strerror(errno));
		goto err;
	}
	/* A pipe of its own: the owner that gets SIGIO belongs to the open file, which a shared pipe
	 * would share, so only the last child to arm it would hear of the worker's death. */
	if (pipe2(lp, O_CLOEXEC) == -1) {
		snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
		goto err;
	}
	sv[1] = fd_above(sv[1], WK_SANDBOX_LIFELINE + 1);
	lp[0] = fd_above(lp[0], WK_SANDBOX_LIFELINE + 1);
	if (sv[1] < 0 || lp[0] < 0 || fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1) {
		snprintf(errstr, errstr_size, "socket set-up: %s", strerror(errno));
		goto err;
	}
	c = calloc(1, sizeof(*c));
	if (!c || posix_spawn_file_actions_init(&fa) != 0) {
		snprintf(errstr, errstr_size, "out of memory");
		goto err;
	}
	fa_ok = 1;
	if (posix_spawnattr_init(&attr) != 0) {
		snprintf(errstr, errstr_size, "out of memory");
		goto err;
	}
	attr_ok = 1;
	/* In the child, between clone and exec: only these steps, all done by the C library. */
	int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, sv[1], WK_SANDBOX_FD);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, lp[0], WK_SANDBOX_LIFELINE);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, WK_SANDBOX_LIFELINE + 1);
	/* Default dispositions (the worker ignores SIGPIPE), nothing blocked, a process group of its own
	 * so a terminal's Ctrl-C reaches the worker, which then stops its children in order. */
	sigemptyset(&none);
	sigfillset(&all);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&attr, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&attr, &all);
	if (!rc)
		rc = posix_spawnattr_setpgroup(&attr, 0);
	if (!rc)
		rc = posix_spawnattr_setflags(&attr,
					      POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	if (!rc)
		rc = posix_spawn(&c->pid, sb->path, &fa, &attr, sb->argv, sb->envp);
	if (rc) {
		snprintf(errstr, errstr_size, "cannot start %s: %s", sb->path, strerror(rc));
		goto err;
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	close(lp[0]);
	c->fd = sv[0];
	c->lifeline = lp[1];
	c->spawned_us = cm_time_mono_us();
	pthread_mutex_lock(&sb->mu);
	sb->st.spawned++;
	pthread_mutex_unlock(&sb->mu);
	return c;
err:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (lp[i] >= 0)
			close(lp[i]);
	}
	free(c);
	return NULL;
}

/* Reads the child's hello. 0, or -1 with errstr set (the caller kills the child). */
static int child_greet(struct child *c, char *errstr, size_t errstr_size)
{
	char err[300];
	json_t *m = NULL;
	int rc = cm_frame_read(c->fd, 4096, c->spawned_us + GREET_TIMEOUT_US, &m, err, sizeof(err));
	if (rc != CM_FRAME_OK) {
		if (rc == CM_FRAME_EOF) {
			int status = reap_dying(c->pid);
			c->pid = -1; /* reaped */
			char st[64];
			describe_status(status, st, sizeof(st));
			snprintf(errstr, errstr_size, "the child exited before its greeting (%s; its stderr says why)",
				 st);
		} else {
			snprintf(errstr, errstr_size, "no greeting from the child: %s", err);
		}
		return -1;
	}
	const char *type = json_string_value(json_object_get(m, "type"));
	json_t *v = json_object_get(m, "v");
	if (!type || strcmp(type, "hello") != 0 || !json_is_integer(v)) {
		snprintf(errstr, errstr_size, "the child did not greet with a hello frame");
		json_decref(m);
		return -1;
	}
	if (json_integer_value(v) != WK_SANDBOX_PROTO) {
		snprintf(errstr, errstr_size,
			 "the child speaks protocol version %" JSON_INTEGER_FORMAT ", this worker %d",
			 json_integer_value(v), WK_SANDBOX_PROTO);
		json_decref(m);
		return -1;
	}
	json_decref(m);
	c->greeted = 1;
	return 0;
}

/* Kills a child that failed its greeting (if it is still there). */
static void child_refuse(struct wk_sandbox *sb, struct child *c)
{
	if (c->pid > 0)
		kill_and_reap(c->pid);
	child_free(c);
	pthread_mutex_lock(&sb->mu);
	sb->st.refused++;
	pthread_mutex_unlock(&sb->mu);
}

/* ---- the free list ---- */

static void idle_push(struct wk_sandbox *sb, struct child *c)
{
	c->next = NULL;
	if (sb->idle_tail)
		sb->idle_tail->next = c;
	else
		sb->idle_head = c;
	sb->idle_tail = c;
	sb->st.idle++;
}

static struct child *idle_pop(struct wk_sandbox *sb)
{
	struct child *c = sb->idle_head;
	if (c) {
		sb->idle_head = c->next;
		if (!sb->idle_head)
			sb->idle_tail = NULL;
		sb->st.idle--;
		c->next = NULL;
	}
	return c;
}

/* Starts children until `children` are idle (some may still be starting up). */
static void top_up(struct wk_sandbox *sb)
{
	for (;;) {
		pthread_mutex_lock(&sb->mu);
		int missing = sb->st.idle + sb->starting < sb->o.children;
		if (missing)
			sb->starting++;
		pthread_mutex_unlock(&sb->mu);
		if (!missing)
			return;
		char err[512];
		struct child *c = child_spawn(sb, err, sizeof(err));
		pthread_mutex_lock(&sb->mu);
		sb->starting--;
		int spare = c && sb->st.idle >= sb->o.children; /* a run's child came back meanwhile */
		if (c && !spare)
			idle_push(sb, c);
		pthread_mutex_unlock(&sb->mu);
		if (spare) {
			child_retire(sb, c);
			return;
		}
		if (!c) {
			cm_log_warn("sandbox: starting a spare child: %s", err);
			return; /* the next run starts one itself, or says why it cannot */
		}
	}
}

/* A greeted, live child for one run, or NULL with errstr set. */
static struct child *acquire(struct wk_sandbox *sb, char *errstr, size_t errstr_size)
{
	int failures = 0;
	zombies_reap(sb, 1);
	while (failures < SPAWN_TRIES) {
		pthread_mutex_lock(&sb->mu);
		struct child *c = idle_pop(sb);
		pthread_mutex_unlock(&sb->mu);
		if (!c) {
			c = child_spawn(sb, errstr, errstr_size);
			if (!c) {
				failures++;
				continue;
			}
		}
		if (!c->greeted) {
			pid_t pid = c->pid;
			if (child_greet(c, errstr, errstr_size) == -1) {
				cm_log_error("sandbox: child %d refused: %s", (int)pid, errstr);
				child_refuse(sb, c);
				failures++;
				continue;
			}
		} else {
			int status;
			if (waitpid(c->pid, &status, WNOHANG) == c->pid) { /* died while idle: not a run's problem */
				char st[64];
				describe_status(status, st, sizeof(st));
				cm_log_warn("sandbox: idle child %d died (%s); replacing it", (int)c->pid, st);
				child_free(c);
				continue;
			}
		}
		return c;
	}
	return NULL;
}

/* Back to the free list after a run (ran = 1) or after a run it never saw (ran = 0). */
static void release(struct wk_sandbox *sb, struct child *c, int ran)
{
	c->runs += ran;
	pthread_mutex_lock(&sb->mu);
	sb->st.runs += (unsigned long)ran;
	int retire = c->runs >= sb->o.max_runs || sb->st.idle >= sb->o.children;
	if (retire)
		sb->st.retired++;
	else
		idle_push(sb, c);
	pthread_mutex_unlock(&sb->mu);
	if (retire)
		child_retire(sb, c);
}

/* ---- one run ---- */

enum end { END_REPLY, END_TIMEOUT, END_DIED, END_PROTOCOL, END_TOO_LARGE };

static json_t *failed_reply(const char *fmt, ...) CM_PRINTF(1, 2);
static json_t *failed_reply(const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{ssss}", "outcome", "failed", "error", msg);
}

static int valid_reply(const json_t *reply)
{
	const char *o = json_string_value(json_object_get(reply, "outcome"));
	return json_is_object(reply) && o &&
	       (strcmp(o, "done") == 0 || strcmp(o, "skipped") == 0 || strcmp(o, "failed") == 0);
}

/* Answers one host call; the answer frame is a new reference. */
static json_t *host_answer(const struct wk_js_host *host, const char *method, const json_t *args)
{
	char err[512] = "";
	if (!host || !host->call)
		return json_pack("{ssss}", "type", "error", "error", "not available here");
	json_t *res = host->call(host->ctx, method, args, err, sizeof(err));
	if (!res)
		return json_pack("{ssss}", "type", "error", "error", err[0] ? err : "failed");
	return json_pack("{ssso}", "type", "result", "result", res);
}

/* Maps a frame result to how the run ends, when it is not CM_FRAME_OK. */
static enum end frame_end(int rc)
{
	switch (rc) {
	case CM_FRAME_TIMEOUT:
		return END_TIMEOUT;
	case CM_FRAME_EOF:
		return END_DIED;
	default:
		return END_PROTOCOL;
	}
}

/* Checks a "replies" frame's replies: a non-empty array of valid replies, no more than want. */
static int valid_replies(const json_t *rs, size_t want)
{
	size_t i, n = json_array_size(rs);
	const json_t *r;
	if (!json_is_array(rs) || n == 0 || n > want)
		return 0;
	json_array_foreach(rs, i, r)
	{
		if (!valid_reply(r))
			return 0;
	}
	return 1;
}

/* Answers one call frame (borrowed). Returns END_REPLY when the child may go on, else how the run ends. */
static enum end answer_call(struct wk_sandbox *sb, struct child *c, const json_t *m, const struct wk_js_host *host,
			    size_t *calls, int64_t *deadline, char *why, size_t why_size)
{
	const char *type = json_string_value(json_object_get(m, "type"));
	const char *method = json_string_value(json_object_get(m, "method"));
	if (!type || strcmp(type, "call") != 0 || !method || !json_is_object(json_object_get(m, "args"))) {
		snprintf(why, why_size, "an unexpected frame (type %s)", type ? type : "missing");
		return END_PROTOCOL;
	}
	if (++*calls > sb->o.js.calls_max) {
		snprintf(why, why_size, "more than %zu host calls in one run", sb->o.js.calls_max);
		return END_PROTOCOL;
	}
	int64_t t0 = cm_time_mono_us();
	json_t *answer = host_answer(host, method, json_object_get(m, "args"));
	*deadline += cm_time_mono_us() - t0; /* the host's time is not the script's */
	int rc = cm_frame_write(c->fd, answer, WK_SANDBOX_FRAME_MAX, *deadline, why, why_size);
	json_decref(answer);
	if (rc == CM_FRAME_TOO_LARGE) {
		json_t *e = json_pack("{ssss}", "type", "error", "error",
				      "the result is too large for the sandbox (over 32 MiB)");
		rc = cm_frame_write(c->fd, e, WK_SANDBOX_FRAME_MAX, *deadline, why, why_size);
		json_decref(e);
	}
	if (rc != CM_FRAME_OK)
		return rc == CM_FRAME_TIMEOUT ? END_TIMEOUT : END_DIED;
	return END_REPLY;
}

/* What one run frame asks for: req once (leads and reqs NULL), req once per lead of leads, or each request
 * of reqs with the host of the same index. */
struct batch {
	const json_t *req, *leads, *reqs;
	const struct wk_js_host *host;	       /* req's (each lead's) */
	const struct wk_js_host *const *hosts; /* with reqs: one per request, NULL entries allowed */
};

static size_t batch_size(const struct batch *b)
{
	return b->reqs ? json_array_size(b->reqs) : b->leads ? json_array_size(b->leads) : 1;
}

/* The request of run i (borrowed for reqs and single runs; a new reference, or NULL, for leads). */
static json_t *batch_request(const struct batch *b, size_t i)
{
	if (b->reqs)
		return json_incref(json_array_get(b->reqs, i));
	if (b->leads)
		return wk_js_lead_request(b->req, json_array_get(b->leads, i));
	return json_incref((json_t *)b->req);
}

static const struct wk_js_host *batch_host(const struct batch *b, size_t i)
{
	return b->reqs ? b->hosts[i] : b->host;
}

/* The run frame of b; NULL when out of memory. */
static json_t *run_frame(const struct batch *b)
{
	int host = 0;
	for (size_t i = 0; i < (b->reqs ? json_array_size(b->reqs) : 1); i++) {
		const struct wk_js_host *h = batch_host(b, i);
		host |= h && h->call;
	}
	json_t *m = json_pack("{sssisb}", "type", "run", "v", WK_SANDBOX_PROTO, "host", host);
	if (!m || json_object_set(m, b->reqs ? "reqs" : "req", (json_t *)(b->reqs ? b->reqs : b->req)) == -1 ||
	    (b->leads && json_object_set(m, "leads", (json_t *)b->leads) == -1)) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* A reply to a request of reqs says when it started, on the child's clock; trusted only between the
 * run frame and this reply's arrival, which is when it finished ("finished_us"). */
static void stamp_times(json_t *replies, int64_t from_us)
{
	int64_t now = cm_time_now_us();
	size_t i;
	json_t *r;
	json_array_foreach(replies, i, r)
	{
		json_t *v = json_object_get(r, "started_us");
		int64_t t = json_is_integer(v) ? json_integer_value(v) : from_us;
		json_object_set_new(r, "started_us", json_integer(t < from_us ? from_us : t > now ? now : t));
		json_object_set_new(r, "finished_us", json_integer(now));
	}
}

/*
 * The conversation of one run frame (b): one run ends with a "reply" frame; the runs of many (leads or
 * reqs) send theirs in "replies" frames. Every reply received is appended to replies (valid ones
 * only). Returns how it ended (END_REPLY: all replies are in); *called says whether a host call came
 * after the last reply (so the first run without a reply made it; its host answers it); why gets the
 * protocol error. The run's time limit counts from the run frame and again from each "replies" frame.
 */
static enum end converse(struct wk_sandbox *sb, struct child *c, const struct batch *b, json_t *replies, int *called,
			 char *why, size_t why_size)
{
	const int64_t limit = (int64_t)sb->o.timeout_ms * 1000, sent_us = cm_time_now_us();
	const int many = b->leads || b->reqs;
	int64_t deadline = cm_time_mono_us() + limit;
	size_t calls = 0, got = 0, want = batch_size(b);
	*called = 0;
	json_t *m = run_frame(b);
	if (!m) {
		snprintf(why, why_size, "out of memory");
		return END_TOO_LARGE;
	}
	int rc = cm_frame_write(c->fd, m, WK_SANDBOX_FRAME_MAX, deadline, why, why_size);
	json_decref(m);
	if (rc == CM_FRAME_TOO_LARGE)
		return END_TOO_LARGE; /* nothing was written: the child is fine */
	if (rc != CM_FRAME_OK)
		return rc == CM_FRAME_TIMEOUT ? END_TIMEOUT : END_DIED;
	for (;;) {
		rc = cm_frame_read(c->fd, WK_SANDBOX_FRAME_MAX, deadline, &m, why, why_size);
		if (rc != CM_FRAME_OK)
			return frame_end(rc);
		const char *type = json_string_value(json_object_get(m, "type"));
		if (type && strcmp(type, many ? "replies" : "reply") == 0) {
			json_t *r = json_object_get(m, many ? "replies" : "reply");
			if (many ? !valid_replies(r, want - got) : !valid_reply(r)) {
				snprintf(why, why_size, "a reply without a valid outcome");
				json_decref(m);
				return END_PROTOCOL;
			}
			if (b->reqs)
				stamp_times(r, sent_us);
			if (many)
				json_array_extend(replies, r);
			else
				json_array_append(replies, r);
			got += many ? json_array_size(r) : 1;
			json_decref(m);
			if (got == want)
				return END_REPLY;
			calls = 0;
			*called = 0;
			deadline = cm_time_mono_us() + limit;
			continue;
		}
		*called = 1;
		enum end end = answer_call(sb, c, m, batch_host(b, got), &calls, &deadline, why, why_size);
		json_decref(m);
		if (end != END_REPLY)
			return end;
	}
}

/* A run that ended badly (timeout, death, protocol): the child is disposed of and counted, and the
 * run's failed reply returned. */
static json_t *ended(struct wk_sandbox *sb, struct child *c, enum end end, const char *name, const char *job,
		     const char *why)
{
	pid_t pid = c->pid;
	json_t *reply = NULL;
	char st[64];
	int status;
	switch (end) {
	case END_TIMEOUT:
		child_kill(c);
		reply = failed_reply("%s: timed out after %d ms", name, sb->o.timeout_ms);
		cm_log_with(CM_LOG_WARN, "job_id", job, "sandbox: %s: timed out after %d ms; child %d killed", name,
			    sb->o.timeout_ms, (int)pid);
		break;
	case END_DIED:
		close(c->fd);
		status = reap_dying(pid); /* the lifeline stays open meanwhile: we want its own death */
		close(c->lifeline);
		free(c);
		describe_status(status, st, sizeof(st));
		if (status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
			reply = failed_reply("%s: the sandbox crashed (%s: a forbidden system call)", name, st);
		else if (status != -1 && WIFSIGNALED(status))
			reply = failed_reply("%s: the sandbox crashed (%s)", name, st);
		else
			reply = failed_reply("%s: the sandbox exited in the middle of the run (%s)", name, st);
		cm_log_with(CM_LOG_WARN, "job_id", job, "sandbox: %s: child %d died during the run (%s)", name,
			    (int)pid, st);
		break;
	default:
		child_kill(c);
		reply = failed_reply("%s: the sandbox broke the protocol (%s)", name, why);
		cm_log_with(CM_LOG_WARN, "job_id", job, "sandbox: %s: child %d broke the protocol and was killed: %s",
			    name, (int)pid, why);
		break;
	}
	pthread_mutex_lock(&sb->mu);
	if (end == END_TIMEOUT)
		sb->st.timeouts++;
	else if (end == END_DIED)
		sb->st.crashes++;
	else
		sb->st.protocol_errors++;
	pthread_mutex_unlock(&sb->mu);
	return reply;
}

static const char *req_name(const json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	return name ? name : "code";
}

static const char *req_job(const json_t *req)
{
	return json_string_value(json_object_get(json_object_get(req, "context"), "jobId"));
}

json_t *wk_sandbox_run(struct wk_sandbox *sb, const json_t *req, const struct wk_js_host *host, char *errstr,
		       size_t errstr_size)
{
	char why[512] = "";
	int called;
	json_t *replies = json_array(), *reply = NULL;
	struct child *c = replies ? acquire(sb, errstr, errstr_size) : NULL;
	if (!c) {
		json_decref(replies);
		top_up(sb);
		return NULL;
	}
	const struct batch b = {.req = req, .host = host};
	enum end end = converse(sb, c, &b, replies, &called, why, sizeof(why));
	if (end == END_REPLY) {
		release(sb, c, 1);
		reply = json_incref(json_array_get(replies, 0));
	} else if (end == END_TOO_LARGE) {
		release(sb, c, 0); /* the child never saw it */
		reply = failed_reply("%s: the run's state is too large for the sandbox (%s)", req_name(req), why);
	} else {
		reply = ended(sb, c, end, req_name(req), req_job(req), why);
	}
	json_decref(replies);
	top_up(sb);
	if (!reply)
		snprintf(errstr, errstr_size, "sandbox: out of memory");
	return reply;
}

/* The runs of b (leads or reqs) on one child at a time. */
static int run_serial(struct wk_sandbox *sb, const struct batch *b, json_t *replies, char *errstr, size_t errstr_size)
{
	const json_t *all = b->reqs ? b->reqs : b->leads;
	size_t n = json_array_size(all), done = 0;
	int one_by_one = 0;
	while (done < n) {
		if (one_by_one) {
			int64_t started = cm_time_now_us();
			json_t *r = batch_request(b, done);
			json_t *reply = r ? wk_sandbox_run(sb, r, batch_host(b, done), errstr, errstr_size) : NULL;
			if (!r)
				snprintf(errstr, errstr_size, "sandbox: out of memory");
			json_decref(r);
			if (reply && b->reqs) {
				json_object_set_new(reply, "started_us", json_integer(started));
				json_object_set_new(reply, "finished_us", json_integer(cm_time_now_us()));
			}
			if (!reply || json_array_append_new(replies, reply) == -1)
				return -1;
			done++;
			continue;
		}
		char why[512] = "";
		int called;
		json_t *rest = json_array();
		for (size_t i = done; rest && i < n; i++)
			json_array_append(rest, json_array_get(all, i));
		struct child *c = rest ? acquire(sb, errstr, errstr_size) : NULL;
		if (!c) {
			json_decref(rest);
			top_up(sb);
			return -1;
		}
		struct batch rb = *b;
		if (b->reqs)
			rb.reqs = rest, rb.hosts = b->hosts + done;
		else
			rb.leads = rest;
		size_t before = json_array_size(replies);
		enum end end = converse(sb, c, &rb, replies, &called, why, sizeof(why));
		json_decref(rest);
		size_t got = json_array_size(replies) - before;
		done += got;
		if (end == END_REPLY) {
			release(sb, c, (int)got);
		} else if (end == END_TOO_LARGE) {
			release(sb, c, 0);
			one_by_one = 1; /* each run alone, and its own error if it is still too large */
		} else {
			pthread_mutex_lock(&sb->mu);
			sb->st.runs += got;
			pthread_mutex_unlock(&sb->mu);
			/* The run that made a host call has its outcome: its call is not made twice. Otherwise
			 * the runs without a reply made none and run again one by one, so that the one at fault
			 * gets the failure (and a crash or a time-out costs only the rest of this call's pace). */
			const json_t *cur = b->reqs ? json_array_get(b->reqs, done) : b->req;
			/* Without a call, which of many requests was at fault is not known yet (the replies of
			 * those before it may still have been held in the child): running them one by one tells. */
			int known = called || !b->reqs;
			json_t *failed = ended(sb, c, end, known ? req_name(cur) : "one of the runs of a frame",
					       known ? req_job(cur) : NULL, why);
			one_by_one = 1;
			if (!called) {
				json_decref(failed);
			} else if (!failed || json_array_append_new(replies, failed) == -1) {
				snprintf(errstr, errstr_size, "sandbox: out of memory");
				top_up(sb);
				return -1;
			} else {
				done++;
			}
		}
		top_up(sb);
	}
	return 0;
}

int wk_sandbox_run_reqs(struct wk_sandbox *sb, const json_t *reqs, const struct wk_js_host *const *hosts,
			json_t *replies, char *errstr, size_t errstr_size)
{
	const struct batch b = {.reqs = reqs, .hosts = hosts};
	return run_serial(sb, &b, replies, errstr, errstr_size);
}

/* A share of the leads, run on a thread of its own. */
struct part {
	struct wk_sandbox *sb;
	const json_t *req;
	json_t *leads, *replies;
	const struct wk_js_host *host;
	pthread_t thread;
	int started, rc;
	char err[300];
};

static void *part_run(void *arg)
{
	struct part *p = arg;
	const struct batch b = {.req = p->req, .leads = p->leads, .host = p->host};
	p->rc = run_serial(p->sb, &b, p->replies, p->err, sizeof(p->err));
	return NULL;
}

/* The caller's host, for several threads: one call at a time (the host is not thread-safe). */
struct shared_host {
	pthread_mutex_t mu;
	const struct wk_js_host *host;
};

static json_t *shared_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size)
{
	struct shared_host *h = ctx;
	pthread_mutex_lock(&h->mu);
	json_t *r = h->host->call(h->host->ctx, method, args, errstr, errstr_size);
	pthread_mutex_unlock(&h->mu);
	return r;
}

int wk_sandbox_run_leads(struct wk_sandbox *sb, const json_t *req, const json_t *leads, const struct wk_js_host *host,
			 json_t *replies, char *errstr, size_t errstr_size)
{
	size_t n = json_array_size(leads), k = (size_t)sb->o.children;
	if (k > WK_SANDBOX_PARTS_MAX)
		k = WK_SANDBOX_PARTS_MAX;
	if (k > n / WK_SANDBOX_PART_MIN)
		k = n / WK_SANDBOX_PART_MIN;
	if (k <= 1) {
		const struct batch b = {.req = req, .leads = leads, .host = host};
		return run_serial(sb, &b, replies, errstr, errstr_size);
	}

	struct shared_host sh = {.mu = PTHREAD_MUTEX_INITIALIZER, .host = host};
	const struct wk_js_host locked = {.call = shared_call, .ctx = &sh};
	struct part parts[WK_SANDBOX_PARTS_MAX] = {0};
	int rc = 0;
	for (size_t i = 0; i < k; i++) {
		struct part *p = &parts[i];
		*p = (struct part){.sb = sb, .req = req, .host = host && host->call ? &locked : NULL, .rc = -1};
		p->leads = json_array(), p->replies = json_array();
		for (size_t j = n * i / k; p->leads && j < n * (i + 1) / k; j++)
			json_array_append(p->leads, json_array_get(leads, j));
		/* the first share on this thread, the others each on one of their own (or here, after) */
		if (i > 0 && p->leads && p->replies && pthread_create(&p->thread, NULL, part_run, p) == 0)
			p->started = 1;
	}
	for (size_t i = 0; i < k; i++) {
		struct part *p = &parts[i];
		if (!p->started && p->leads && p->replies)
			part_run(p);
		else if (p->started)
			pthread_join(p->thread, NULL);
		if (p->rc == -1 && rc == 0) {
			snprintf(errstr, errstr_size, "%s", p->err[0] ? p->err : "sandbox: out of memory");
			rc = -1;
		}
		if (rc == 0)
			json_array_extend(replies, p->replies);
		json_decref(p->leads);
		json_decref(p->replies);
	}
	return rc;
}

/* ---- the pool ---- */

static int default_path(char *buf, size_t n, char *errstr, size_t errstr_size)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0) {
		snprintf(errstr, errstr_size, "cannot find my own executable (/proc/self/exe): %s", strerror(errno));
		return -1;
	}
	self[len] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(buf, n, "%s/%s", slash ? self : ".", WK_SANDBOX_BINARY) >= n) {
		snprintf(errstr, errstr_size, "path too long");
		return -1;
	}
	return 0;
}

/* The child's command line and environment, built once. */
static void build_argv(struct wk_sandbox *sb)
{
	const struct wk_js_limits *l = &sb->o.js;
	size_t i = 0;
	snprintf(sb->args[i++], sizeof(sb->args[0]), "%s", WK_SANDBOX_BINARY);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--heap-max=%zu", l->heap_max);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--messages-max=%zu", l->messages_max);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--jobs-max=%zu", l->jobs_max);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--log-max=%zu", l->log_max);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--calls-max=%zu", l->calls_max);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--states=%zu", l->states < 1 ? 1 : l->states > 4 ? 4 : l->states);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--runs-per-state=%d",
		 l->runs_per_state < 1 ? 1 : l->runs_per_state);
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--timezone=%s", cm_time_zone());
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--log-format=%s",
		 cm_log_get_format() == CM_LOG_TEXT ? "text" : "json");
	static const char *levels[] = {"debug", "info", "warn", "error"};
	snprintf(sb->args[i++], sizeof(sb->args[0]), "--log-level=%s", levels[cm_log_get_level()]);
	for (size_t k = 0; k < i; k++)
		sb->argv[k] = sb->args[k];
	sb->argv[i] = NULL;

	/* No environment (the worker's holds its database URI), but the sanitizers' options. */
	static const char *pass[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
	size_t e = 0;
	for (size_t k = 0; k < CM_ARRAY_LEN(pass); k++) {
		const char *v = getenv(pass[k]);
		size_t kn = strlen(pass[k]), vn = v ? strlen(v) : 0;
		if (v && kn + vn + 2 <= sizeof(sb->envs[0])) {
			memcpy(sb->envs[e], pass[k], kn);
			sb->envs[e][kn] = '=';
			memcpy(sb->envs[e] + kn + 1, v, vn + 1);
			sb->envp[e] = sb->envs[e];
			e++;
		}
	}
	sb->envp[e] = NULL;
}

struct wk_sandbox *wk_sandbox_new(const struct wk_sandbox_opts *opts, char *errstr, size_t errstr_size)
{
	struct wk_sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	sb->o = *opts;
	sb->o.path = NULL;
	pthread_mutex_init(&sb->mu, NULL);
	if (sb->o.children < 1 || sb->o.max_runs < 1 || sb->o.timeout_ms < 1) {
		snprintf(errstr, errstr_size, "sandbox: children, max_runs and timeout_ms must be at least 1");
		goto err;
	}
	if (opts->path && *opts->path) {
		if ((size_t)snprintf(sb->path, sizeof(sb->path), "%s", opts->path) >= sizeof(sb->path)) {
			snprintf(errstr, errstr_size, "sandbox: path too long");
			goto err;
		}
	} else if (default_path(sb->path, sizeof(sb->path), errstr, errstr_size) == -1) {
		goto err;
	}
	if (access(sb->path, X_OK) != 0) {
		snprintf(errstr, errstr_size, "sandbox: %s: %s (see --sandbox-path)", sb->path, strerror(errno));
		goto err;
	}
	build_argv(sb);

	/* Start them all, then greet them all: their start-ups overlap. */
	for (int i = 0; i < sb->o.children; i++) {
		struct child *c = child_spawn(sb, errstr, errstr_size);
		if (!c)
			goto err;
		idle_push(sb, c);
	}
	for (struct child *c = sb->idle_head; c; c = c->next) {
		char why[512];
		if (child_greet(c, why, sizeof(why)) == -1) {
			snprintf(errstr, errstr_size, "sandbox: %s: %s", sb->path, why);
			if (c->pid > 0)
				kill(c->pid, SIGKILL);
			goto err;
		}
	}
	cm_log_info("sandbox: %d %s of %s ready (at most %d runs each, %d ms per run)", sb->o.children,
		    sb->o.children == 1 ? "child" : "children", sb->path, sb->o.max_runs, sb->o.timeout_ms);
	return sb;
err:
	wk_sandbox_free(sb);
	return NULL;
}

void wk_sandbox_free(struct wk_sandbox *sb)
{
	if (!sb)
		return;
	struct child *c;
	while ((c = idle_pop(sb)))
		child_retire(sb, c);
	int64_t until = cm_time_mono_us() + RETIRE_GRACE_US;
	while (sb->zombies && cm_time_mono_us() < until) {
		zombies_reap(sb, 0);
		struct timespec ts = {0, 1000000};
		if (sb->zombies)
			nanosleep(&ts, NULL);
	}
	while (sb->zombies) {
		struct zombie *z = sb->zombies;
		sb->zombies = z->next;
		kill_and_reap(z->pid);
		close(z->lifeline);
		free(z);
	}
	pthread_mutex_destroy(&sb->mu);
	free(sb);
}

void wk_sandbox_stats(struct wk_sandbox *sb, struct wk_sandbox_stats *out)
{
	pthread_mutex_lock(&sb->mu);
	*out = sb->st;
	pthread_mutex_unlock(&sb->mu);
}
