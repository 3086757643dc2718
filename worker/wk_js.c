/*
 * wk_js.c - the bot JavaScript API on MuJS (SPEC §4), snapshot in, effects out. See wk_js.h.
 *
 * Each run gets a fresh js_State with a byte-capped allocator: out of memory becomes a JS error,
 * and nothing of one run (or one bot) is visible to the next. The API keeps a working copy of the
 * lead's attributes and tags, so reads see the run's own writes, and records every write as an effect.
 */
#include <ctype.h>
#include <math.h>
#include <mujs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_id.h"
#include "cm_job.h"
#include "cm_js.h"
#include "cm_time.h"
#include "wk_js.h"

const struct wk_js_limits wk_js_default_limits = {
	.heap_max = 64u << 20,
	.messages_max = 100,
	.jobs_max = 100,
	.log_max = 100,
	.calls_max = 50,
};

#define MAX_DEPTH 64
#define ALLOC_HDR 16

struct run {
	const json_t *req;
	const struct wk_js_limits *lim;
	const struct wk_js_host *host;
	size_t calls;
	json_t *api_headers; /* api.setHeaders */
	int api_status;	     /* api.getLastResponseCode */
	size_t heap_used;
	int oom;
	/* working copies */
	json_t *lead;	   /* req.lead, borrowed (NULL when the job has no lead) */
	json_t *attrs;	   /* lead attributes */
	json_t *tags;	   /* lead tags, an array */
	json_t *bot_attrs; /* bot attributes */
	json_t *memory;
	json_t *ticket; /* ticket data, NULL when no ticket */
	/* effects */
	json_t *lead_set, *lead_del, *tags_add, *tags_del, *status_name;
	json_t *bot_set, *bot_del, *ticket_set;
	json_t *messages, *jobs, *log;
};

/* ---- allocator: a byte cap per run ---- */

static void *cap_alloc(void *ctx, void *ptr, int size)
{
	struct run *r = ctx;
	size_t old = 0;
	char *base = NULL;
	if (ptr) {
		base = (char *)ptr - ALLOC_HDR;
		memcpy(&old, base, sizeof(old));
	}
	if (size <= 0) {
		free(base);
		r->heap_used -= old;
		return NULL;
	}
	if (r->lim->heap_max && r->heap_used - old + (size_t)size > r->lim->heap_max) {
		r->oom = 1;
		return NULL;
	}
	char *n = realloc(base, (size_t)size + ALLOC_HDR);
	if (!n)
		return NULL;
	size_t sz = (size_t)size;
	memcpy(n, &sz, sizeof(sz));
	r->heap_used = r->heap_used - old + sz;
	return n + ALLOC_HDR;
}

/* ---- JSON <-> JS ---- */

