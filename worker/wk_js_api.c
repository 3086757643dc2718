/*
 * wk_js_api.c - the bot JavaScript API of SPEC §4 (Metabot's names): lead, bot, memory, ticket,
 * request, api, console, CommonBotCommands and the context ids. The objects are made once per state
 * (wk_js_def_api); every function reads the run in progress (wk_js_cur) and either answers from the
 * run's working copies or records an effect.
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
#include "wk_js_int.h"

struct run *wk_js_need_lead(js_State *J)
{
	struct run *r = wk_js_cur(J);
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
		return wk_js_value(J, idx, 0);
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

void wk_js_set_in(json_t *working, json_t *set, json_t *del, const char *k, json_t *v)
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
	json_array_foreach(tags, i, x)
	{
		const char *s = json_string_value(x); /* a snapshot's tags are strings; the decoder does not check */
		if (s && strcmp(s, t) == 0)
			return (int)i;
	}
	return -1;
}

void wk_js_tag_add(struct run *r, const char *t)
{
	if (!t)
		return;
	if (tag_index(r->tags, t) < 0)
		json_array_append_new(r->tags, json_string(t));
	json_object_del(r->tags_del, t);
	json_object_set_new(r->tags_add, t, json_true());
}

void wk_js_tag_del(struct run *r, const char *t)
{
	if (!t)
		return;
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
void wk_js_each_tag(js_State *J, int idx, void (*fn)(struct run *, const char *), const char *name)
{
	struct run *r = wk_js_need_lead(J);
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
	struct run *r = wk_js_need_lead(J);
	push_attr_text(J, json_object_get(r->attrs, arg_key(J, 1, "lead.getAttr")));
}

static void L_setAttr(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	const char *k = arg_key(J, 1, "lead.setAttr");
	wk_js_set_in(r->attrs, r->lead_set, r->lead_del, k, attr_value(J, 2));
	js_pushundefined(J);
}

static void L_getAllAttr(js_State *J)
{
	wk_js_push(J, wk_js_need_lead(J)->attrs, 0);
}

static void L_isAttrExist(js_State *J)
{
	json_t *v = json_object_get(wk_js_need_lead(J)->attrs, arg_key(J, 1, "lead.isAttrExist"));
	js_pushboolean(J, v && !json_is_null(v));
}

static void L_deleteAttr(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
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
	double d = attr_number(J, json_object_get(wk_js_need_lead(J)->attrs, arg_key(J, 1, "lead.getIntAttr")), 1);
	js_pushnumber(J, isnan(d) ? (js_isdefined(J, 2) ? js_tonumber(J, 2) : 0) : d);
}

static void L_getFloatAttr(js_State *J)
{
	double d = attr_number(J, json_object_get(wk_js_need_lead(J)->attrs, arg_key(J, 1, "lead.getFloatAttr")), 0);
	js_pushnumber(J, isnan(d) ? (js_isdefined(J, 2) ? js_tonumber(J, 2) : 0) : d);
}

static void L_getBoolAttr(js_State *J)
{
	json_t *v = json_object_get(wk_js_need_lead(J)->attrs, arg_key(J, 1, "lead.getBoolAttr"));
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
	json_t *v = json_object_get(wk_js_need_lead(J)->attrs, arg_key(J, 1, "lead.getJsonAttr"));
	if (json_is_string(v)) {
		json_t *parsed = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
		wk_js_push_or_null(J, parsed);
		json_decref(parsed);
	} else {
		wk_js_push_or_null(J, v);
	}
}

static void L_setJsonAttr(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	const char *k = arg_key(J, 1, "lead.setJsonAttr");
	wk_js_set_in(r->attrs, r->lead_set, r->lead_del, k, wk_js_value(J, 2, 0));
	js_pushundefined(J);
}

static void L_getData(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	const char *k = arg_key(J, 1, "lead.getData");
	if (!strcmp(k, "attributes") || !strcmp(k, "tags"))
		wk_js_push(J, !strcmp(k, "tags") ? r->tags : r->attrs, 0);
	else
		wk_js_push_or_null(J, json_object_get(r->lead, k));
}

static void L_isTagExist(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	js_pushboolean(J, tag_index(r->tags, js_tostring(J, 1)) >= 0);
}

static void L_getAllTags(js_State *J)
{
	wk_js_push(J, wk_js_need_lead(J)->tags, 0);
}

static void L_addTag(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	const char *t = js_tostring(J, 1);
	check_tag(J, t, "lead.addTag");
	wk_js_tag_add(r, t);
	js_pushundefined(J);
}

static void L_addTags(js_State *J)
{
	wk_js_each_tag(J, 1, wk_js_tag_add, "lead.addTags");
	js_pushundefined(J);
}

static void L_deleteTag(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	wk_js_tag_del(r, js_tostring(J, 1));
	js_pushundefined(J);
}

static void L_deleteTags(js_State *J)
{
	wk_js_each_tag(J, 1, wk_js_tag_del, "lead.deleteTags");
	js_pushundefined(J);
}

static void L_getStatusId(js_State *J)
{
	wk_js_push_or_null(J, json_object_get(wk_js_need_lead(J)->lead, "status_id"));
}

static void L_setStatusByName(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	const char *name = arg_key(J, 1, "lead.setStatusByName");
	json_decref(r->status_name);
	r->status_name = json_string(name);
	js_pushundefined(J);
}

/* ---- bot ---- */

static void B_getAttr(js_State *J)
{
	push_attr_text(J, json_object_get(wk_js_cur(J)->bot_attrs, arg_key(J, 1, "bot.getAttr")));
}

static void B_setAttr(js_State *J)
{
	struct run *r = wk_js_cur(J);
	const char *k = arg_key(J, 1, "bot.setAttr");
	wk_js_set_in(r->bot_attrs, r->bot_set, r->bot_del, k, attr_value(J, 2));
	js_pushundefined(J);
}

static void B_getAllAttr(js_State *J)
{
	wk_js_push(J, wk_js_cur(J)->bot_attrs, 0);
}

static void B_isAttrExist(js_State *J)
{
	json_t *v = json_object_get(wk_js_cur(J)->bot_attrs, arg_key(J, 1, "bot.isAttrExist"));
	js_pushboolean(J, v && !json_is_null(v));
}

static void B_deleteAttr(js_State *J)
{
	struct run *r = wk_js_cur(J);
	del_in(r->bot_attrs, r->bot_set, r->bot_del, arg_key(J, 1, "bot.deleteAttr"));
	js_pushundefined(J);
}

static void B_getData(js_State *J)
{
	const json_t *bot = json_object_get(wk_js_cur(J)->req, "bot");
	wk_js_push_or_null(J, json_object_get(bot, arg_key(J, 1, "bot.getData")));
}

static void B_sendText(js_State *J)
{
	struct run *r = wk_js_need_lead(J);
	if (json_array_size(r->messages) >= r->lim->messages_max)
		js_rangeerror(J, "sendText: at most %zu messages per run", r->lim->messages_max);
	const char *text = js_tostring(J, 1); /* may call toString and throw: before allocating */
	json_t *m = json_object();
	json_object_set_new(m, "text", json_string(text));
	json_array_append_new(r->messages, m);
	js_pushundefined(J);
}

/* Validates a schedule request made from JavaScript with the API's own rules and records it. */
/* Validates a schedule request made from bot code with the API's own rules. Borrows params. Returns
 * the envelope (a new reference, its job id fresh), or NULL with the rules broken in err. */
json_t *wk_js_job_envelope(struct run *r, const json_t *params, char *err, size_t errsz)
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
	struct run *r = wk_js_cur(J);
	if (json_array_size(r->jobs) >= r->lim->jobs_max) {
		json_decref(params);
		js_rangeerror(J, "%s: at most %zu new jobs per run", fn, r->lim->jobs_max);
	}
	char err[600];
	json_t *env = wk_js_job_envelope(r, params, err, sizeof(err));
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
	schedule(J, wk_js_value(J, 1, 0), "bot.scheduleJob");
}

