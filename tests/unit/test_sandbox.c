/*
 * test_sandbox.c - the sandbox pool (wk_sandbox.h) with the real botjobs-sandbox binary of this build:
 * the same replies as wk_js_run in-process, host calls answered by the parent, the watchdog, crashes,
 * retirement, protocol errors (fake children written as shell scripts), the seccomp filter and the
 * lifeline.
 */
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm_frame.h"
#include "cm_time.h"
#include "wk_runtime.h"
#include "wk_sandbox.h"

#ifndef BOTJOBS_SANDBOX_BIN /* the Makefile passes the binary of the same build */
#define BOTJOBS_SANDBOX_BIN "bin/botjobs-sandbox"
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static struct wk_sandbox_opts opts(int children, int max_runs, int timeout_ms)
{
	struct wk_sandbox_opts o = {.path = BOTJOBS_SANDBOX_BIN,
				    .children = children,
				    .max_runs = max_runs,
				    .timeout_ms = timeout_ms,
				    .js = wk_js_default_limits};
	o.js.heap_max = 16u << 20;
	return o;
}

static struct wk_sandbox *pool(int children, int max_runs, int timeout_ms)
{
	char err[512];
	struct wk_sandbox_opts o = opts(children, max_runs, timeout_ms);
	struct wk_sandbox *sb = wk_sandbox_new(&o, err, sizeof(err));
	cr_assert(sb, "wk_sandbox_new: %s", err);
	return sb;
}

static json_t *request(const char *code)
{
	json_t *r =
		json_pack("{s{sisiss} s{sissss s{ss} s[ss]} s{sis{ss}} s{sssf} ss ss}", "context", "botId", 1, "leadId",
			  7, "jobId", "01a212f2-b91c-7e27-83e4-9f71b82b0035", "lead", "id", 7, "name", "Ann", "channel",
			  "telegram", "attributes", "lang", "en", "tags", "a", "b", "bot", "id", 1, "attributes",
			  "greeting", "Hello", "params", "text", "hi", "x", 0.1, "name", "trigger t", "code", code);
	cr_assert(r, "test request");
	return r;
}

static json_t *run(struct wk_sandbox *sb, const char *code, const struct wk_js_host *host)
{
	char err[512];
	json_t *req = request(code);
	json_t *r = wk_sandbox_run(sb, req, host, err, sizeof(err));
	json_decref(req);
	cr_assert(r, "wk_sandbox_run: %s", err);
	return r;
}

static const char *outcome(const json_t *r)
{
	const char *o = json_string_value(json_object_get(r, "outcome"));
	return o ? o : "";
}

static const char *error(const json_t *r)
{
	const char *e = json_string_value(json_object_get(r, "error"));
	return e ? e : "";
}

static struct wk_sandbox_stats stats(struct wk_sandbox *sb)
{
	struct wk_sandbox_stats st;
	wk_sandbox_stats(sb, &st);
	return st;
}

static double now_ms(void)
{
	return (double)cm_time_mono_us() / 1000.0;
}

/* ---- the same replies as in-process ---- */

Test(sandbox, same_replies_as_in_process)
{
	static const struct {
		const char *label, *code;
	} cases[] = {
		{"echo with effects",
		 "var t = request.json.text;\nlead.setAttr('echo', t);\nbot.sendText('echo: ' + t);\n"
		 "lead.addTag('c'); lead.deleteTag('a'); bot.setAttr('n', 2);\nreturn {echoed: t};"},
		{"values",
		 "return [request.json.x, 1e300, -0, 2147483648 * 4, 'ü\\u2603', null, true, {a: [1, {b: 2}]}];"},
		{"dates", "return [new Date(0), new Date(86400000).toISOString()];"},
		{"syntax error", "var a = 1;\nvar b = ;\n"},
		{"runtime error", "var a = 1;\n\nnull.x = a;"},
		{"thrown value", "throw {code: 42};"},
		{"console", "console.log('a', 1, {b: 2}); return 1;"},
		{"memory cap", "var s = 'x'; while (true) s += s;"},
		{"stack overflow", "function f() { return f(); }\nreturn f();"},
		{"shell functions", "return [typeof print, typeof load, typeof read, typeof quit, typeof require];"},
		{"load", "load('x');"},
		{"no host", "return bot.findLeads(null, ['name', 'Ann']);"},
		{"no return", "lead.setAttr('k', 'v');"},
	};
	struct wk_sandbox *sb = pool(1, 1000, 5000);
	struct wk_sandbox_opts o = opts(1, 1, 1);
	for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
		json_t *req = request(cases[i].code);
		json_t *want = wk_js_run(req, &o.js, NULL);
		char err[512];
		json_t *got = wk_sandbox_run(sb, req, NULL, err, sizeof(err));
		cr_assert(got, "%s: wk_sandbox_run: %s", cases[i].label, err);
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS),
		     *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
		cr_expect(json_equal(got, want), "%s: got %s, want %s", cases[i].label, g, w);
		free(g), free(w);
		json_decref(got), json_decref(want), json_decref(req);
	}
	struct wk_sandbox_stats st = stats(sb);
	cr_expect_eq(st.spawned, 1, "one child served every run: got %lu spawned", st.spawned);
	cr_expect_eq(st.runs, CM_ARRAY_LEN(cases));
	wk_sandbox_free(sb);
}

/* ---- host calls ---- */

struct fake_host {
	char method[64];
	json_t *args;
	json_t *answer; /* NULL = refuse */
	int sleep_ms;
	pid_t pid; /* the process that answered */
	int calls;
};

