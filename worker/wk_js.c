/*
 * wk_js.c - runs bot JavaScript on MuJS (SPEC §4): a state snapshot in, effects out. See wk_js.h.
 *
 * The engine keeps a few MuJS states, each built once with the standard library and the bot API
 * (wk_js_api.c) and then reused for runs of ONE bot: building a state costs ~100 µs, reusing one a few
 * µs. Between runs, the globals a run created are deleted; a state is never shared by two bots, so no
 * bot can see another's data; it is thrown away after runs_per_state runs (MuJS keeps every name it
 * ever interned) or after running out of memory. Function bodies (trigger code, conditions) are
 * compiled once per state and kept in its registry. Each state has a byte-capped allocator: out of
 * memory becomes a JS error, not a crash.
 */
#include <math.h>
#include <mujs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_js.h"
#include "wk_js_int.h"

const struct wk_js_limits wk_js_default_limits = {
	.heap_max = 64u << 20,
	.messages_max = 100,
	.jobs_max = 100,
	.log_max = 100,
	.calls_max = 50,
	.states = 8,
	.runs_per_state = 1000,
};

#define ALLOC_HDR 16
#define MAX_STATES 64

struct slot {
	js_State *J;
	int64_t bot_id;
	int runs;
	uint64_t used; /* engine tick of the last run: the least recently used slot is reused first */
	size_t heap;   /* bytes the allocator holds for this state */
	int oom;       /* the cap was hit during the current run */
	size_t heap_max;
	json_t *baseline; /* enumerable globals right after set-up (kept across runs) */
};

struct wk_js_engine {
	struct wk_js_limits lim;
	struct slot slots[MAX_STATES];
	size_t nslots;
	uint64_t tick;
};

/* ---- allocator: a byte cap per state ---- */

static void *cap_alloc(void *ctx, void *ptr, int size)
{
	struct slot *s = ctx;
	size_t old = 0;
	char *base = NULL;
	if (ptr) {
		base = (char *)ptr - ALLOC_HDR;
		memcpy(&old, base, sizeof(old));
	}
	if (size <= 0) {
		free(base);
		s->heap -= old;
		return NULL;
	}
	if (s->heap_max && s->heap - old + (size_t)size > s->heap_max) {
		s->oom = 1;
		return NULL;
	}
	char *n = realloc(base, (size_t)size + ALLOC_HDR);
	if (!n)
		return NULL;
	size_t sz = (size_t)size;
	memcpy(n, &sz, sizeof(sz));
	s->heap = s->heap - old + sz;
	return n + ALLOC_HDR;
}

/* ---- JSON <-> JS ---- */

void wk_js_push(js_State *J, const json_t *v, int depth)
{
	if (depth > WK_JS_MAX_DEPTH)
		js_rangeerror(J, "value nested more than %d levels deep", WK_JS_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		js_newobject(J);
		json_object_foreach((json_t *)v, k, x)
		{
			wk_js_push(J, x, depth + 1);
			js_setproperty(J, -2, k);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *x;
		js_newarray(J);
		json_array_foreach(v, i, x)
		{
			wk_js_push(J, x, depth + 1);
			js_setindex(J, -2, (int)i);
		}
		break;
	}
	case JSON_STRING:
		js_pushlstring(J, json_string_value(v), (int)json_string_length(v));
		break;
	case JSON_INTEGER:
		js_pushnumber(J, (double)json_integer_value(v));
		break;
	case JSON_REAL:
		js_pushnumber(J, json_real_value(v));
		break;
	case JSON_TRUE:
		js_pushboolean(J, 1);
		break;
	case JSON_FALSE:
		js_pushboolean(J, 0);
		break;
	default:
		js_pushnull(J);
	}
}

void wk_js_push_or_null(js_State *J, const json_t *v)
{
	if (v)
		wk_js_push(J, v, 0);
	else
		js_pushnull(J);
}

/* The JSON for the value at idx (absolute); for an array or object a new empty container, with
 * *box set, that fill() fills. Functions and undefined become null. */