/* Fills obj (a new object) with fill, which may throw: obj is freed then, never leaked. */
static json_t *filled(js_State *J, json_t *obj, void (*fill)(js_State *J, json_t *obj))
{
	if (js_try(J)) {
		json_decref(obj);
		js_throw(J);
	}
	fill(J, obj);
	js_endtry(J);
	return obj;
}

static void set_arg(js_State *J, json_t *obj, const char *key, int idx)
{
	if (js_isdefined(J, idx) && !js_isnull(J, idx))
		json_object_set_new(obj, key, wk_js_value(J, idx, 0));
}

static void fill_script(js_State *J, json_t *p)
{
	json_object_set_new(p, "script_id", wk_js_value(J, 1, 0));
	set_arg(J, p, "lead_id", 2);
	set_arg(J, p, "ticket_id", 3);
	if (js_isobject(J, 4))
		json_object_set_new(p, "script_request_params", wk_js_value(J, 4, 0));
}

static void B_scheduleScript(js_State *J)
{
	schedule(J, filled(J, json_object(), fill_script), "bot.scheduleScript");
}

static void fill_trigger(js_State *J, json_t *p)
{
	json_object_set_new(p, "trigger_code", json_string(js_tostring(J, 1)));
	set_arg(J, p, "lead_id", 2);
	set_arg(J, p, "ticket_id", 3);
}