static json_t *fake_call(void *ctx, const char *method, const json_t *args, char *err, size_t n)
{
	struct fake_host *h = ctx;
	h->calls++;
	snprintf(h->method, sizeof(h->method), "%s", method);
	json_decref(h->args);
	h->args = json_deep_copy(args);
	h->pid = getpid();
	if (h->sleep_ms) {
		struct timespec ts = {h->sleep_ms / 1000, (long)(h->sleep_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (!h->answer) {
		snprintf(err, n, "refused by the test host");
		return NULL;
	}
	return json_incref(h->answer);
}

Test(sandbox, host_calls_are_answered_by_the_parent)
{
	struct wk_sandbox *sb = pool(1, 1000, 5000);
	struct fake_host h = {.answer = json_pack("[{si ss}]", "id", 2, "name", "Bob")};
	struct wk_js_host host = {fake_call, &h};
	json_t *r = run(sb,
			"var l = bot.findLeads(['id', 'name'], [['name', 'Bob']], 'id desc', 10, 5);\n"
			"return l[0].name + l.length;",
			&host);
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "Bob1");
	cr_expect_str_eq(h.method, "findLeads");
	cr_expect_eq(h.pid, getpid(), "the call is answered in the parent");
	char *a = json_dumps(h.args, JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect_str_eq(a, "{\"columns\":[\"id\",\"name\"],\"limit\":10,\"offset\":5,\"order_by\":\"id desc\","
			    "\"where\":[[\"name\",\"Bob\"]]}");
	free(a);
	json_decref(r), json_decref(h.answer);

	/* api.* with headers and status, several calls in one run */
	h.answer = json_pack("{si s{ss}}", "status", 201, "body", "ok", "yes");
	r = run(sb,
		"api.setHeaders({'X-Key': 'k1'});\nvar b = api.postJson('https://example.org/hook', {a: 1});\n"
		"var c = api.getJson('https://example.org/x');\nreturn [b.ok, c.ok, api.getLastResponseCode()];",
		&host);
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[\"yes\",\"yes\",201]");
	free(s);
	cr_expect_str_eq(h.method, "api.getJson");
	json_decref(r), json_decref(h.answer);

	/* a refused call is a JS error with its line, and catchable */
	h.answer = NULL;
	r = run(sb, "var x = 1;\napi.getJson('http://169.254.169.254/');", &host);
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "line 2") && strstr(error(r), "refused by the test host"), "got '%s'", error(r));
	json_decref(r);
	r = run(sb, "try { api.getJson('http://x/'); } catch (e) { return 'caught: ' + e.message; }", &host);
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")),
			 "caught: api.getJson: refused by the test host");
	json_decref(r);

	/* the run's call limit holds in the child; the parent counts too */
	h.answer = json_pack("[]");
	r = run(sb, "for (var i = 0; i < 60; i++) bot.findLeads();", &host);
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "at most 50 calls") != NULL, "got '%s'", error(r));
	json_decref(r), json_decref(h.answer), json_decref(h.args);
	cr_expect_eq(stats(sb).protocol_errors, 0);
	wk_sandbox_free(sb);
}

Test(sandbox, time_spent_answering_host_calls_is_not_the_scripts)
{
	struct wk_sandbox *sb = pool(1, 1000, 300);
	struct fake_host h = {.answer = json_pack("[]"), .sleep_ms = 200};
	struct wk_js_host host = {fake_call, &h};
	json_t *r = run(sb, "bot.findLeads(); bot.findLeads(); return 'ok';", &host);
	cr_expect_str_eq(outcome(r), "done", "400 ms in the host, 300 ms allowed to the script: %s", error(r));
	json_decref(r), json_decref(h.answer), json_decref(h.args);
	wk_sandbox_free(sb);
}

/* ---- the watchdog, crashes, retirement ---- */

Test(sandbox, runaway_scripts_are_killed_and_replaced)
{
	static const struct {
		const char *label, *code;
	} cases[] = {
		{"busy loop", "while (true) {}"},
		{"catastrophic regular expression (native code)",
		 "return /(a+)+b/.test('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');"},
		{"a loop that catches its errors", "while (true) { try { null.x = 1; } catch (e) {} }"},
	};
	struct wk_sandbox *sb = pool(1, 1000, 300);
	for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
		double t0 = now_ms();
		json_t *r = run(sb, cases[i].code, NULL);
		double took = now_ms() - t0;
		cr_expect_str_eq(outcome(r), "failed", "%s", cases[i].label);
		cr_expect_str_eq(error(r), "trigger t: timed out after 300 ms", "%s: got '%s'", cases[i].label,
				 error(r));
		cr_expect(took >= 300 && took < 2000, "%s: took %.0f ms, want 300 ms and a little", cases[i].label,
			  took);
		json_decref(r);
		r = run(sb, "return 'next';", NULL);
		cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "next", "%s: the next run: %s",
				 cases[i].label, error(r));
		json_decref(r);
	}
	struct wk_sandbox_stats st = stats(sb);
	cr_expect_eq(st.timeouts, CM_ARRAY_LEN(cases));
	cr_expect_eq(st.spawned, 1 + CM_ARRAY_LEN(cases), "a fresh child for each one killed: got %lu", st.spawned);
	wk_sandbox_free(sb);
}