static json_t *convert(js_State *J, int idx, int depth, int *box)
{
	if (depth > WK_JS_MAX_DEPTH)
		js_rangeerror(J, "value nested more than %d levels deep (or circular)", WK_JS_MAX_DEPTH);
	if (js_isundefined(J, idx) || js_isnull(J, idx) || js_iscallable(J, idx))
		return json_null();
	if (js_isboolean(J, idx))
		return json_boolean(js_toboolean(J, idx));
	if (js_isnumber(J, idx)) {
		double d = js_tonumber(J, idx);
		if (!isfinite(d))
			return json_null();
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			return json_integer((json_int_t)d);
		return json_real(d);
	}
	if (js_isstring(J, idx))
		return json_string(js_tostring(J, idx));
	if (js_isobject(J, idx) && js_isdateobject(J, idx)) {
		js_getproperty(J, idx, "toISOString");
		js_copy(J, idx);
		js_call(J, 0);
		json_t *s = json_string(js_tostring(J, -1));
		js_pop(J, 1);
		return s;
	}
	if (!js_isobject(J, idx))
		return json_string(js_tostring(J, idx));
	*box = 1;
	return js_isarray(J, idx) ? json_array() : json_object();
}

/* Fills out (an array or object) from the JS value at idx (absolute). Every new container is put
 * in its parent before it is filled, so when anything throws (a getter, too deep, out of memory)
 * the one tree wk_js_value holds has everything and nothing leaks. No js_try per level: MuJS
 * allows only 64 nested ones. */
static void fill(js_State *J, int idx, int depth, json_t *out)
{
	if (json_is_array(out)) {
		int n = js_getlength(J, idx);
		for (int i = 0; i < n; i++) {
			js_getindex(J, idx, i);
			int box = 0;
			json_t *v = convert(J, js_gettop(J) - 1, depth + 1, &box);
			json_array_append_new(out, v);
			if (box)
				fill(J, js_gettop(J) - 1, depth + 1, v);
			js_pop(J, 1);
		}
	} else {
		js_pushiterator(J, idx, 1);
		const char *k;
		while ((k = js_nextiterator(J, -1))) {
			js_getproperty(J, idx, k);
			if (!js_isundefined(J, -1) && !js_iscallable(J, -1)) {
				int box = 0;
				json_t *v = convert(J, js_gettop(J) - 1, depth + 1, &box);
				json_object_set_new(out, k, v);
				if (box)
					fill(J, js_gettop(J) - 1, depth + 1, v);
			}
			js_pop(J, 1);
		}
		js_pop(J, 1);
	}
}

/* fill() under one js_try: frees out and rethrows when it throws. */
__attribute__((noinline)) /* keeps js_try out of wk_js_value's frame (-Wclobbered) */
static json_t *
fill_or_free(js_State *J, int idx, int depth, json_t *out)
{
	if (js_try(J)) {
		json_decref(out);
		js_throw(J);
	}
	fill(J, idx, depth, out);
	js_endtry(J);
	return out;
}

/* Converts the value at idx to JSON (a new reference). Functions and undefined become null. */
json_t *wk_js_value(js_State *J, int idx, int depth)
{
	if (idx < 0)
		idx = js_gettop(J) + idx;
	int box = 0;
	json_t *out = convert(J, idx, depth, &box);
	return box ? fill_or_free(J, idx, depth, out) : out;
}

struct run *wk_js_cur(js_State *J)
{
	return js_getcontext(J);
}

/* ---- code ---- */

