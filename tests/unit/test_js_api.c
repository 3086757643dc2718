/*
 * test_js_api.c - one row per method of the bot JavaScript API (SPEC §4), against the snapshot/effects
 * interface: the code's return value and, where the method writes, the effect it records.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "wk_js.h"

/* Criterion copies parameters into the test's process: inline arrays, not pointers (ASLR). */
struct mcase {
	char method[40];
	char code[300];
	char result[200]; /* the return value as compact JSON ("" = not checked) */
	char path[40];	  /* effect path "lead.set" etc. ("" = no effect checked) */
	char effect[200]; /* that effect as compact, key-sorted JSON */
};

/* one row per method reads best */
/* clang-format off */
static const struct mcase cases[] = {
	{"lead.getAttr", "return lead.getAttr('lang');", "\"en\"", "", ""},
	{"lead.setAttr", "lead.setAttr('k', 7);", "", "lead.set", "{\"k\":\"7\"}"},
	{"lead.getAllAttr", "return Object.keys(lead.getAllAttr()).sort();", "[\"b\",\"f\",\"j\",\"lang\",\"n\"]", "", ""},
	{"lead.isAttrExist", "return [lead.isAttrExist('lang'), lead.isAttrExist('nope')];", "[true,false]", "", ""},
	{"lead.deleteAttr", "lead.deleteAttr('lang'); return lead.isAttrExist('lang');", "false", "lead.del", "[\"lang\"]"},
	{"lead.getIntAttr", "return lead.getIntAttr('n') + lead.getIntAttr('missing', 10);", "15", "", ""},
	{"lead.getFloatAttr", "return lead.getFloatAttr('f') * 2;", "5", "", ""},
	{"lead.getBoolAttr", "return [lead.getBoolAttr('b'), lead.getBoolAttr('lang')];", "[true,false]", "", ""},
	{"lead.getJsonAttr", "return lead.getJsonAttr('j').a;", "1", "", ""},
	{"lead.setJsonAttr", "lead.setJsonAttr('o', {x: [1]});", "", "lead.set", "{\"o\":{\"x\":[1]}}"},
	{"lead.getData", "return [lead.getData('name'), lead.getData('channel'), lead.getData('id')];",
	 "[\"Ann\",\"telegram\",7]", "", ""},
	{"lead.isTagExist", "return [lead.isTagExist('a'), lead.isTagExist('z')];", "[true,false]", "", ""},
	{"lead.getAllTags", "return lead.getAllTags();", "[\"a\",\"b\"]", "", ""},
	{"lead.addTag", "lead.addTag('c');", "", "lead.tags_add", "[\"c\"]"},
	{"lead.addTags", "lead.addTags('d,e');", "", "lead.tags_add", "[\"d\",\"e\"]"},
	{"lead.deleteTag", "lead.deleteTag('a');", "", "lead.tags_del", "[\"a\"]"},
	{"lead.deleteTags", "lead.deleteTags(['a', 'b']);", "", "lead.tags_del", "[\"a\",\"b\"]"},
	{"lead.getStatusId", "return lead.getStatusId();", "3", "", ""},
	{"lead.setStatusByName", "lead.setStatusByName('active');", "", "lead.status_name", "\"active\""},
	{"bot.getAttr", "return bot.getAttr('greeting');", "\"Hello\"", "", ""},
	{"bot.setAttr", "bot.setAttr('counter', 1);", "", "bot.set", "{\"counter\":\"1\"}"},
	{"bot.getAllAttr", "return bot.getAllAttr();", "{\"greeting\":\"Hello\"}", "", ""},
	{"bot.isAttrExist", "return bot.isAttrExist('greeting');", "true", "", ""},
	{"bot.deleteAttr", "bot.deleteAttr('greeting');", "", "bot.del", "[\"greeting\"]"},
	{"bot.getData", "return [bot.getData('id'), bot.getData('name')];", "[1,\"demo\"]", "", ""},
	{"bot.sendText", "bot.sendText('hi there');", "", "messages", "[{\"text\":\"hi there\"}]"},
	{"CommonBotCommands.sendText", "CommonBotCommands.sendText('alias');", "", "messages", "[{\"text\":\"alias\"}]"},
	{"bot.scheduleJob", "return bot.scheduleJob({trigger_code: 't', lead_id: 7, run_after_sec: 5}).length;", "36",
	 "jobs.0.trigger_code", "\"t\""},
	{"bot.scheduleScript", "bot.scheduleScript(4, 7, null, {p: 1});", "", "jobs.0.script_id", "4"},
	{"bot.runTriggerByCodeForLead", "bot.runTriggerByCodeForLead('follow', 8);", "", "jobs.0.lead_id", "8"},
	{"memory.getAttr/setAttr", "memory.setAttr('x', [1]); return memory.getAttr('x');", "[1]", "", ""},
	{"ticket.getData", "return [ticket.getData('id'), ticket.getData('subject')];", "[7,\"hi\"]", "", ""},
	{"ticket.update", "ticket.update({state: 'closed'});", "", "ticket.set", "{\"state\":\"closed\"}"},
	{"request.json", "return request.json.text;", "\"hi\"", "", ""},
	{"request.getParam", "return [request.getParam('text'), request.getParam('no', 'd')];", "[\"hi\",\"d\"]", "", ""},
	{"console.log", "console.log('a', 1);", "", "log", "[\"a 1\"]"},
	{"botId leadId ticketId jobId", "return [botId, leadId, ticketId, jobId.length];", "[1,7,7,36]", "", ""},
};
/* clang-format on */