/* The pid of a running (state R) botjobs-sandbox child of this process, or 0. */
static pid_t busy_child(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	while (d && !found && (e = readdir(d))) {
		char path[300], line[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f)) {
			char *rp = strrchr(line, ')');
			char state;
			int ppid;
			if (strstr(line, "(botjobs-sandbox)") && rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 &&
			    ppid == getpid() && state == 'R')
				found = atoi(e->d_name);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

static void *crash_busy_child(void *arg)
{
	int sig = *(int *)arg;
	struct timespec settle = {0, 100000000}; /* let the run get into its loop */
	nanosleep(&settle, NULL);
	for (int i = 0; i < 500; i++) {
		pid_t p = busy_child();
		if (p) {
			kill(p, sig);
			return NULL;
		}
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

Test(sandbox, a_crash_fails_only_its_own_run)
{
	struct wk_sandbox *sb = pool(2, 1000, 10000);
	pthread_t t;
	int sig = SIGSEGV;
	pthread_create(&t, NULL, crash_busy_child, &sig);
	json_t *r = run(sb, "while (true) {}", NULL);
	pthread_join(t, NULL);
	cr_expect_str_eq(outcome(r), "failed");
	if (!SANITIZED)
		cr_expect_str_eq(error(r), "trigger t: the sandbox crashed (signal 11, SIGSEGV)", "got '%s'", error(r));
	else /* AddressSanitizer catches SIGSEGV, reports and exits 1 */
		cr_expect(strstr(error(r), "trigger t: the sandbox ") != NULL, "got '%s'", error(r));
	json_decref(r);
	cr_expect_eq(stats(sb).crashes, 1);
	r = run(sb, "return 'still here';", NULL);
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "still here", "%s", error(r));
	json_decref(r);
	wk_sandbox_free(sb);
}

Test(sandbox, children_retire_after_max_runs)
{
	struct wk_sandbox *sb = pool(1, 3, 5000);
	for (int i = 0; i < 7; i++) {
		json_t *r = run(sb, "return 1;", NULL);
		cr_expect_str_eq(outcome(r), "done", "run %d: %s", i, error(r));
		json_decref(r);
	}
	struct wk_sandbox_stats st = stats(sb);
	cr_expect_eq(st.retired, 2, "7 runs, 3 per child: got %lu retired", st.retired);
	cr_expect_eq(st.spawned, 3, "got %lu spawned", st.spawned);
	cr_expect_eq(st.idle, 1);
	wk_sandbox_free(sb);
}

/* A child keeps its MuJS state for a bot across runs (wk_js.h), as the in-process engine does: a
 * non-enumerable global that one run defines is still there in the next run of the same bot, until
 * runs_per_state runs rebuild the state. */
Test(sandbox, a_child_reuses_its_state_for_a_bot)
{
	char err[512];
	struct wk_sandbox_opts o = opts(1, 1000, 5000);
	o.js.runs_per_state = 3;
	struct wk_sandbox *sb = wk_sandbox_new(&o, err, sizeof(err));
	cr_assert(sb, "wk_sandbox_new: %s", err);
	static const char code[] = "var seen = typeof kept === 'number' ? kept : 0;"
				   "Object.defineProperty(this, 'kept', {value: seen + 1, writable: true});"
				   "return seen;";
	static const int expect[] = {0, 1, 2, 0, 1, 2, 0};
	for (int i = 0; i < 7; i++) {
		json_t *r = run(sb, code, NULL);
		cr_expect_str_eq(outcome(r), "done", "run %d: %s", i, error(r));
		cr_expect_eq(json_integer_value(json_object_get(r, "result")), expect[i], "run %d", i);
		json_decref(r);
	}
	cr_expect_eq(stats(sb).spawned, 1);
	wk_sandbox_free(sb);
}

struct many {
	struct wk_sandbox *sb;
	int ok;
};

static void *many_runs(void *arg)
{
	struct many *m = arg;
	for (int i = 0; i < 25; i++) {
		char err[512];
		json_t *req = request("return leadId * 2;");
		json_t *r = wk_sandbox_run(m->sb, req, NULL, err, sizeof(err));
		if (r && json_integer_value(json_object_get(r, "result")) == 14)
			m->ok++;
		json_decref(r), json_decref(req);
	}
	return NULL;
}

Test(sandbox, several_threads_share_the_pool)
{
	struct wk_sandbox *sb = pool(2, 10, 5000);
	struct many m[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		m[i] = (struct many){.sb = sb};
		pthread_create(&t[i], NULL, many_runs, &m[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(m[i].ok, 25, "thread %d: %d of 25 runs right", i, m[i].ok);
	}
	struct wk_sandbox_stats st = stats(sb);
	cr_expect_eq(st.runs, 100);
	cr_expect(st.idle <= 2, "idle children over the target: %d", st.idle);
	wk_sandbox_free(sb);
}

Test(sandbox, a_request_too_large_for_a_frame_fails_its_run)
{
	struct wk_sandbox *sb = pool(1, 1000, 5000);
	json_t *req = request("return 1;");
	size_t n = WK_SANDBOX_FRAME_MAX + 1;
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	json_object_set_new(json_object_get(req, "params"), "big", json_string(big));
	free(big);
	char err[512];
	json_t *r = wk_sandbox_run(sb, req, NULL, err, sizeof(err));
	json_decref(req);
	cr_assert(r, "%s", err);
	cr_expect(strstr(error(r), "too large for the sandbox") != NULL, "got '%s'", error(r));
	json_decref(r);
	r = run(sb, "return 2;", NULL);
	cr_expect_eq(json_integer_value(json_object_get(r, "result")), 2);
	json_decref(r);
	cr_expect_eq(stats(sb).spawned, 1, "the child never saw it and lives on");
	wk_sandbox_free(sb);
}

Test(sandbox, a_missing_binary_is_a_start_up_error)
{
	char err[512];
	struct wk_sandbox_opts o = opts(1, 10, 100);
	o.path = "/nonexistent/botjobs-sandbox";
	cr_expect_null(wk_sandbox_new(&o, err, sizeof(err)));
	cr_expect(strstr(err, "/nonexistent/botjobs-sandbox") && strstr(err, "--sandbox-path"), "got '%s'", err);
}

/* ---- protocol errors, with fake children ---- */

static void frame_bytes(FILE *f, const char *json)
{
	size_t n = strlen(json);
	unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
			      (unsigned char)n};
	fwrite(h, 1, 4, f);
	fwrite(json, 1, n, f);
}

/*
 * Writes a fake sandbox into dir: it sends out.bin (the hello, then `then` raw bytes) on fd 3, then
 * either reads until EOF (exit_after = 0) or exits after that many ms. Returns its path.
 */
static char *fake_child(char *dir, const char *hello, const void *then, size_t then_n, int exit_after_ms)
{
	static char path[400];
	char out[400];
	cr_assert(mkdtemp(dir), "mkdtemp");
	snprintf(out, sizeof(out), "%s/out.bin", dir);
	FILE *f = fopen(out, "wb");
	if (hello)
		frame_bytes(f, hello);
	if (then_n)
		fwrite(then, 1, then_n, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/fake-sandbox", dir);
	f = fopen(path, "w");
	if (exit_after_ms)
		fprintf(f, "#!/bin/sh\n/bin/cat %s >&3\n/bin/sleep %d.%03d\nexit 0\n", out, exit_after_ms / 1000,
			exit_after_ms % 1000);
	else
		fprintf(f, "#!/bin/sh\n/bin/cat %s >&3\nexec /bin/cat <&3 >/dev/null\n", out);
	fclose(f);
	chmod(path, 0755);
	return path;
}

static const char HELLO[] = "{\"type\":\"hello\",\"v\":3,\"pid\":1}";

Test(sandbox, protocol_errors_kill_the_child_and_fail_the_run)
{
	static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
	static const struct {
		const char *label;
		const char *frame; /* after the hello; NULL = raw */
		const void *raw;
		size_t raw_n;
		const char *want;
	} cases[] = {
		{"not JSON", "this is not json", NULL, 0, "frame is not a JSON object"},
		{"not an object", "[1,2]", NULL, 0, "frame is not a JSON object"},
		{"unknown type", "{\"type\":\"bogus\"}", NULL, 0, "an unexpected frame (type bogus)"},
		{"reply without outcome", "{\"type\":\"reply\",\"reply\":{\"effects\":{}}}", NULL, 0,
		 "a reply without a valid outcome"},
		{"reply with another outcome", "{\"type\":\"reply\",\"reply\":{\"outcome\":\"won\"}}", NULL, 0,
		 "a reply without a valid outcome"},
		{"call without a method", "{\"type\":\"call\",\"args\":{}}", NULL, 0,
		 "an unexpected frame (type call)"},
		{"call without args", "{\"type\":\"call\",\"method\":\"findLeads\"}", NULL, 0,
		 "an unexpected frame (type call)"},
		{"frame over the cap", NULL, huge, sizeof(huge), "frame of 4294967295 bytes"},
		{"empty frame", NULL, "\0\0\0\0", 4, "frame of 0 bytes"},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
		char dir[] = "/tmp/botjobs-test-sandbox-XXXXXX", buf[600];
		size_t n = cases[i].raw_n;
		if (cases[i].frame) {
			FILE *m = fmemopen(buf, sizeof(buf), "wb");
			frame_bytes(m, cases[i].frame);
			n = (size_t)ftell(m);
			fclose(m);
		}
		struct wk_sandbox_opts o = opts(1, 10, 2000);
		o.path = fake_child(dir, HELLO, cases[i].frame ? (const void *)buf : cases[i].raw, n, 0);
		char err[512];
		struct wk_sandbox *sb = wk_sandbox_new(&o, err, sizeof(err));
		cr_assert(sb, "%s: %s", cases[i].label, err);
		json_t *r = run(sb, "return 1;", NULL);
		cr_expect_str_eq(outcome(r), "failed", "%s", cases[i].label);
		cr_expect(strstr(error(r), "trigger t: the sandbox broke the protocol (") &&
				  strstr(error(r), cases[i].want),
			  "%s: got '%s', want '%s'", cases[i].label, error(r), cases[i].want);
		json_decref(r);
		cr_expect_eq(stats(sb).protocol_errors, 1, "%s", cases[i].label);
		wk_sandbox_free(sb);
	}
}

Test(sandbox, children_that_do_not_greet_properly_are_refused)
{
	static const struct {
		const char *label, *hello, *want;
		int exit_after_ms;
	} cases[] = {
		{"another protocol version", "{\"type\":\"hello\",\"v\":99,\"pid\":1}",
		 "the child speaks protocol version 99, this worker 3", 0},
		{"no hello", "{\"type\":\"reply\",\"reply\":{\"outcome\":\"done\"}}", "did not greet with a hello", 0},
		{"exits at once", NULL, "the child exited before its greeting (status 0", 1},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
		char dir[] = "/tmp/botjobs-test-sandbox-XXXXXX", err[512];
		struct wk_sandbox_opts o = opts(1, 10, 2000);
		o.path = fake_child(dir, cases[i].hello, NULL, 0, cases[i].exit_after_ms);
		cr_expect_null(wk_sandbox_new(&o, err, sizeof(err)), "%s", cases[i].label);
		cr_expect(strstr(err, cases[i].want) != NULL, "%s: got '%s', want '%s'", cases[i].label, err,
			  cases[i].want);
	}
}

Test(sandbox, a_child_that_exits_during_a_run)
{
	char dir[] = "/tmp/botjobs-test-sandbox-XXXXXX", err[512];
	struct wk_sandbox_opts o = opts(1, 10, 5000);
	o.path = fake_child(dir, HELLO, NULL, 0, 300);
	struct wk_sandbox *sb = wk_sandbox_new(&o, err, sizeof(err));
	cr_assert(sb, "%s", err);
	json_t *r = run(sb, "return 1;", NULL);
	cr_expect_str_eq(error(r), "trigger t: the sandbox exited in the middle of the run (status 0)", "got '%s'",
			 error(r));
	json_decref(r);
	cr_expect_eq(stats(sb).crashes, 1);
	wk_sandbox_free(sb);
}

/* ---- the jail, on a child started by hand ---- */

struct hand {
	pid_t pid;
	int sock;     /* our end of fd 3 */
	int lifeline; /* the write end of fd 4 */
};

static struct hand start_by_hand(const char *arg)
{
	struct hand h;
	int sv[2], lp[2];
	cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	cr_assert(pipe2(lp, O_CLOEXEC) == 0);
	int s = fcntl(sv[1], F_DUPFD_CLOEXEC, 10), l = fcntl(lp[0], F_DUPFD_CLOEXEC, 10);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, s, WK_SANDBOX_FD);
	posix_spawn_file_actions_adddup2(&fa, l, WK_SANDBOX_LIFELINE);
	char *argv[] = {"botjobs-sandbox", "--log-format=text", (char *)arg, NULL};
	char *envp[] = {NULL};
	cr_assert(posix_spawn(&h.pid, BOTJOBS_SANDBOX_BIN, &fa, NULL, argv, envp) == 0);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]), close(s), close(lp[0]), close(l);
	h.sock = sv[0];
	h.lifeline = lp[1];
	return h;
}

Test(sandbox, forbidden_system_calls_kill_the_child)
{
	static const char *calls[] = {"open", "socket", "execve", "fork", "kill", "ptrace", "mmap-exec", "read-stderr"};
	for (size_t i = 0; i < CM_ARRAY_LEN(calls); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "--selftest=%s", calls[i]);
		struct hand h = start_by_hand(arg);
		int status;
		cr_assert(waitpid(h.pid, &status, 0) == h.pid);
		close(h.sock), close(h.lifeline);
		int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
		/* Sanitizer builds let open fail with ENOSYS so that a report can be printed (exit 5). */
		int refused =
			SANITIZED && strcmp(calls[i], "open") == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 5;
		cr_expect(killed || refused, "%s: got wait status %#x, want SIGSYS", calls[i], (unsigned)status);
	}
}

/* The botjobs-sandbox children of parent, into pids; returns how many. */
static int children_of(pid_t parent, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d && n < max && (e = readdir(d))) {
		char path[300], line[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		char *rp;
		int ppid;
		if (fgets(line, sizeof(line), f) && strstr(line, "(botjobs-sandbox)") && (rp = strrchr(line, ')')) &&
		    sscanf(rp + 4, "%d", &ppid) == 1 && ppid == parent)
			pids[n++] = atoi(e->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static int alive(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char *rp = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	return rp && rp[2] != 'Z';
}

Test(sandbox, the_children_die_with_the_worker_even_when_busy)
{
	/* A stand-in worker: a process with a pool of 3, one child spinning in a run; then SIGKILL. */
	pid_t worker = fork();
	cr_assert(worker >= 0);
	if (worker == 0) {
		struct wk_sandbox *sb = pool(3, 1000, 60000);
		json_decref(run(sb, "while (true) {}", NULL));
		_exit(1);
	}
	pid_t pids[8];
	int n = 0;
	for (int i = 0; i < 500 && n < 3; i++) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
		n = children_of(worker, pids, 8);
	}
	cr_assert_eq(n, 3, "the stand-in worker has %d children, want 3", n);
	struct timespec settle = {0, 200000000};
	nanosleep(&settle, NULL);
	kill(worker, SIGKILL);
	waitpid(worker, NULL, 0);
	double t0 = now_ms();
	for (int i = 0; i < n; i++) {
		while (alive(pids[i]) && now_ms() - t0 < 2000) {
			struct timespec ts = {0, 5000000};
			nanosleep(&ts, NULL);
		}
		cr_expect(!alive(pids[i]), "child %d (%d of %d) outlived the worker", (int)pids[i], i + 1, n);
	}
}

/* The value of a "Key:" line of /proc/<pid>/<file>, or "". */
static const char *proc_line(pid_t pid, const char *file, const char *key, char *buf, size_t n)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "r");
	buf[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0) {
			char *v = line + strlen(key);
			while (*v == ' ' || *v == '\t' || *v == ':')
				v++;
			v[strcspn(v, "\n")] = '\0';
			snprintf(buf, n, "%s", v);
			break;
		}
	if (f)
		fclose(f);
	return buf;
}

Test(sandbox, a_pool_child_is_locked_down)
{
	struct wk_sandbox *sb = pool(1, 1000, 5000);
	pid_t pid;
	cr_assert_eq(children_of(getpid(), &pid, 1), 1);
	char v[256], want[64];
	cr_expect_str_eq(proc_line(pid, "status", "NoNewPrivs", v, sizeof(v)), "1");
	cr_expect_str_eq(proc_line(pid, "status", "Seccomp:", v, sizeof(v)), "2", "seccomp filter mode");
	cr_expect(strncmp(proc_line(pid, "limits", "Max core file size", v, sizeof(v)), "0 ", 2) == 0, "core: '%s'", v);
	if (!SANITIZED) {
		struct wk_sandbox_opts o = opts(1, 1, 1);
		snprintf(want, sizeof(want), "%zu", o.js.heap_max + 4 * WK_SANDBOX_FRAME_MAX + ((size_t)256 << 20));
		proc_line(pid, "limits", "Max address space", v, sizeof(v));
		cr_expect(strncmp(v, want, strlen(want)) == 0, "address space: got '%s', want %s", v, want);
	}
	/* Its descriptors: /dev/null, /dev/null, stderr, the socket, the lifeline; nothing else. */
	char path[64];
	for (int fd = 0; fd < 64; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		ssize_t n = readlink(path, v, sizeof(v) - 1);
		if (fd <= WK_SANDBOX_LIFELINE) {
			cr_expect(n > 0, "fd %d is missing", fd);
			continue;
		}
		cr_expect(n < 0, "fd %d is open in the child", fd);
	}
	wk_sandbox_free(sb);
}

/* ---- one request for many leads (a broadcast's chunk) ---- */

/* n leads {id: i, attributes: {n: i}}, i = 1..n */
static json_t *leads_1_to(int n)
{
	json_t *a = json_array();
	for (int i = 1; i <= n; i++)
		json_array_append_new(
			a, json_pack("{si ss s{si} s[]}", "id", i, "name", "L", "attributes", "n", i, "tags"));
	return a;
}

static json_t *run_leads(struct wk_sandbox *sb, const char *code, const json_t *leads, const struct wk_js_host *host)
{
	char err[512];
	json_t *req = request(code), *replies = json_array();
	json_object_del(req, "lead");
	int rc = wk_sandbox_run_leads(sb, req, leads, host, replies, err, sizeof(err));
	json_decref(req);
	cr_assert_eq(rc, 0, "wk_sandbox_run_leads: %s", err);
	cr_assert_eq(json_array_size(replies), json_array_size(leads), "one reply per lead");
	return replies;
}

/* 200 leads: shared between the pool's 2 children, each on a thread of its own, host calls included. */
Test(sandbox, one_frame_runs_a_request_for_many_leads_as_in_process)
{
	static const char code[] = "var n = lead.getAttr('n');\nif (n == 3) throw new Error('three');\n"
				   "lead.setAttr('twice', n * 2); bot.sendText('hi ' + n);\n"
				   "return [n, leadId, bot.findLeads(['id'], [], 'id', 1, 0)[0].id];";
	enum { N = 200 };
	struct wk_sandbox *sb = pool(2, 1000, 5000);
	struct fake_host h = {.answer = json_pack("[{si}]", "id", 9)};
	struct wk_js_host host = {fake_call, &h};
	json_t *leads = leads_1_to(N);

	char err[512];
	struct wk_runtime_opts ro = {.js = wk_js_default_limits};
	struct wk_runtime *rt = wk_runtime_new(&ro, err, sizeof(err));
	cr_assert(rt, "%s", err);
	json_t *req = request(code), *want = json_array(), *got = json_array();
	json_object_del(req, "lead");
	json_object_set_new(req, "code_condition", json_string("return lead.getAttr('n') != 5;"));
	cr_assert_eq(wk_runtime_run_leads(rt, req, leads, &host, want, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_array_size(want), N);
	h.calls = 0;
	cr_assert_eq(wk_sandbox_run_leads(sb, req, leads, &host, got, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_array_size(got), N);
	cr_expect_eq(stats(sb).runs, N);
	cr_expect_eq(h.calls, N - 2, "one host call per lead that got that far");
	for (size_t i = 0; i < N; i++) {
		/* and the same as a run of its own */
		json_t *one = wk_js_lead_request(req, json_array_get(leads, i));
		json_t *alone = wk_js_run(one, NULL, &host);
		char *g = json_dumps(json_array_get(got, i), JSON_COMPACT | JSON_SORT_KEYS);
		char *w = json_dumps(json_array_get(want, i), JSON_COMPACT | JSON_SORT_KEYS);
		char *a = json_dumps(alone, JSON_COMPACT | JSON_SORT_KEYS);
		cr_expect_str_eq(g, w, "lead %zu: sandbox vs in-process", i + 1);
		cr_expect_str_eq(g, a, "lead %zu: many vs alone", i + 1);
		free(g), free(w), free(a);
		json_decref(one), json_decref(alone);
	}
	cr_expect_str_eq(outcome(json_array_get(got, 2)), "failed");
	cr_expect_str_eq(error(json_array_get(got, 2)), "trigger t, line 2: Error: three");
	cr_expect_str_eq(outcome(json_array_get(got, 4)), "skipped");
	char *r = json_dumps(json_object_get(json_array_get(got, N - 1), "result"), JSON_COMPACT);
	cr_expect_str_eq(r, "[\"200\",200,9]", "an attribute is a string, leadId the lead's");
	free(r);
	json_decref(got), json_decref(want), json_decref(req), json_decref(leads);
	json_decref(h.answer), json_decref(h.args);
	wk_runtime_free(rt);
	wk_sandbox_free(sb);
}

Test(sandbox, a_runaway_lead_fails_alone_and_the_other_leads_still_run)
{
	struct wk_sandbox *sb = pool(1, 1000, 300);
	json_t *leads = leads_1_to(5);
	json_t *got =
		run_leads(sb, "var n = lead.getIntAttr('n');\nif (n == 3) while (true) {}\nreturn n;", leads, NULL);
	for (int i = 0; i < 5; i++) {
		const json_t *r = json_array_get(got, (size_t)i);
		if (i == 2) {
			cr_expect_str_eq(outcome(r), "failed");
			cr_expect_str_eq(error(r), "trigger t: timed out after 300 ms");
		} else {
			cr_expect_str_eq(outcome(r), "done", "lead %d: %s", i + 1, error(r));
			cr_expect_eq(json_number_value(json_object_get(r, "result")), i + 1);
		}
	}
	/* the many-lead run's time-out, then lead 3's own when the leads without a reply ran one by one */
	cr_expect_eq(stats(sb).timeouts, 2);
	json_decref(got), json_decref(leads);
	wk_sandbox_free(sb);
}

Test(sandbox, a_lead_that_made_a_host_call_is_not_run_again)
{
	struct wk_sandbox *sb = pool(1, 1000, 300);
	struct fake_host h = {.answer = json_pack("[{si}]", "id", 9)};
	struct wk_js_host host = {fake_call, &h};
	json_t *leads = leads_1_to(4);
	json_t *got = run_leads(sb,
				"var n = lead.getIntAttr('n');\nif (n == 2) { bot.findLeads(['id'], [], 'id', 1, 0);"
				" while (true) {} }\nreturn bot.findLeads(['id'], [], 'id', 1, 0)[0].id + n;",
				leads, &host);
	cr_expect_str_eq(outcome(json_array_get(got, 1)), "failed");
	cr_expect_str_eq(error(json_array_get(got, 1)), "trigger t: timed out after 300 ms");
	for (int i = 0; i < 4; i++)
		if (i != 1)
			cr_expect_eq(json_number_value(json_object_get(json_array_get(got, (size_t)i), "result")),
				     9 + i + 1, "lead %d: %s", i + 1, error(json_array_get(got, (size_t)i)));
	cr_expect_eq(h.calls, 4, "lead 2's call once, one for each other lead");
	cr_expect_eq(stats(sb).timeouts, 1);
	json_decref(got), json_decref(leads), json_decref(h.answer), json_decref(h.args);
	wk_sandbox_free(sb);
}

/* Lead 1 calls the host and ends at once, lead 2 loops: the time-out is lead 2's, lead 1 keeps its reply. */
Test(sandbox, a_time_out_after_a_host_call_is_charged_to_the_right_lead)
{
	struct wk_sandbox *sb = pool(1, 1000, 300);
	struct fake_host h = {.answer = json_pack("[{si}]", "id", 9)};
	struct wk_js_host host = {fake_call, &h};
	json_t *leads = leads_1_to(3);
	json_t *got = run_leads(sb,
				"var n = lead.getIntAttr('n');\nif (n == 2) while (true) {}\n"
				"return n == 1 ? bot.findLeads(['id'], [], 'id', 1, 0)[0].id : n;",
				leads, &host);
	cr_expect_str_eq(outcome(json_array_get(got, 0)), "done", "lead 1: %s", error(json_array_get(got, 0)));
	cr_expect_eq(json_number_value(json_object_get(json_array_get(got, 0), "result")), 9);
	cr_expect_str_eq(error(json_array_get(got, 1)), "trigger t: timed out after 300 ms");
	cr_expect_str_eq(outcome(json_array_get(got, 2)), "done", "lead 3: %s", error(json_array_get(got, 2)));
	cr_expect_eq(h.calls, 1, "lead 1's call, once");
	json_decref(got), json_decref(leads), json_decref(h.answer), json_decref(h.args);
	wk_sandbox_free(sb);
}

/* ---- many requests in one frame (the due jobs of a claim) ---- */

/* Request i (0-based): lead i + 1, a code of its own, param k = i. */
static json_t *requests(int n, const char *code_of_3)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "trigger t%d", i);
		json_t *r = request(i == 3 && code_of_3
					    ? code_of_3
					    : "var k = request.getParam('k', -1);\nlead.setAttr('k', k);\n"
					      "return [k, leadId, bot.findLeads(['id'], [], 'id', 1, 0)[0].id];");
		json_object_set_new(json_object_get(r, "context"), "leadId", json_integer(i + 1));
		json_object_set_new(json_object_get(r, "lead"), "id", json_integer(i + 1));
		json_object_set_new(json_object_get(r, "params"), "k", json_integer(i));
		json_object_set_new(r, "name", json_string(name));
		json_array_append_new(a, r);
	}
	return a;
}