static uint64_t fnv64(const char *s, size_t *len)
{
	uint64_t h = 1469598103934665603ULL;
	const char *p = s;
	for (; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	*len = (size_t)(p - s);
	return h;
}

int wk_js_call_body(js_State *J, const char *body, const char *what, char *errstr, size_t errstr_size, int *line)
{
	/* The compiled function is kept in the state's registry under a hash of its source. */
	size_t len;
	uint64_t h = fnv64(body, &len);
	char key[64];
	snprintf(key, sizeof(key), "bj:fn:%016llx:%zu", (unsigned long long)h, len);
	js_getregistry(J, key);
	if (!js_iscallable(J, -1)) {
		js_pop(J, 1);
		js_getglobal(J, "Function");
		js_pushundefined(J);
		js_pushstring(J, body);
		if (js_pcall(J, 1) != 0)
			goto fail;
		js_copy(J, -1);
		js_setregistry(J, key);
	}
	js_pushundefined(J);
	if (js_pcall(J, 0) == 0)
		return 0;
fail:;
	char msg[1024];
	cm_js_error_describe(J, body, msg, sizeof(msg), line);
	snprintf(errstr, errstr_size, "%s, %s", what, msg);
	js_pop(J, 1);
	return -1;
}

int wk_js_condition(js_State *J, const char *cond, const char *what, char *errstr, size_t errstr_size, int *line)
{
	if (!cond || !*cond)
		return 1;
	if (wk_js_call_body(J, cond, what, errstr, errstr_size, line) == -1)
		return -1;
	int ok = js_toboolean(J, -1);
	js_pop(J, 1);
	return ok;
}

/* ---- effects ---- */

static json_t *set_keys(const json_t *set)
{
	json_t *a = json_array();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)set, k, v) json_array_append_new(a, json_string(k));
	return a;
}

static json_t *effects_json(struct run *r)
{
	json_t *e = json_object();
	if (r->lead) {
		json_t *l = json_object();
		if (json_object_size(r->lead_set))
			json_object_set(l, "set", r->lead_set);
		if (json_object_size(r->lead_del))
			json_object_set_new(l, "del", set_keys(r->lead_del));
		if (json_object_size(r->tags_add))
			json_object_set_new(l, "tags_add", set_keys(r->tags_add));
		if (json_object_size(r->tags_del))
			json_object_set_new(l, "tags_del", set_keys(r->tags_del));
		if (r->status_name)
			json_object_set(l, "status_name", r->status_name);
		if (json_object_size(l))
			json_object_set(e, "lead", l);
		json_decref(l);
	}
	if (json_object_size(r->bot_set) || json_object_size(r->bot_del)) {
		json_t *b = json_object();
		if (json_object_size(r->bot_set))
			json_object_set(b, "set", r->bot_set);
		if (json_object_size(r->bot_del))
			json_object_set_new(b, "del", set_keys(r->bot_del));
		json_object_set_new(e, "bot", b);
	}
	if (json_object_size(r->ticket_set))
		json_object_set_new(e, "ticket", json_pack("{sO}", "set", r->ticket_set));
	if (json_array_size(r->messages))
		json_object_set(e, "messages", r->messages);
	if (json_array_size(r->jobs))
		json_object_set(e, "jobs", r->jobs);
	if (json_array_size(r->log))
		json_object_set(e, "log", r->log);
	return e;
}

/* ---- states ---- */

/* Names of the global object's enumerable own properties, as a JSON object used as a set. */
static json_t *global_names(js_State *J)
{
	json_t *names = json_object();
	js_pushglobal(J);
	js_pushiterator(J, -1, 1);
	const char *k;
	while ((k = js_nextiterator(J, -1)))
		json_object_set_new(names, k, json_true());
	js_pop(J, 2);
	return names;
}

static void slot_drop(struct slot *s)
{
	if (s->J)
		js_freestate(s->J);
	json_decref(s->baseline);
	s->J = NULL;
	s->baseline = NULL;
	s->runs = 0;
	s->heap = 0;
	s->oom = 0;
}

/* Makes s's state: the standard library and the bot API. Returns -1 (s emptied) when out of memory. */
__attribute__((noinline)) /* keeps js_try out of the caller's frame (-Wclobbered) */
static int
build_state(struct slot *s)
{
	s->J = js_newstate(cap_alloc, s, 0);
	if (!s->J)
		return -1;
	js_setcontext(s->J, NULL);
	if (js_try(s->J)) {
		js_pop(s->J, 1);
		slot_drop(s);
		return -1;
	}
	wk_js_def_api(s->J);
	js_endtry(s->J);
	s->baseline = global_names(s->J);
	return 0;
}

/* A state for bot_id: the one it already has, else a fresh one in an empty or the least recently
 * used slot. Returns NULL when no state can be made (out of memory). */
