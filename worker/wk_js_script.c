/*
 * wk_js_script.c - dialog scripts (SPEC §4): an ordered list of commands, each with an optional JS
 * condition, run in the same state and with the same API as trigger code.
 */
#include <ctype.h>
#include <mujs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_js.h"
#include "wk_js_int.h"

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
	json_array_append_new(r->jobs, p); /* validated by wk_js_handoffs() */
}

/* One command (its condition already held). Returns 0 to go on, 1 when the script ends here (stop,
 * run_script), -1 with err naming the command. Not inlined: its js_try must not share a frame with the
 * caller's loop (-Wclobbered). */
__attribute__((noinline)) static int command(js_State *J, struct run *r, const json_t *c, const char *type,
					     const char *what, char *err, size_t errsz, int *line)
{
	char sub[600];
	if (!strcmp(type, "stop"))
		return 1;
	if (js_try(J)) {
		/* An API error (no lead, a limit) from a command is this command's failure. */
		cm_js_error_describe(J, NULL, sub, sizeof(sub), line);
		js_pop(J, 1);
		snprintf(err, errsz, "%s: %s", what, sub);
		return -1;
	}
	if (!strcmp(type, "send_text")) {
		struct run *rr = wk_js_need_lead(J);
		if (json_array_size(rr->messages) >= rr->lim->messages_max)
			js_rangeerror(J, "at most %zu messages per run", rr->lim->messages_max);
		const char *text = json_string_value(json_object_get(c, "text"));
		json_array_append_new(rr->messages, json_pack("{so}", "text", substitute(rr, text ? text : "")));
	} else if (!strcmp(type, "add_tags") || !strcmp(type, "remove_tags")) {
		json_t *tags = json_object_get(c, "tags");
		wk_js_push(J, tags ? tags : json_string(""), 0);
		wk_js_each_tag(J, -1, !strcmp(type, "add_tags") ? wk_js_tag_add : wk_js_tag_del, type);
		js_pop(J, 1);
	} else if (!strcmp(type, "set_attr")) {
		struct run *rr = wk_js_need_lead(J);
		const char *key = json_string_value(json_object_get(c, "key"));
		if (!key || !*key)
			js_typeerror(J, "set_attr needs a \"key\"");
		json_t *v = json_object_get(c, "value");
		json_t *val =
			json_is_string(v) ? substitute(rr, json_string_value(v)) : json_incref(v ? v : json_null());
		wk_js_set_in(rr->attrs, rr->lead_set, rr->lead_del, key, val);
	} else if (!strcmp(type, "run_script")) {
		wk_js_need_lead(J);
		if (!json_object_get(c, "script_id") && !json_object_get(c, "script_code"))
			js_typeerror(J, "run_script needs \"script_id\" or \"script_code\"");
		js_endtry(J);
		script_handoff(r, c);
		return 1;
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
			if (wk_js_call_body(J, code, what, err, errsz, line) == -1)
				return -1;
			js_pop(J, 1);
		}
	}
	return 0;
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
int wk_js_script(js_State *J, struct run *r, const json_t *cmds, const char *name, char *err, size_t errsz, int *line)
{
	if (!json_is_array(cmds)) {
		snprintf(err, errsz, "%s: the script is not a list of commands", name);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(cmds); i++) {
		const json_t *c = json_array_get(cmds, i);
		char what[400], sub[600];
		const char *type = json_string_value(json_object_get(c, "type"));
		snprintf(what, sizeof(what), "%s, command %zu (%s)", name, i + 1, type ? type : "?");
		const char *cond = json_string_value(json_object_get(c, "condition"));
		if (cond && *cond) {
			snprintf(sub, sizeof(sub), "%s condition", what);
			int ok = wk_js_condition(J, cond, sub, err, errsz, line);
			if (ok < 0)
				return -1;
			if (ok == 0)
				continue;
		}
		if (!type) {
			snprintf(err, errsz, "%s: a command needs a \"type\"", what);
			return -1;
		}
		int rc = command(J, r, c, type, what, err, errsz, line);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	return 0;
}

/* Turns the jobs a script handed over to into envelopes, with the API's rules (as bot.scheduleJob). */
int wk_js_handoffs(struct run *r, const char *name, char *err, size_t errsz)
{
	for (size_t i = 0; i < json_array_size(r->jobs); i++) {
		json_t *p = json_array_get(r->jobs, i);
		if (json_object_get(p, "v"))
			continue; /* already an envelope (bot.scheduleJob) */
		char why[600];
		json_t *env = wk_js_job_envelope(r, p, why, sizeof(why));
		if (!env) {
			snprintf(err, errsz, "%s, run_script: %s", name, why);
			return -1;
		}
		json_array_set_new(r->jobs, i, env);
	}
	return 0;
}