/* Each request's host answers its own calls: request i's findLeads gets 100 + i (5's is refused). */
Test(sandbox, one_frame_runs_many_requests_each_with_its_own_host_as_in_process)
{
	enum { N = 40 };
	struct wk_sandbox *sb = pool(1, 1000, 5000);
	struct fake_host h[N] = {0};
	struct wk_js_host hosts[N];
	const struct wk_js_host *hp[N];
	for (int i = 0; i < N; i++) {
		h[i].answer = i == 5 ? NULL : json_pack("[{si}]", "id", 100 + i); /* request 5's host refuses */
		hosts[i] = (struct wk_js_host){fake_call, &h[i]};
		hp[i] = &hosts[i];
	}
	json_t *reqs = requests(N, "var k = request.getParam('k', -1);\nnull.x = k;");
	char err[512];
	struct wk_runtime_opts ro = {.js = wk_js_default_limits};
	struct wk_runtime *rt = wk_runtime_new(&ro, err, sizeof(err));
	cr_assert(rt, "%s", err);
	json_t *want = json_array(), *got = json_array();
	cr_assert_eq(wk_runtime_run_reqs(rt, reqs, hp, want, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < N; i++)
		h[i].calls = 0;
	int64_t before = cm_time_now_us();
	cr_assert_eq(wk_sandbox_run_reqs(sb, reqs, hp, got, err, sizeof(err)), 0, "%s", err);
	int64_t after = cm_time_now_us(), last = before;
	cr_assert_eq(json_array_size(got), N);
	cr_expect_eq(stats(sb).runs, N, "one frame, one child, every run");
	cr_expect_eq(stats(sb).spawned, 1);
	for (size_t i = 0; i < N; i++) {
		json_t *g = json_array_get(got, i), *w = json_array_get(want, i);
		int64_t started = json_integer_value(json_object_get(g, "started_us"));
		cr_expect(started >= last && started <= after, "run %zu started in order, within the call", i);
		last = started;
		cr_expect(json_is_integer(json_object_get(w, "started_us")), "in-process runs say when they started");
		cr_expect(json_integer_value(json_object_get(g, "finished_us")) >= started, "run %zu: an end time", i);
		for (int t = 0; t < 2; t++) {
			json_object_del(t ? g : w, "started_us");
			json_object_del(t ? g : w, "finished_us");
		}
		char *gs = json_dumps(g, JSON_COMPACT | JSON_SORT_KEYS),
		     *ws = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
		cr_expect_str_eq(gs, ws, "request %zu: sandbox vs in-process: %s vs %s", i, gs, ws);
		free(gs), free(ws);
		if (i == 3 || i == 5)
			continue;
		char *r = json_dumps(json_object_get(g, "result"), JSON_COMPACT);
		char exp[64];
		snprintf(exp, sizeof(exp), "[%zu,%zu,%zu]", i, i + 1, 100 + i);
		cr_expect_str_eq(r, exp, "request %zu: its params, its lead, its host's answer", i);
		free(r);
		cr_expect_eq(h[i].calls, 1, "host %zu answered its own request's call", i);
	}
	cr_expect_str_eq(error(json_array_get(got, 3)), "trigger t3, line 2: TypeError: cannot convert null to object");
	cr_expect_str_eq(error(json_array_get(got, 5)),
			 "trigger t5, line 3: Error: findLeads: refused by the test host");
	cr_expect_eq(h[5].calls, 1);
	json_decref(got), json_decref(want), json_decref(reqs);
	for (int i = 0; i < N; i++)
		json_decref(h[i].answer), json_decref(h[i].args);
	wk_runtime_free(rt);
	wk_sandbox_free(sb);
}

/* Request 3 loops: it fails alone (by name), the others run; the ones after it one by one. */
Test(sandbox, a_runaway_request_among_many_fails_alone)
{
	enum { N = 6 };
	struct wk_sandbox *sb = pool(1, 1000, 300);
	struct fake_host h = {.answer = json_pack("[{si}]", "id", 9)};
	struct wk_js_host host = {fake_call, &h};
	const struct wk_js_host *hp[N];
	for (int i = 0; i < N; i++)
		hp[i] = &host;
	json_t *reqs = requests(N, "while (true) {}"), *got = json_array();
	char err[512];
	int64_t before = cm_time_now_us();
	cr_assert_eq(wk_sandbox_run_reqs(sb, reqs, hp, got, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_array_size(got), N);
	for (size_t i = 0; i < N; i++) {
		const json_t *r = json_array_get(got, i);
		int64_t started = json_integer_value(json_object_get(r, "started_us"));
		int64_t took = json_integer_value(json_object_get(r, "finished_us")) - started;
		cr_expect(started >= before, "run %zu: a start time", i);
		/* each run's own time: the time-out (300 ms) and the frame's are not the others' */
		cr_expect(took >= 0 && (i == 3 ? took >= 300000 : took < 250000), "run %zu took %lld µs", i,
			  (long long)took);
		if (i == 3) {
			cr_expect_str_eq(error(r), "trigger t3: timed out after 300 ms");
			continue;
		}
		cr_expect_str_eq(outcome(r), "done", "request %zu: %s", i, error(r));
		cr_expect_eq(json_integer_value(json_array_get(json_object_get(r, "result"), 0)), (json_int_t)i);
	}
	cr_expect_eq(h.calls, N - 1, "each call once: none of the runs before the loop ran again");
	cr_expect_eq(stats(sb).timeouts, 2, "the frame's, then request 3's alone");
	json_decref(got), json_decref(reqs), json_decref(h.answer), json_decref(h.args);
	wk_sandbox_free(sb);
}

Test(sandbox, a_child_refuses_a_run_of_another_protocol_version)
{
	struct hand h = start_by_hand("--log-level=error");
	char err[300];
	json_t *m = NULL;
	cr_assert_eq(cm_frame_read(h.sock, 4096, cm_time_mono_us() + 10000000, &m, err, sizeof(err)), CM_FRAME_OK);
	json_decref(m);
	json_t *req = request("return 1;");
	m = json_pack("{sssisbsO}", "type", "run", "v", WK_SANDBOX_PROTO + 1, "host", 0, "req", req);
	cr_assert_eq(cm_frame_write(h.sock, m, WK_SANDBOX_FRAME_MAX, 0, err, sizeof(err)), CM_FRAME_OK);
	json_decref(m), json_decref(req);
	int status;
	cr_assert(waitpid(h.pid, &status, 0) == h.pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 3, "got wait status %#x, want exit 3", (unsigned)status);
	close(h.sock), close(h.lifeline);
}

/* ---- the real child refuses a malformed run frame ---- */

/* Starts the real child on a socket, reads its hello, sends frame, and returns its exit status; its
 * stderr (the logged reason) goes to log. */
static int child_on_frame(const char *frame, char *log, size_t log_size)
{
	int sv[2], lp[2], ep[2];
	cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(lp) == 0 && pipe(ep) == 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(sv[1], WK_SANDBOX_FD);
		dup2(lp[0], WK_SANDBOX_LIFELINE);
		dup2(ep[1], 2);
		for (int fd = WK_SANDBOX_LIFELINE + 1; fd < 64; fd++)
			close(fd);
		execl(BOTJOBS_SANDBOX_BIN, BOTJOBS_SANDBOX_BIN, "--log-format=text", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	close(lp[0]);
	close(ep[1]);
	char err[300];
	json_t *hello = NULL, *m = json_loads(frame, 0, NULL);
	cr_assert(m, "%s", frame);
	int64_t deadline = cm_time_mono_us() + 10 * CM_US_PER_SEC;
	cr_assert_eq(cm_frame_read(sv[0], WK_SANDBOX_FRAME_MAX, deadline, &hello, err, sizeof(err)), CM_FRAME_OK, "%s",
		     err);
	cr_assert_eq(cm_frame_write(sv[0], m, WK_SANDBOX_FRAME_MAX, deadline, err, sizeof(err)), CM_FRAME_OK, "%s",
		     err);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	ssize_t n = read(ep[0], log, log_size - 1);
	log[n > 0 ? n : 0] = '\0';
	json_decref(hello);
	json_decref(m);
	close(sv[0]);
	close(lp[1]);
	close(ep[0]);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(sandbox, the_child_refuses_a_malformed_run_frame_and_says_why)
{
	static const struct {
		const char *frame, *reason;
	} cases[] = {
		{"{\"type\":\"ping\",\"v\":3}", "got type ping"},
		{"{\"v\":3}", "got type none"},
		{"{\"type\":\"run\",\"v\":3,\"reqs\":[{\"code\":\"1\"}],\"req\":{}}", "with reqs and req or leads"},
		{"{\"type\":\"run\",\"v\":3,\"reqs\":[]}", "with reqs not a non-empty array"},
		{"{\"type\":\"run\",\"v\":3,\"reqs\":{}}", "with reqs not a non-empty array"},
		{"{\"type\":\"run\",\"v\":3,\"reqs\":[{},2]}", "with a request in reqs that is not an object"},
		{"{\"type\":\"run\",\"v\":3}", "without a req"},
		{"{\"type\":\"run\",\"v\":3,\"req\":{},\"leads\":{}}", "with leads not an array"},
		{"{\"type\":\"run\",\"v\":2,\"req\":{}}", "of protocol version 2, mine is 3"},
	};
	char log[4096];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_expect_eq(child_on_frame(cases[i].frame, log, sizeof(log)), 3, "%s: exit status 3 (protocol)",
			     cases[i].frame);
		cr_expect(strstr(log, cases[i].reason), "%s: wanted '%s' in: %s", cases[i].frame, cases[i].reason, log);
	}
}