__attribute__((noinline)) /* called next to js_try in wk_js_engine_run (-Wclobbered) */
static struct slot *
slot_for(struct wk_js_engine *e, int64_t bot_id)
{
	struct slot *pick = NULL;
	for (size_t i = 0; i < e->nslots; i++) {
		struct slot *s = &e->slots[i];
		if (s->J && s->bot_id == bot_id) {
			pick = s;
			break;
		}
		if (!pick || (!s->J && pick->J) || (s->J && pick->J && s->used < pick->used))
			pick = s;
	}
	if (!pick) /* no slots */
		return NULL;
	if (pick->J && pick->bot_id != bot_id)
		slot_drop(pick);
	pick->used = ++e->tick;
	if (pick->J)
		return pick;
	pick->bot_id = bot_id;
	pick->heap_max = e->lim.heap_max;
	return build_state(pick) == 0 ? pick : NULL;
}

/* After a run: forget what it left behind, and retire the state when it is worn or broke its cap.
 * A state that ran out of memory is not touched again (any allocation would throw). */
static void slot_done(struct wk_js_engine *e, struct slot *s)
{
	js_State *J = s->J;
	s->runs++;
	if (s->oom || s->runs >= e->lim.runs_per_state) {
		slot_drop(s);
		return;
	}
	js_setcontext(J, NULL);
	json_t *volatile now = NULL;
	if (js_try(J)) {
		js_pop(J, 1);
		json_decref(now);
		slot_drop(s);
		return;
	}
	js_delregistry(J, WK_JS_REQUEST_JSON);
	now = global_names(J);
	const char *k;
	json_t *v;
	json_object_foreach(now, k, v)
	{
		if (!json_object_get(s->baseline, k))
			js_delglobal(J, k);
	}
	js_endtry(J);
	json_decref(now);
	if (s->heap > s->heap_max / 2)
		js_gc(J, 0);
	if (s->heap > s->heap_max / 2)
		slot_drop(s);
}

struct wk_js_engine *wk_js_engine_new(const struct wk_js_limits *limits)
{
	struct wk_js_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->lim = limits ? *limits : wk_js_default_limits;
	e->nslots = e->lim.states < 1 ? 1 : e->lim.states > MAX_STATES ? MAX_STATES : e->lim.states;
	if (e->lim.runs_per_state < 1)
		e->lim.runs_per_state = 1;
	return e;
}

void wk_js_engine_free(struct wk_js_engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nslots; i++)
		slot_drop(&e->slots[i]);
	free(e);
}

static json_t *copy_or_new(const json_t *v, int array)
{
	if (array ? json_is_array(v) : json_is_object(v))
		return json_deep_copy(v);
	return array ? json_array() : json_object();
}