static json_t *request_for(const char *code)
{
	json_t *r =
		json_pack("{s{sisisiss} s{sissss s{ssssssssss} s[ss] si} s{sissso} s{si s{ss}} s{ss} ss ss}", "context",
			  "botId", 1, "leadId", 7, "ticketId", 7, "jobId", "01a212f2-b91c-7e27-83e4-9f71b82b0035",
			  "lead", "id", 7, "name", "Ann", "channel", "telegram", "attributes", "lang", "en", "n", "5",
			  "f", "2.5", "b", "true", "j", "{\"a\":1}", "tags", "a", "b", "status_id", 3, "bot", "id", 1,
			  "name", "demo", "attributes", json_pack("{ss}", "greeting", "Hello"), "ticket", "id", 7,
			  "data", "subject", "hi", "params", "text", "hi", "name", "trigger t", "code", code);
	cr_assert(r, "test request");
	return r;
}

/* effects at a dotted path; numeric parts index arrays */
static json_t *at(json_t *v, const char *path)
{
	char buf[40], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(p)) : json_object_get(v, p);
	return v;
}

ParameterizedTestParameters(api, every_method)
{
	return cr_make_param_array(struct mcase, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(const struct mcase *c, api, every_method)
{
	json_t *req = request_for(c->code);
	json_t *reply = wk_js_run(req, NULL, NULL);
	json_decref(req);
	const char *outcome = json_string_value(json_object_get(reply, "outcome"));
	const char *err = json_string_value(json_object_get(reply, "error"));
	cr_assert_str_eq(outcome, "done", "%s: failed: %s", c->method, err ? err : "");
	if (c->result[0]) {
		char *got =
			json_dumps(json_object_get(reply, "result"), JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
		cr_expect_str_eq(got ? got : "(none)", c->result, "%s: result: got %s, want %s", c->method, got,
				 c->result);
		free(got);
	}
	if (c->path[0]) {
		json_t *e = at(json_object_get(reply, "effects"), c->path);
		char *got = e ? json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
		cr_expect_str_eq(got ? got : "(none)", c->effect, "%s: effect %s: got %s, want %s", c->method, c->path,
				 got ? got : "(none)", c->effect);
		free(got);
	}
	json_decref(reply);
}