static void push_json(js_State *J, const json_t *v, int depth)
{
	if (depth > MAX_DEPTH)
		js_rangeerror(J, "value nested more than %d levels deep", MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		js_newobject(J);
		json_object_foreach((json_t *)v, k, x)
		{
			push_json(J, x, depth + 1);
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
			push_json(J, x, depth + 1);
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

static void push_json_or_null(js_State *J, const json_t *v)
{
	if (v)
		push_json(J, v, 0);
	else
		js_pushnull(J);
}

/* Converts the value at idx to JSON (a new reference). Functions and undefined become null. */
static json_t *to_json(js_State *J, int idx, int depth)
{
	if (depth > MAX_DEPTH)
		js_rangeerror(J, "value nested more than %d levels deep (or circular)", MAX_DEPTH);
	if (idx < 0)
		idx = js_gettop(J) + idx;
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
	if (js_isarray(J, idx)) {
		json_t *a = json_array();
		int n = js_getlength(J, idx);
		for (int i = 0; i < n; i++) {
			js_getindex(J, idx, i);
			json_array_append_new(a, to_json(J, -1, depth + 1));
			js_pop(J, 1);
		}
		return a;
	}
	if (js_isobject(J, idx)) {
		if (js_isdateobject(J, idx)) {
			js_getproperty(J, idx, "toISOString");
			js_copy(J, idx);
			js_call(J, 0);
			json_t *s = json_string(js_tostring(J, -1));
			js_pop(J, 1);
			return s;
		}
		json_t *o = json_object();
		js_pushiterator(J, idx, 1);
		const char *k;
		while ((k = js_nextiterator(J, -1))) {
			js_getproperty(J, idx, k);
			if (!js_isundefined(J, -1) && !js_iscallable(J, -1))
				json_object_set_new(o, k, to_json(J, -1, depth + 1));
			js_pop(J, 1);
		}
		js_pop(J, 1);
		return o;
	}
	return json_string(js_tostring(J, idx));
}

/* ---- helpers ---- */

static struct run *R(js_State *J)
{
	return js_getcontext(J);
}

static struct run *need_lead(js_State *J)
{
	struct run *r = R(J);
	if (!r->lead)
		js_error(J, "this job has no lead (schedule it with lead_id)");
	return r;
}

static const char *arg_key(js_State *J, int i, const char *fn)
{
	if (!js_isstring(J, i) && !js_isnumber(J, i))
		js_typeerror(J, "%s: the key must be a string", fn);
	const char *k = js_tostring(J, i);
	if (!*k)
		js_typeerror(J, "%s: the key must not be empty", fn);
	return k;
}

/* Metabot attributes are strings: what a script stores with setAttr it reads back as text. */
static json_t *attr_value(js_State *J, int idx)
{
	if (js_isundefined(J, idx) || js_isnull(J, idx))
		return json_null();
	if (js_isstring(J, idx))
		return json_string(js_tostring(J, idx));
	if (js_isobject(J, idx) && !js_iscallable(J, idx))
		return to_json(J, idx, 0);
	return json_string(js_tostring(J, idx));
}

static void push_attr_text(js_State *J, const json_t *v)
{
	if (!v || json_is_null(v)) {
		js_pushnull(J);
	} else if (json_is_string(v)) {
		js_pushlstring(J, json_string_value(v), (int)json_string_length(v));
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		js_pushstring(J, s ? s : "");
		free(s);
	}
}

static void set_in(json_t *working, json_t *set, json_t *del, const char *k, json_t *v)
{
	json_object_set(working, k, v);
	json_object_set_new(set, k, v);
	json_object_del(del, k);
}

static void del_in(json_t *working, json_t *set, json_t *del, const char *k)
{
	json_object_del(working, k);
	json_object_del(set, k);
	json_object_set_new(del, k, json_true());
}

static int tag_index(const json_t *tags, const char *t)
{
	size_t i;
	json_t *x;
	json_array_foreach(tags, i, x) if (strcmp(json_string_value(x), t) == 0) return (int)i;
	return -1;
}

static void tag_add(struct run *r, const char *t)
{
	if (tag_index(r->tags, t) < 0)
		json_array_append_new(r->tags, json_string(t));
	json_object_del(r->tags_del, t);
	json_object_set_new(r->tags_add, t, json_true());
}

static void tag_del(struct run *r, const char *t)
{
	int i = tag_index(r->tags, t);
	if (i >= 0)
		json_array_remove(r->tags, (size_t)i);
	json_object_del(r->tags_add, t);
	json_object_set_new(r->tags_del, t, json_true());
}

static void check_tag(js_State *J, const char *t, const char *fn)
{
	size_t n = strlen(t);
	if (n == 0 || n > 100 || strchr(t, ','))
		js_typeerror(J, "%s: a tag is 1-100 characters without commas", fn);
}

/* Applies fn to each tag of an array or a "a,b" string argument. */
static void each_tag(js_State *J, int idx, void (*fn)(struct run *, const char *), const char *name)
{
	struct run *r = need_lead(J);
	if (js_isarray(J, idx)) {
		int n = js_getlength(J, idx);
		for (int i = 0; i < n; i++) {
			js_getindex(J, idx, i);
			const char *t = js_tostring(J, -1);
			check_tag(J, t, name);
			fn(r, t);
			js_pop(J, 1);
		}
		return;
	}
	const char *s = js_tostring(J, idx);
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		size_t n = strlen(t);
		while (n && t[n - 1] == ' ')
			t[--n] = '\0';
		if (!*t)
			continue;
		check_tag(J, t, name);
		fn(r, t);
	}
}

/* ---- lead ---- */

static void L_getAttr(js_State *J)
{
	struct run *r = need_lead(J);
	push_attr_text(J, json_object_get(r->attrs, arg_key(J, 1, "lead.getAttr")));
}

static void L_setAttr(js_State *J)
{
	struct run *r = need_lead(J);
	const char *k = arg_key(J, 1, "lead.setAttr");
	set_in(r->attrs, r->lead_set, r->lead_del, k, attr_value(J, 2));
	js_pushundefined(J);
}

static void L_getAllAttr(js_State *J)
{
	push_json(J, need_lead(J)->attrs, 0);
}

static void L_isAttrExist(js_State *J)
{
	json_t *v = json_object_get(need_lead(J)->attrs, arg_key(J, 1, "lead.isAttrExist"));
	js_pushboolean(J, v && !json_is_null(v));
}

static void L_deleteAttr(js_State *J)
{
	struct run *r = need_lead(J);
	del_in(r->attrs, r->lead_set, r->lead_del, arg_key(J, 1, "lead.deleteAttr"));
	js_pushundefined(J);
}

static double attr_number(js_State *J, const json_t *v, int integer)
{
	if (json_is_number(v))
		return integer ? trunc(json_number_value(v)) : json_number_value(v);
	if (!json_is_string(v))
		return NAN;
	const char *s = json_string_value(v);
	char *end;
	double d = integer ? (double)strtoll(s, &end, 10) : strtod(s, &end);
	(void)J;
	return end == s ? NAN : d;
}

static void L_getIntAttr(js_State *J)
{
	double d = attr_number(J, json_object_get(need_lead(J)->attrs, arg_key(J, 1, "lead.getIntAttr")), 1);
	js_pushnumber(J, isnan(d) ? (js_isdefined(J, 2) ? js_tonumber(J, 2) : 0) : d);
}

static void L_getFloatAttr(js_State *J)
{
	double d = attr_number(J, json_object_get(need_lead(J)->attrs, arg_key(J, 1, "lead.getFloatAttr")), 0);
	js_pushnumber(J, isnan(d) ? (js_isdefined(J, 2) ? js_tonumber(J, 2) : 0) : d);
}

static void L_getBoolAttr(js_State *J)
{
	json_t *v = json_object_get(need_lead(J)->attrs, arg_key(J, 1, "lead.getBoolAttr"));
	int b = 0;
	if (json_is_boolean(v))
		b = json_is_true(v);
	else if (json_is_number(v))
		b = json_number_value(v) != 0;
	else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		b = !strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on");
	}
	js_pushboolean(J, b);
}

static void L_getJsonAttr(js_State *J)
{
	json_t *v = json_object_get(need_lead(J)->attrs, arg_key(J, 1, "lead.getJsonAttr"));
	if (json_is_string(v)) {
		json_t *parsed = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
		push_json_or_null(J, parsed);
		json_decref(parsed);
	} else {
		push_json_or_null(J, v);
	}
}

static void L_setJsonAttr(js_State *J)
{
	struct run *r = need_lead(J);
	const char *k = arg_key(J, 1, "lead.setJsonAttr");
	set_in(r->attrs, r->lead_set, r->lead_del, k, to_json(J, 2, 0));
	js_pushundefined(J);
}

static void L_getData(js_State *J)
{
	struct run *r = need_lead(J);
	const char *k = arg_key(J, 1, "lead.getData");
	if (!strcmp(k, "attributes") || !strcmp(k, "tags"))
		push_json(J, !strcmp(k, "tags") ? r->tags : r->attrs, 0);
	else
		push_json_or_null(J, json_object_get(r->lead, k));
}

static void L_isTagExist(js_State *J)
{
	struct run *r = need_lead(J);
	js_pushboolean(J, tag_index(r->tags, js_tostring(J, 1)) >= 0);
}

static void L_getAllTags(js_State *J)
{
	push_json(J, need_lead(J)->tags, 0);
}

static void L_addTag(js_State *J)
{
	struct run *r = need_lead(J);
	const char *t = js_tostring(J, 1);
	check_tag(J, t, "lead.addTag");
	tag_add(r, t);
	js_pushundefined(J);
}

static void L_addTags(js_State *J)
{
	each_tag(J, 1, tag_add, "lead.addTags");
	js_pushundefined(J);
}

static void L_deleteTag(js_State *J)
{
	struct run *r = need_lead(J);
	tag_del(r, js_tostring(J, 1));
	js_pushundefined(J);
}

static void L_deleteTags(js_State *J)
{
	each_tag(J, 1, tag_del, "lead.deleteTags");
	js_pushundefined(J);
}

static void L_getStatusId(js_State *J)
{
	push_json_or_null(J, json_object_get(need_lead(J)->lead, "status_id"));
}

static void L_setStatusByName(js_State *J)
{
	struct run *r = need_lead(J);
	const char *name = arg_key(J, 1, "lead.setStatusByName");
	json_decref(r->status_name);
	r->status_name = json_string(name);
	js_pushundefined(J);
}

/* ---- bot ---- */

static void B_getAttr(js_State *J)
{
	push_attr_text(J, json_object_get(R(J)->bot_attrs, arg_key(J, 1, "bot.getAttr")));
}

static void B_setAttr(js_State *J)
{
	struct run *r = R(J);
	const char *k = arg_key(J, 1, "bot.setAttr");
	set_in(r->bot_attrs, r->bot_set, r->bot_del, k, attr_value(J, 2));
	js_pushundefined(J);
}

static void B_getAllAttr(js_State *J)
{
	push_json(J, R(J)->bot_attrs, 0);
}

static void B_isAttrExist(js_State *J)
{
	json_t *v = json_object_get(R(J)->bot_attrs, arg_key(J, 1, "bot.isAttrExist"));
	js_pushboolean(J, v && !json_is_null(v));
}

static void B_deleteAttr(js_State *J)
{
	struct run *r = R(J);
	del_in(r->bot_attrs, r->bot_set, r->bot_del, arg_key(J, 1, "bot.deleteAttr"));
	js_pushundefined(J);
}

static void B_getData(js_State *J)
{
	const json_t *bot = json_object_get(R(J)->req, "bot");
	push_json_or_null(J, json_object_get(bot, arg_key(J, 1, "bot.getData")));
}

static void B_sendText(js_State *J)
{
	struct run *r = need_lead(J);
	if (json_array_size(r->messages) >= r->lim->messages_max)
		js_rangeerror(J, "sendText: at most %zu messages per run", r->lim->messages_max);
	json_t *m = json_object();
	json_object_set_new(m, "text", json_string(js_tostring(J, 1)));
	json_array_append_new(r->messages, m);
	js_pushundefined(J);
}

/* Validates a schedule request made from JavaScript with the API's own rules and records it. */
/* Validates a schedule request made from bot code with the API's own rules. Borrows params. Returns
 * the envelope (a new reference, its job id fresh), or NULL with the rules broken in err. */
static json_t *job_envelope(struct run *r, const json_t *params, char *err, size_t errsz)
{
	const json_t *ctx = json_object_get(r->req, "context");
	json_t *errors = json_object();
	struct cm_job job;
	cm_job_init(&job);
	struct cm_job_parse_ctx pc = {.now_us = cm_time_now_us(),
				      .limits = &cm_job_default_limits,
				      .unknown = CM_UNKNOWN_REJECT,
				      .check_condition_compiles = 1};
	json_t *env = NULL;
	if (cm_job_from_request(params, json_integer_value(json_object_get(ctx, "botId")), &pc, &job, errors) == -1)
		cm_errors_line(errors, err, errsz);
	else if (cm_uuid_v7(job.job_id) == -1)
		snprintf(err, errsz, "no randomness for a job id");
	else
		env = cm_job_to_envelope(&job);
	json_decref(errors);
	cm_job_clear(&job);
	return env;
}

/* Validates and records a new job; pushes its id. Takes params. */
static void schedule(js_State *J, json_t *params, const char *fn)
{
	struct run *r = R(J);
	if (json_array_size(r->jobs) >= r->lim->jobs_max) {
		json_decref(params);
		js_rangeerror(J, "%s: at most %zu new jobs per run", fn, r->lim->jobs_max);
	}
	char err[600];
	json_t *env = job_envelope(r, params, err, sizeof(err));
	json_decref(params);
	if (!env)
		js_typeerror(J, "%s: %s", fn, err);
	js_pushstring(J, json_string_value(json_object_get(env, "job_id")));
	json_array_append_new(r->jobs, env);
}

static void B_scheduleJob(js_State *J)
{
	if (!js_isobject(J, 1))
		js_typeerror(J, "bot.scheduleJob: expects an object of schedule fields");
	schedule(J, to_json(J, 1, 0), "bot.scheduleJob");
}

static void B_scheduleScript(js_State *J)
{
	json_t *p = json_object();
	json_object_set_new(p, "script_id", to_json(J, 1, 0));
	if (js_isdefined(J, 2) && !js_isnull(J, 2))
		json_object_set_new(p, "lead_id", to_json(J, 2, 0));
	if (js_isdefined(J, 3) && !js_isnull(J, 3))
		json_object_set_new(p, "ticket_id", to_json(J, 3, 0));
	if (js_isobject(J, 4))
		json_object_set_new(p, "script_request_params", to_json(J, 4, 0));
	schedule(J, p, "bot.scheduleScript");
}

static void B_runTriggerByCodeForLead(js_State *J)
{
	json_t *p = json_object();
	json_object_set_new(p, "trigger_code", json_string(js_tostring(J, 1)));
	if (js_isdefined(J, 2) && !js_isnull(J, 2))
		json_object_set_new(p, "lead_id", to_json(J, 2, 0));
	if (js_isdefined(J, 3) && !js_isnull(J, 3))
		json_object_set_new(p, "ticket_id", to_json(J, 3, 0));
	schedule(J, p, "bot.runTriggerByCodeForLead");
}

/* ---- calls to the host: bot.findLeads, api.* ---- */

/* Calls the host with args (stolen); returns the result (a new reference) or throws. */
static json_t *host_call(js_State *J, const char *method, json_t *args)
{
	struct run *r = R(J);
	if (!r->host || !r->host->call) {
		json_decref(args);
		js_error(J, "%s is not available here", method);
	}
	if (r->calls >= r->lim->calls_max) {
		json_decref(args);
		js_rangeerror(J, "%s: at most %zu calls to findLeads/api per run", method, r->lim->calls_max);
	}
	r->calls++;
	char err[512] = "";
	json_t *res = r->host->call(r->host->ctx, method, args, err, sizeof(err));
	json_decref(args);
	if (!res)
		js_error(J, "%s: %s", method, err[0] ? err : "failed");
	return res;
}

/* Pushes res (stolen) as a JS value; frees it even when the conversion throws. */
static void push_result(js_State *J, json_t *res)
{
	if (js_try(J)) {
		json_decref(res);
		js_throw(J);
	}
	push_json(J, res, 0);
	js_endtry(J);
	json_decref(res);
}

static json_t *arg_or_null(js_State *J, int idx)
{
	return js_isdefined(J, idx) && !js_isnull(J, idx) ? to_json(J, idx, 0) : json_null();
}

/* A whole number argument for the host (limit, offset); the host applies its own bounds. NaN,
 * infinities and numbers beyond ±2^53 are refused rather than converted (that would be undefined). */
static json_t *whole_arg(js_State *J, int idx, const char *what)
{
	if (!js_isnumber(J, idx))
		return json_null();
	double d = js_tonumber(J, idx);
	if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
		js_rangeerror(J, "bot.findLeads: %s must be a whole number", what);
	return json_integer((json_int_t)d);
}

/* bot.findLeads(columns, where, orderBy, limit, offset) - where: [field, value], [field, op, value] or a list of them. */
static void B_findLeads(js_State *J)
{
	json_t *limit = whole_arg(J, 4, "limit"), *offset = whole_arg(J, 5, "offset");
	json_t *args = json_object();
	json_object_set_new(args, "columns", arg_or_null(J, 1));
	json_object_set_new(args, "where", arg_or_null(J, 2));
	json_object_set_new(args, "order_by", arg_or_null(J, 3));
	json_object_set_new(args, "limit", limit);
	json_object_set_new(args, "offset", offset);
	push_result(J, host_call(J, "findLeads", args));
}

static void A_setHeaders(js_State *J)
{
	struct run *r = R(J);
	if (!js_isobject(J, 1) || js_isarray(J, 1))
		js_typeerror(J, "api.setHeaders: expects an object of header names and values");
	json_t *h = to_json(J, 1, 0);
	json_decref(r->api_headers);
	r->api_headers = h;
	js_pushundefined(J);
}

static void api_call(js_State *J, const char *method, int with_body)
{
	struct run *r = R(J);
	if (!js_isstring(J, 1))
		js_typeerror(J, "%s: the URL must be a string", method);
	json_t *args = json_object();
	json_object_set_new(args, "url", json_string(js_tostring(J, 1)));
	json_object_set_new(args, "headers", r->api_headers ? json_incref(r->api_headers) : json_object());
	if (with_body)
		json_object_set_new(args, "body", arg_or_null(J, 2));
	json_t *res = host_call(J, method, args);
	r->api_status = (int)json_integer_value(json_object_get(res, "status"));
	json_t *body = json_incref(json_object_get(res, "body"));
	json_decref(res);
	push_result(J, body ? body : json_null());
}

static void A_getJson(js_State *J)
{
	api_call(J, "api.getJson", 0);
}

static void A_postJson(js_State *J)
{
	api_call(J, "api.postJson", 1);
}

static void A_getLastResponseCode(js_State *J)
{
	js_pushnumber(J, R(J)->api_status);
}

/* ---- memory, ticket, request, console ---- */

static void M_getAttr(js_State *J)
{
	push_json_or_null(J, json_object_get(R(J)->memory, arg_key(J, 1, "memory.getAttr")));
}

static void M_setAttr(js_State *J)
{
	json_object_set_new(R(J)->memory, arg_key(J, 1, "memory.setAttr"), to_json(J, 2, 0));
	js_pushundefined(J);
}

static struct run *need_ticket(js_State *J)
{
	struct run *r = R(J);
	if (!r->ticket)
		js_error(J, "this job has no ticket (schedule it with ticket_id)");
	return r;
}

static void T_getData(js_State *J)
{
	struct run *r = need_ticket(J);
	const char *k = arg_key(J, 1, "ticket.getData");
	if (!strcmp(k, "id"))
		push_json_or_null(J, json_object_get(json_object_get(r->req, "ticket"), "id"));
	else
		push_json_or_null(J, json_object_get(r->ticket, k));
}

static void T_update(js_State *J)
{
	struct run *r = need_ticket(J);
	if (!js_isobject(J, 1) || js_isarray(J, 1))
		js_typeerror(J, "ticket.update: expects an object of fields");
	json_t *f = to_json(J, 1, 0);
	json_object_update(r->ticket, f);
	json_object_update(r->ticket_set, f);
	json_decref(f);
	js_pushundefined(J);
}

static void Q_getParam(js_State *J)
{
	const json_t *params = json_object_get(R(J)->req, "params");
	const json_t *v = json_object_get(params, js_tostring(J, 1));
	if (v && !json_is_null(v))
		push_json(J, v, 0);
	else if (js_isdefined(J, 2))
		js_copy(J, 2);
	else
		js_pushnull(J);
}

static void C_log(js_State *J)
{
	struct run *r = R(J);
	char line[1024];
	size_t off = 0;
	for (int i = 1; i < js_gettop(J) && off < sizeof(line) - 1; i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", i > 1 ? " " : "", js_tostring(J, i));
	if (json_array_size(r->log) < r->lim->log_max)
		json_array_append_new(r->log, json_string(line));
	js_pushundefined(J);
}

/* ---- set-up ---- */

struct fn {
	const char *name;
	js_CFunction f;
	int n;
};

static void def_object(js_State *J, const char *global, const struct fn *fns, size_t n)
{
	js_newobject(J);
	for (size_t i = 0; i < n; i++) {
		js_newcfunction(J, fns[i].f, fns[i].name, fns[i].n);
		js_defproperty(J, -2, fns[i].name, JS_READONLY | JS_DONTENUM | JS_DONTCONF);
	}
	js_defglobal(J, global, JS_READONLY | JS_DONTENUM | JS_DONTCONF);
}

static void def_context(js_State *J, struct run *r)
{
	static const struct fn lead_fns[] = {
		{"getAttr", L_getAttr, 1},
		{"setAttr", L_setAttr, 2},
		{"getAllAttr", L_getAllAttr, 0},
		{"isAttrExist", L_isAttrExist, 1},
		{"deleteAttr", L_deleteAttr, 1},
		{"getIntAttr", L_getIntAttr, 2},
		{"getFloatAttr", L_getFloatAttr, 2},
		{"getBoolAttr", L_getBoolAttr, 1},
		{"getJsonAttr", L_getJsonAttr, 1},
		{"setJsonAttr", L_setJsonAttr, 2},
		{"getData", L_getData, 1},
		{"isTagExist", L_isTagExist, 1},
		{"getAllTags", L_getAllTags, 0},
		{"addTag", L_addTag, 1},
		{"addTags", L_addTags, 1},
		{"deleteTag", L_deleteTag, 1},
		{"deleteTags", L_deleteTags, 1},
		{"getStatusId", L_getStatusId, 0},
		{"setStatusByName", L_setStatusByName, 1},
	};
	static const struct fn bot_fns[] = {
		{"getAttr", B_getAttr, 1},
		{"setAttr", B_setAttr, 2},
		{"getAllAttr", B_getAllAttr, 0},
		{"isAttrExist", B_isAttrExist, 1},
		{"deleteAttr", B_deleteAttr, 1},
		{"getData", B_getData, 1},
		{"sendText", B_sendText, 1},
		{"scheduleJob", B_scheduleJob, 1},
		{"scheduleScript", B_scheduleScript, 4},
		{"runTriggerByCodeForLead", B_runTriggerByCodeForLead, 3},
		{"findLeads", B_findLeads, 5},
	};
	static const struct fn api_fns[] = {{"setHeaders", A_setHeaders, 1},
					    {"getJson", A_getJson, 1},
					    {"postJson", A_postJson, 2},
					    {"getLastResponseCode", A_getLastResponseCode, 0}};
	static const struct fn memory_fns[] = {{"getAttr", M_getAttr, 1}, {"setAttr", M_setAttr, 2}};
	static const struct fn ticket_fns[] = {{"getData", T_getData, 1}, {"update", T_update, 1}};
	static const struct fn cbc_fns[] = {{"sendText", B_sendText, 1}};
	static const struct fn console_fns[] = {{"log", C_log, 1}};

	def_object(J, "lead", lead_fns, CM_ARRAY_LEN(lead_fns));
	def_object(J, "bot", bot_fns, CM_ARRAY_LEN(bot_fns));
	def_object(J, "memory", memory_fns, CM_ARRAY_LEN(memory_fns));
	def_object(J, "ticket", ticket_fns, CM_ARRAY_LEN(ticket_fns));
	def_object(J, "CommonBotCommands", cbc_fns, CM_ARRAY_LEN(cbc_fns));
	def_object(J, "console", console_fns, CM_ARRAY_LEN(console_fns));
	def_object(J, "api", api_fns, CM_ARRAY_LEN(api_fns));

	js_newobject(J);
	push_json(J, json_object_get(r->req, "params"), 0);
	js_defproperty(J, -2, "json", JS_READONLY | JS_DONTCONF);
	js_newcfunction(J, Q_getParam, "getParam", 2);
	js_defproperty(J, -2, "getParam", JS_READONLY | JS_DONTENUM | JS_DONTCONF);
	js_defglobal(J, "request", JS_READONLY | JS_DONTENUM | JS_DONTCONF);

	const json_t *ctx = json_object_get(r->req, "context");
	static const char *ids[] = {"botId", "leadId", "ticketId", "jobId"};
	for (size_t i = 0; i < CM_ARRAY_LEN(ids); i++) {
		push_json_or_null(J, json_object_get(ctx, ids[i]));
		js_defglobal(J, ids[i], JS_READONLY | JS_DONTENUM | JS_DONTCONF);
	}
}

/*
 * Compiles body as a function and calls it. Returns 0 with the return value on the stack, or -1
 * with errstr set. what names the code in errors ("condition", "trigger demo_echo").
 */
static int call_body(js_State *J, const char *body, const char *what, char *errstr, size_t errstr_size, int *line)
{
	js_getglobal(J, "Function");
	js_pushundefined(J);
	js_pushstring(J, body);
	if (js_pcall(J, 1) == 0) {
		js_pushundefined(J);
		if (js_pcall(J, 0) == 0)
			return 0;
	}
	char msg[1024];
	cm_js_error_describe(J, body, msg, sizeof(msg), line);
	snprintf(errstr, errstr_size, "%s, %s", what, msg);
	js_pop(J, 1);
	return -1;
}

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

static json_t *copy_or_new(const json_t *v, int array)
{
	if (array ? json_is_array(v) : json_is_object(v))
		return json_deep_copy(v);
	return array ? json_array() : json_object();
}

/* The condition's verdict: a function body whose return value decides; empty = true. */
static int run_condition(js_State *J, const char *cond, const char *what, char *err, size_t errsz, int *line)
{
	if (!cond || !*cond)
		return 1;
	if (call_body(J, cond, what, err, errsz, line) == -1)
		return -1;
	int ok = js_toboolean(J, -1);
	js_pop(J, 1);
	return ok;
}

/* ---- dialog scripts ---- */

/* "Hello {{ $name }}" -> the lead attribute "name" (empty when missing). Returns a new JSON string. */
static json_t *substitute(struct run *r, const char *text)
{
	size_t cap = strlen(text) + 64, len = 0;
	char *out = malloc(cap);
	if (!out)
		return json_string("");
	for (const char *p = text; *p;) {
		const char *end = NULL, *name = NULL;
		size_t nlen = 0;
		if (p[0] == '{' && p[1] == '{') {
			const char *q = p + 2;
			while (*q == ' ')
				q++;
			if (*q == '$') {
				name = ++q;
				while (*q && (isalnum((unsigned char)*q) || *q == '_' || *q == '-' || *q == '.'))
					q++;
				nlen = (size_t)(q - name);
				while (*q == ' ')
					q++;
				if (q[0] == '}' && q[1] == '}' && nlen > 0 && nlen < 200)
					end = q + 2;
			}
		}
		const char *piece = p;
		size_t plen = 1;
		char key[200];
		char *owned = NULL;
		if (end) {
			memcpy(key, name, nlen);
			key[nlen] = '\0';
			const json_t *v = r->attrs ? json_object_get(r->attrs, key) : NULL;
			if (json_is_string(v)) {
				piece = json_string_value(v);
				plen = json_string_length(v);
			} else if (v && !json_is_null(v)) {
				owned = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				piece = owned ? owned : "";
				plen = strlen(piece);
			} else {
				plen = 0;
			}
			p = end;
		} else {
			p++;
		}
		if (len + plen + 1 > cap) {
			while (len + plen + 1 > cap)
				cap *= 2;
			char *n = realloc(out, cap);
			if (!n) {
				free(owned);
				break;
			}
			out = n;
		}
		memcpy(out + len, piece, plen);
		len += plen;
		free(owned);
	}
	out[len] = '\0';
	json_t *s = json_string(out);
	free(out);
	return s ? s : json_string("");
}

/* Schedules another script for this lead, due now: "run another script" hands the dialog over. */
static void script_handoff(struct run *r, const json_t *cmd)
{
	const json_t *ctx = json_object_get(r->req, "context");
	json_t *p = json_object();
	json_t *sid = json_object_get(cmd, "script_id"), *scode = json_object_get(cmd, "script_code");
	if (sid)
		json_object_set(p, "script_id", sid);
	if (scode)
		json_object_set(p, "script_code", scode);
	json_object_set(p, "lead_id", json_object_get(ctx, "leadId"));
	json_t *t = json_object_get(ctx, "ticketId");
	if (json_is_integer(t))
		json_object_set(p, "ticket_id", t);
	json_object_set(p, "script_request_params", json_object_get(r->req, "params"));
	json_array_append_new(r->jobs, p); /* validated by run_script() below */
}

/*
 * Runs a dialog script: an array of commands {"type": …, "condition": "<JS body>"?, …}:
 *   send_text {text}          a message to the lead; {{ $attr }} is replaced by the lead's attribute
 *   add_tags / remove_tags {tags: "a,b" | [..]}
 *   set_attr {key, value}     value: text with {{ $attr }}, or any JSON
 *   run_js {code}             a function body with the whole API
 *   run_script {script_id | script_code}   continue in another script (a job due now), and stop here
 *   stop                      end the script
 * Returns 0, or -1 with errstr naming the command ("script 'welcome', command 3 (run_js), line 2: …").
 */
static int run_script(js_State *J, struct run *r, const json_t *cmds, const char *name, char *err, size_t errsz,
		      int *line)
{
	if (!json_is_array(cmds)) {
		snprintf(err, errsz, "%s: the script is not a list of commands", name);
		return -1;
	}
	size_t i;
	json_t *c;
	json_array_foreach(cmds, i, c)
	{
		char what[400], sub[600];
		const char *type = json_string_value(json_object_get(c, "type"));
		snprintf(what, sizeof(what), "%s, command %zu (%s)", name, i + 1, type ? type : "?");
		const char *cond = json_string_value(json_object_get(c, "condition"));
		if (cond && *cond) {
			snprintf(sub, sizeof(sub), "%s condition", what);
			int ok = run_condition(J, cond, sub, err, errsz, line);
			if (ok < 0)
				return -1;
			if (ok == 0)
				continue;
		}
		if (!type) {
			snprintf(err, errsz, "%s: a command needs a \"type\"", what);
			return -1;
		}
		if (!strcmp(type, "stop"))
			return 0;
		if (js_try(J)) {
			/* An API error (no lead, a limit) from a command is this command's failure. */
			cm_js_error_describe(J, NULL, sub, sizeof(sub), line);
			js_pop(J, 1);
			snprintf(err, errsz, "%s: %s", what, sub);
			return -1;
		}
		if (!strcmp(type, "send_text")) {
			struct run *rr = need_lead(J);
			if (json_array_size(rr->messages) >= rr->lim->messages_max)
				js_rangeerror(J, "at most %zu messages per run", rr->lim->messages_max);
			const char *text = json_string_value(json_object_get(c, "text"));
			json_array_append_new(rr->messages,
					      json_pack("{so}", "text", substitute(rr, text ? text : "")));
		} else if (!strcmp(type, "add_tags") || !strcmp(type, "remove_tags")) {
			json_t *tags = json_object_get(c, "tags");
			push_json(J, tags ? tags : json_string(""), 0);
			each_tag(J, -1, !strcmp(type, "add_tags") ? tag_add : tag_del, type);
			js_pop(J, 1);
		} else if (!strcmp(type, "set_attr")) {
			struct run *rr = need_lead(J);
			const char *key = json_string_value(json_object_get(c, "key"));
			if (!key || !*key)
				js_typeerror(J, "set_attr needs a \"key\"");
			json_t *v = json_object_get(c, "value");
			json_t *val = json_is_string(v) ? substitute(rr, json_string_value(v))
							: json_incref(v ? v : json_null());
			set_in(rr->attrs, rr->lead_set, rr->lead_del, key, val);
		} else if (!strcmp(type, "run_script")) {
			need_lead(J);
			if (!json_object_get(c, "script_id") && !json_object_get(c, "script_code"))
				js_typeerror(J, "run_script needs \"script_id\" or \"script_code\"");
			js_endtry(J);
			script_handoff(r, c);
			return 0;
		} else if (strcmp(type, "run_js") != 0) {
			js_typeerror(J,
				     "unknown command type '%s' (send_text, add_tags, remove_tags, set_attr, run_js, "
				     "run_script, stop)",
				     type);
		}
		js_endtry(J);
		if (!strcmp(type, "run_js")) {
			const char *code = json_string_value(json_object_get(c, "code"));
			if (code && *code) {
				if (call_body(J, code, what, err, errsz, line) == -1)
					return -1;
				js_pop(J, 1);
			}
		}
	}
	return 0;
}

/* Turns the jobs a script handed over to into envelopes, with the API's rules (as bot.scheduleJob). */
static int check_handoffs(struct run *r, const char *name, char *err, size_t errsz)
{
	for (size_t i = 0; i < json_array_size(r->jobs); i++) {
		json_t *p = json_array_get(r->jobs, i);
		if (json_object_get(p, "v"))
			continue; /* already an envelope (bot.scheduleJob) */
		char why[600];
		json_t *env = job_envelope(r, p, why, sizeof(why));
		if (!env) {
			snprintf(err, errsz, "%s, run_script: %s", name, why);
			return -1;
		}
		json_array_set_new(r->jobs, i, env);
	}
	return 0;
}

json_t *wk_js_run(const json_t *req, const struct wk_js_limits *limits, const struct wk_js_host *host)
{
	struct run r = {.req = req, .lim = limits ? limits : &wk_js_default_limits, .host = host};
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

	js_State *J = js_newstate(cap_alloc, &r, 0);
	if (!J) {
		snprintf(err, sizeof(err), "%s: out of memory starting the interpreter", name);
		goto done;
	}
	js_setcontext(J, &r);
	if (js_try(J)) {
		cm_js_error_describe(J, NULL, err, sizeof(err), &line);
		js_pop(J, 1);
		goto done;
	}
	def_context(J, &r);
	js_endtry(J);

	int ok = run_condition(J, json_string_value(json_object_get(req, "condition")), "condition", err, sizeof(err),
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
		json_array_foreach(json_object_get(tags, "remove"), i, t) tag_del(&r, json_string_value(t));
		json_array_foreach(json_object_get(tags, "add"), i, t) tag_add(&r, json_string_value(t));
	}
	char what[300];
	snprintf(what, sizeof(what), "%s condition", name);
	ok = run_condition(J, json_string_value(json_object_get(req, "code_condition")), what, err, sizeof(err), &line);
	if (ok == 0) {
		outcome = "skipped";
		goto done;
	}
	if (ok < 0)
		goto done;
	const char *code = json_string_value(json_object_get(req, "code"));
	if (code && *code) {
		if (call_body(J, code, name, err, sizeof(err), &line) == -1)
			goto done;
		if (js_try(J)) {
			cm_js_error_describe(J, code, err, sizeof(err), &line);
			js_pop(J, 1);
			goto done;
		}
		if (!js_isundefined(J, -1))
			json_object_set_new(reply, "result", to_json(J, -1, 0));
		js_endtry(J);
		js_pop(J, 1);
	}
	const json_t *script = json_object_get(req, "script");
	if (script && !json_is_null(script)) {
		const char *sname = json_string_value(json_object_get(req, "script_name"));
		if (run_script(J, &r, script, sname ? sname : name, err, sizeof(err), &line) == -1 ||
		    check_handoffs(&r, sname ? sname : name, err, sizeof(err)) == -1)
			goto done;
	}
	outcome = "done";
	json_object_set_new(reply, "effects", effects_json(&r));
done:
	if (r.oom && strcmp(outcome, "failed") == 0 && !strstr(err, "out of memory"))
		snprintf(err + strlen(err), sizeof(err) - strlen(err), " (memory cap of %zu bytes reached)",
			 r.lim->heap_max);
	json_object_set_new(reply, "outcome", json_string(outcome));
	if (strcmp(outcome, "failed") == 0) {
		json_object_set_new(reply, "error", json_string(err));
		if (line > 0)
			json_object_set_new(reply, "error_line", json_integer(line));
	}
	if (J)
		js_freestate(J);
	json_decref(r.attrs), json_decref(r.tags), json_decref(r.bot_attrs), json_decref(r.memory);
	json_decref(r.ticket), json_decref(r.lead_set), json_decref(r.lead_del), json_decref(r.tags_add);
	json_decref(r.tags_del), json_decref(r.status_name), json_decref(r.bot_set), json_decref(r.bot_del);
	json_decref(r.ticket_set), json_decref(r.messages), json_decref(r.jobs), json_decref(r.log);
	json_decref(r.api_headers);
	return reply;
}