json_t *wk_js_engine_run(struct wk_js_engine *e, const json_t *req, const struct wk_js_host *host)
{
	struct run r = {.req = req, .lim = &e->lim, .host = host};
	const json_t *lead = json_object_get(req, "lead");
	r.lead = json_is_object(lead) ? (json_t *)lead : NULL;
	r.attrs = copy_or_new(json_object_get(lead, "attributes"), 0);
	r.tags = copy_or_new(json_object_get(lead, "tags"), 1);
	r.bot_attrs = copy_or_new(json_object_get(json_object_get(req, "bot"), "attributes"), 0);
	r.memory = json_object();
	const json_t *ticket = json_object_get(req, "ticket");
	r.ticket = json_is_object(ticket) ? copy_or_new(json_object_get(ticket, "data"), 0) : NULL;
	r.lead_set = json_object(), r.lead_del = json_object(), r.tags_add = json_object(), r.tags_del = json_object();
	r.bot_set = json_object(), r.bot_del = json_object(), r.ticket_set = json_object();
	r.messages = json_array(), r.jobs = json_array(), r.log = json_array();

	json_t *reply = json_object();
	char err[1200] = "";
	int line = 0;
	const char *outcome = "failed";
	const char *name = json_string_value(json_object_get(req, "name"));
	if (!name)
		name = "code";

	int64_t bot_id = json_integer_value(json_object_get(json_object_get(req, "context"), "botId"));
	struct slot *slot = slot_for(e, bot_id);
	js_State *J = slot ? slot->J : NULL;
	if (!J) {
		snprintf(err, sizeof(err), "%s: out of memory starting the interpreter", name);
		goto done;
	}
	slot->oom = 0;
	js_setcontext(J, &r);

	int ok = wk_js_condition(J, json_string_value(json_object_get(req, "condition")), "condition", err, sizeof(err),
				 &line);
	if (ok == 0) {
		outcome = "skipped";
		goto done;
	}
	if (ok < 0)
		goto done;
	/* The job's own tag changes: remove_tags, then add_tags, before the target runs. */
	const json_t *tags = json_object_get(req, "tags");
	if (r.lead && tags) {
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(tags, "remove"), i, t) wk_js_tag_del(&r, json_string_value(t));
		json_array_foreach(json_object_get(tags, "add"), i, t) wk_js_tag_add(&r, json_string_value(t));
	}
	char what[300];
	snprintf(what, sizeof(what), "%s condition", name);
	ok = wk_js_condition(J, json_string_value(json_object_get(req, "code_condition")), what, err, sizeof(err),
			     &line);
	if (ok == 0) {
		outcome = "skipped";
		goto done;
	}
	if (ok < 0)
		goto done;
	const char *code = json_string_value(json_object_get(req, "code"));
	if (code && *code) {
		if (wk_js_call_body(J, code, name, err, sizeof(err), &line) == -1)
			goto done;
		if (js_try(J)) {
			cm_js_error_describe(J, code, err, sizeof(err), &line);
			js_pop(J, 1);
			goto done;
		}
		if (!js_isundefined(J, -1))
			json_object_set_new(reply, "result", wk_js_value(J, -1, 0));
		js_endtry(J);
		js_pop(J, 1);
	}
	const json_t *script = json_object_get(req, "script");
	if (script && !json_is_null(script)) {
		const char *sname = json_string_value(json_object_get(req, "script_name"));
		if (wk_js_script(J, &r, script, sname ? sname : name, err, sizeof(err), &line) == -1 ||
		    wk_js_handoffs(&r, sname ? sname : name, err, sizeof(err)) == -1)
			goto done;
	}
	outcome = "done";
	json_object_set_new(reply, "effects", effects_json(&r));
done:
	if (slot && slot->oom && strcmp(outcome, "failed") == 0 && !strstr(err, "out of memory"))
		snprintf(err + strlen(err), sizeof(err) - strlen(err), " (memory cap of %zu bytes reached)",
			 r.lim->heap_max);
	json_object_set_new(reply, "outcome", json_string(outcome));
	if (strcmp(outcome, "failed") == 0) {
		json_object_set_new(reply, "error", json_string(err));
		if (line > 0)
			json_object_set_new(reply, "error_line", json_integer(line));
	}
	if (slot && slot->J)
		slot_done(e, slot);
	json_decref(r.attrs), json_decref(r.tags), json_decref(r.bot_attrs), json_decref(r.memory);
	json_decref(r.ticket), json_decref(r.lead_set), json_decref(r.lead_del), json_decref(r.tags_add);
	json_decref(r.tags_del), json_decref(r.status_name), json_decref(r.bot_set), json_decref(r.bot_del);
	json_decref(r.ticket_set), json_decref(r.messages), json_decref(r.jobs), json_decref(r.log);
	json_decref(r.api_headers);
	return reply;
}

json_t *wk_js_run(const json_t *req, const struct wk_js_limits *limits, const struct wk_js_host *host)
{
	struct wk_js_engine *e = wk_js_engine_new(limits);
	if (!e)
		return NULL;
	json_t *reply = wk_js_engine_run(e, req, host);
	wk_js_engine_free(e);
	return reply;
}

json_t *wk_js_lead_request(const json_t *req, const json_t *lead)
{
	const json_t *c = json_object_get(req, "context"), *id = json_object_get(lead, "id");
	json_t *r = json_copy((json_t *)req), *ctx = json_is_object(c) ? json_copy((json_t *)c) : json_object();
	int rc = r && ctx ? 0 : -1;
	if (rc == 0)
		rc = json_object_set_new(ctx, "leadId", id ? json_incref((json_t *)id) : json_null());
	if (rc == 0)
		rc = json_object_set(r, "context", ctx);
	if (rc == 0 && json_is_object(lead))
		rc = json_object_set(r, "lead", (json_t *)lead);
	json_decref(ctx);
	if (rc == -1) {
		json_decref(r);
		return NULL;
	}
	return r;
}