static void B_runTriggerByCodeForLead(js_State *J)
{
	schedule(J, filled(J, json_object(), fill_trigger), "bot.runTriggerByCodeForLead");
}

/* ---- calls to the host: bot.findLeads, api.* ---- */

/* Calls the host with args (stolen); returns the result (a new reference) or throws. */
static json_t *host_call(js_State *J, const char *method, json_t *args)
{
	struct run *r = wk_js_cur(J);
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
	wk_js_push(J, res, 0);
	js_endtry(J);
	json_decref(res);
}

static json_t *arg_or_null(js_State *J, int idx)
{
	return js_isdefined(J, idx) && !js_isnull(J, idx) ? wk_js_value(J, idx, 0) : json_null();
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
static void fill_find(js_State *J, json_t *args)
{
	json_object_set_new(args, "limit", whole_arg(J, 4, "limit"));
	json_object_set_new(args, "offset", whole_arg(J, 5, "offset"));
	json_object_set_new(args, "columns", arg_or_null(J, 1));
	json_object_set_new(args, "where", arg_or_null(J, 2));
	json_object_set_new(args, "order_by", arg_or_null(J, 3));
}

static void B_findLeads(js_State *J)
{
	push_result(J, host_call(J, "findLeads", filled(J, json_object(), fill_find)));
}

static void A_setHeaders(js_State *J)
{
	struct run *r = wk_js_cur(J);
	if (!js_isobject(J, 1) || js_isarray(J, 1))
		js_typeerror(J, "api.setHeaders: expects an object of header names and values");
	json_t *h = wk_js_value(J, 1, 0);
	json_decref(r->api_headers);
	r->api_headers = h;
	js_pushundefined(J);
}

static void api_call(js_State *J, const char *method, int with_body)
{
	struct run *r = wk_js_cur(J);
	if (!js_isstring(J, 1))
		js_typeerror(J, "%s: the URL must be a string", method);
	json_t *sent = with_body ? arg_or_null(J, 2) : NULL; /* may throw: before allocating */
	json_t *args = json_object();
	json_object_set_new(args, "url", json_string(js_tostring(J, 1)));
	json_object_set_new(args, "headers", r->api_headers ? json_incref(r->api_headers) : json_object());
	if (sent)
		json_object_set_new(args, "body", sent);
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
	js_pushnumber(J, wk_js_cur(J)->api_status);
}

/* ---- memory, ticket, request, console ---- */

static void M_getAttr(js_State *J)
{
	wk_js_push_or_null(J, json_object_get(wk_js_cur(J)->memory, arg_key(J, 1, "memory.getAttr")));
}

static void M_setAttr(js_State *J)
{
	const char *k = arg_key(J, 1, "memory.setAttr"); /* may throw: before the value is made */
	json_object_set_new(wk_js_cur(J)->memory, k, wk_js_value(J, 2, 0));
	js_pushundefined(J);
}

static struct run *need_ticket(js_State *J)
{
	struct run *r = wk_js_cur(J);
	if (!r->ticket)
		js_error(J, "this job has no ticket (schedule it with ticket_id)");
	return r;
}

static void T_getData(js_State *J)
{
	struct run *r = need_ticket(J);
	const char *k = arg_key(J, 1, "ticket.getData");
	if (!strcmp(k, "id"))
		wk_js_push_or_null(J, json_object_get(json_object_get(r->req, "ticket"), "id"));
	else
		wk_js_push_or_null(J, json_object_get(r->ticket, k));
}

static void T_update(js_State *J)
{
	struct run *r = need_ticket(J);
	if (!js_isobject(J, 1) || js_isarray(J, 1))
		js_typeerror(J, "ticket.update: expects an object of fields");
	json_t *f = wk_js_value(J, 1, 0);
	json_object_update(r->ticket, f);
	json_object_update(r->ticket_set, f);
	json_decref(f);
	js_pushundefined(J);
}

static void Q_getParam(js_State *J)
{
	const json_t *params = json_object_get(wk_js_cur(J)->req, "params");
	const json_t *v = json_object_get(params, js_tostring(J, 1));
	if (v && !json_is_null(v))
		wk_js_push(J, v, 0);
	else if (js_isdefined(J, 2))
		js_copy(J, 2);
	else
		js_pushnull(J);
}

static void C_log(js_State *J)
{
	struct run *r = wk_js_cur(J);
	char line[1024];
	size_t off = 0;
	for (int i = 1; i < js_gettop(J) && off < sizeof(line) - 1; i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", i > 1 ? " " : "", js_tostring(J, i));
	if (json_array_size(r->log) < r->lim->log_max)
		json_array_append_new(r->log, json_string(line));
	js_pushundefined(J);
}

static void Q_json(js_State *J)
{
	js_getregistry(J, WK_JS_REQUEST_JSON);
	if (js_isundefined(J, -1)) {
		js_pop(J, 1);
		const json_t *params = json_object_get(wk_js_cur(J)->req, "params");
		if (params)
			wk_js_push(J, params, 0);
		else
			js_newobject(J); /* no params: request.json is {} */
		js_copy(J, -1);
		js_setregistry(J, WK_JS_REQUEST_JSON);
	}
}

static void push_context(js_State *J, const char *key)
{
	wk_js_push_or_null(J, json_object_get(json_object_get(wk_js_cur(J)->req, "context"), key));
}

static void G_botId(js_State *J)
{
	push_context(J, "botId");
}

static void G_leadId(js_State *J)
{
	push_context(J, "leadId");
}

static void G_ticketId(js_State *J)
{
	push_context(J, "ticketId");
}

static void G_jobId(js_State *J)
{
	push_context(J, "jobId");
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

void wk_js_def_api(js_State *J)
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

	/* request.json is built on first use in a run and kept for the rest of it (the registry). */
	js_newobject(J);
	js_newcfunction(J, Q_json, "json", 0);
	js_pushundefined(J);
	js_defaccessor(J, -3, "json", JS_DONTCONF);
	js_newcfunction(J, Q_getParam, "getParam", 2);
	js_defproperty(J, -2, "getParam", JS_READONLY | JS_DONTENUM | JS_DONTCONF);
	js_defglobal(J, "request", JS_READONLY | JS_DONTENUM | JS_DONTCONF);

	/* botId, leadId, ticketId, jobId: read-only, and always this run's. */
	static const struct {
		const char *name;
		js_CFunction get;
	} ids[] = {{"botId", G_botId}, {"leadId", G_leadId}, {"ticketId", G_ticketId}, {"jobId", G_jobId}};
	js_pushglobal(J);
	for (size_t i = 0; i < CM_ARRAY_LEN(ids); i++) {
		js_newcfunction(J, ids[i].get, ids[i].name, 0);
		js_pushundefined(J);
		js_defaccessor(J, -3, ids[i].name, JS_DONTENUM | JS_DONTCONF);
	}
	js_pop(J, 1);
}
