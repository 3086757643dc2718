/*
 * test_js.c - bot JavaScript: state snapshot in, effects out (wk_js_run). Error messages carry the
 * line; limits turn into JS errors, not crashes; nothing leaks from one run into the next.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "wk_js.h"

static json_t *request(const char *code)
{
	json_t *r =
		json_pack("{s{sisiss} s{sissss s{ss} s[ss]} s{sis{ss}} s{ss} ss ss}", "context", "botId", 1, "leadId",
			  7, "jobId", "01a212f2-b91c-7e27-83e4-9f71b82b0035", "lead", "id", 7, "name", "Ann", "channel",
			  "telegram", "attributes", "lang", "en", "tags", "a", "b", "bot", "id", 1, "attributes",
			  "greeting", "Hello", "params", "text", "hi", "name", "trigger t", "code", code);
	cr_assert(r, "test request");
	return r;
}

static json_t *run(json_t *req)
{
	json_t *reply = wk_js_run(req, NULL, NULL);
	json_decref(req);
	cr_assert(reply);
	return reply;
}

static const char *outcome(const json_t *reply)
{
	return json_string_value(json_object_get(reply, "outcome"));
}

static const char *error(const json_t *reply)
{
	const char *e = json_string_value(json_object_get(reply, "error"));
	return e ? e : "";
}

static json_t *effects(const json_t *reply, const char *a, const char *b)
{
	json_t *e = json_object_get(json_object_get(reply, "effects"), a);
	return b ? json_object_get(e, b) : e;
}

Test(js, demo_echo)
{
	json_t *r = run(request("var text = request.json.text;\nlead.setAttr('echo', text);\n"
				"bot.sendText('echo: ' + text);\nreturn {echoed: text};"));
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	cr_expect_str_eq(json_string_value(json_object_get(effects(r, "lead", "set"), "echo")), "hi");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(effects(r, "messages", NULL), 0), "text")),
			 "echo: hi");
	cr_expect_eq(json_array_size(effects(r, "messages", NULL)), 1);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(r, "result"), "echoed")), "hi");
	json_decref(r);
}

Test(js, context_globals)
{
	json_t *r = run(request("return [botId, leadId, ticketId, jobId, request.getParam('text'), "
				"request.getParam('missing', 'dflt'), request.getParam('missing')];"));
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[1,7,null,\"01a212f2-b91c-7e27-83e4-9f71b82b0035\",\"hi\",\"dflt\",null]");
	free(s);
	json_decref(r);
}

Test(js, syntax_error_has_line_and_name)
{
	json_t *r = run(request("var a = 1;\nvar b = ;\n"));
	cr_assert_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "trigger t, line 2: SyntaxError") != NULL, "got '%s'", error(r));
	cr_expect_eq(json_integer_value(json_object_get(r, "error_line")), 2);
	cr_expect_null(json_object_get(r, "effects"), "a failed run has no effects");
	json_decref(r);
}

Test(js, runtime_error_has_line)
{
	json_t *r = run(request("lead.setAttr('x', 1);\n\nvar o = null;\no.field = 2;\n"));
	cr_assert_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "line 4: TypeError") != NULL, "got '%s'", error(r));
	cr_expect_null(json_object_get(r, "effects"), "effects before the error are dropped");
	json_decref(r);
}

Test(js, thrown_values)
{
	json_t *r = run(request("throw new Error('custom problem');"));
	cr_expect(strstr(error(r), "line 1: Error: custom problem") != NULL, "got '%s'", error(r));
	json_decref(r);
	r = run(request("throw 'plain string';"));
	cr_expect(strstr(error(r), "plain string") != NULL, "got '%s'", error(r));
	json_decref(r);
}

Test(js, es2015_syntax_gets_a_hint)
{
	static const char *codes[][2] = {{"let x = 1;", "let/const"},
					 {"var f = (x) => x;", "arrow"},
					 {"var s = `t`;", "template"},
					 {"class A {}", "classes"}};
	for (size_t i = 0; i < 4; i++) {
		json_t *r = run(request(codes[i][0]));
		cr_expect_str_eq(outcome(r), "failed", "%s", codes[i][0]);
		cr_expect(strstr(error(r), codes[i][1]) && strstr(error(r), "ES5"), "%s: got '%s'", codes[i][0],
			  error(r));
		json_decref(r);
	}
}

Test(js, conditions)
{
	json_t *req = request("lead.setAttr('ran', 'yes');");
	json_object_set_new(req, "condition", json_string("return lead.getAttr('lang') == 'de';"));
	json_t *r = run(req);
	cr_expect_str_eq(outcome(r), "skipped");
	cr_expect_null(json_object_get(r, "effects"));
	json_decref(r);

	req = request("lead.setAttr('ran', 'yes');");
	json_object_set_new(req, "condition", json_string("return lead.getAttr('lang') == 'en';"));
	json_object_set_new(req, "code_condition", json_string(""));
	r = run(req);
	cr_expect_str_eq(outcome(r), "done", "error: %s", error(r));
	json_decref(r);

	req = request("lead.setAttr('ran', 'yes');");
	json_object_set_new(req, "condition", json_string("return nope();"));
	r = run(req);
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "condition, line 1: ReferenceError") != NULL, "got '%s'", error(r));
	json_decref(r);

	req = request("lead.setAttr('ran', 'yes');");
	json_object_set_new(req, "code_condition", json_string("return false;"));
	r = run(req);
	cr_expect_str_eq(outcome(r), "skipped", "the target's own condition counts too");
	json_decref(r);
}

static int has(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), s)) return 1;
	return 0;
}

Test(js, tags_job_changes_then_code)
{
	json_t *req = request("lead.addTag('d'); lead.addTags('e, f'); lead.deleteTags(['b', 'f']);\n"
			      "return [lead.isTagExist('a'), lead.isTagExist('c'), lead.getAllTags()];");
	json_object_set_new(req, "tags", json_pack("{s[s]s[s]}", "remove", "a", "add", "c"));
	json_t *r = run(req);
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[false,true,[\"c\",\"d\",\"e\"]]");
	free(s);
	json_t *add = effects(r, "lead", "tags_add"), *del = effects(r, "lead", "tags_del");
	cr_expect(has(add, "c") && has(add, "d") && has(add, "e") && json_array_size(add) == 3);
	cr_expect(has(del, "a") && has(del, "b") && has(del, "f") && json_array_size(del) == 3);
	json_decref(r);
}

Test(js, attributes)
{
	json_t *r =
		run(request("lead.setAttr('n', 5); lead.setJsonAttr('o', {k: [1, 2]}); lead.deleteAttr('lang');\n"
			    "return [lead.getAttr('n'), lead.getIntAttr('n') + 1, lead.getJsonAttr('o').k[1],\n"
			    "        lead.isAttrExist('lang'), lead.getAttr('missing'), lead.getFloatAttr('x', 2.5),\n"
			    "        lead.getBoolAttr('n'), lead.getData('name'), bot.getAttr('greeting')];"));
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[\"5\",6,2,false,null,2.5,false,\"Ann\",\"Hello\"]");
	free(s);
	cr_expect_str_eq(json_string_value(json_object_get(effects(r, "lead", "set"), "n")), "5",
			 "attributes are strings, as in Metabot");
	cr_expect(json_is_object(json_object_get(effects(r, "lead", "set"), "o")), "setJsonAttr keeps JSON");
	cr_expect(has(effects(r, "lead", "del"), "lang"));
	json_decref(r);
}

Test(js, bot_memory_and_schedule)
{
	json_t *r =
		run(request("bot.setAttr('count', 3); memory.setAttr('tmp', {a: 1});\n"
			    "var id = bot.scheduleJob({trigger_code: 'later', lead_id: leadId, run_after_sec: 60});\n"
			    "return [memory.getAttr('tmp').a, id.length];"));
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[1,36]");
	free(s);
	json_t *job = json_array_get(effects(r, "jobs", NULL), 0);
	cr_expect_str_eq(json_string_value(json_object_get(job, "trigger_code")), "later");
	cr_expect_eq(json_integer_value(json_object_get(job, "lead_id")), 7);
	cr_expect_str_eq(json_string_value(json_object_get(effects(r, "bot", "set"), "count")), "3");
	json_decref(r);

	r = run(request("var x = 1;\nbot.scheduleJob({trigger_code: 'later', run_at: 'soon'});"));
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "line 2") && strstr(error(r), "run_at"), "got '%s'", error(r));
	json_decref(r);
}

Test(js, no_lead_no_ticket)
{
	json_t *req = request("return lead.getAttr('x');");
	json_object_del(req, "lead");
	json_t *r = run(req);
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "no lead") != NULL, "got '%s'", error(r));
	json_decref(r);
	r = run(request("ticket.update({a: 1});"));
	cr_expect(strstr(error(r), "no ticket") != NULL, "got '%s'", error(r));
	json_decref(r);
}

Test(js, memory_cap_is_a_js_error)
{
	json_t *req = request("var a = [];\nwhile (true) a.push('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + a.length);");
	struct wk_js_limits lim = wk_js_default_limits;
	lim.heap_max = 4u << 20;
	json_t *r = wk_js_run(req, &lim, NULL);
	json_decref(req);
	cr_assert_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "memory") != NULL, "got '%s'", error(r));
	json_decref(r);
	/* A script may catch it; the run still ends. */
	req = request("try { var s = 'x'; while (true) s = s + s; } catch (e) { return 'caught'; }");
	r = wk_js_run(req, &lim, NULL);
	json_decref(req);
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "caught", "got %s / %s", outcome(r),
			 error(r));
	json_decref(r);
}

Test(js, message_limit)
{
	json_t *r = run(request("for (var i = 0; i < 1000; i++) bot.sendText('x');"));
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "at most 100 messages") != NULL, "got '%s'", error(r));
	json_decref(r);
}

Test(js, runs_are_isolated)
{
	json_t *r = run(request("leaked_global = 'secret'; Object.prototype.evil = 1; return 1;"));
	cr_expect_str_eq(outcome(r), "done");
	json_decref(r);
	r = run(request("return [typeof leaked_global, ({}).evil === undefined];"));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[\"undefined\",true]");
	free(s);
	json_decref(r);
	r = run(request("lead = null; bot = null; return typeof lead.getAttr;"));
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "function", "the API cannot be overwritten");
	json_decref(r);
}

Test(js, no_host_functions)
{
	json_t *r = run(request("return [typeof print, typeof load, typeof read, typeof quit, typeof require];"));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[\"undefined\",\"undefined\",\"undefined\",\"undefined\",\"undefined\"]");
	free(s);
	json_decref(r);
}

/* A host that records the last call and answers from a canned result. */
struct fake_host {
	char method[64];
	json_t *args;
	json_t *answer; /* NULL = fail */
};

static json_t *fake_call(void *ctx, const char *method, const json_t *args, char *err, size_t n)
{
	struct fake_host *h = ctx;
	snprintf(h->method, sizeof(h->method), "%s", method);
	json_decref(h->args);
	h->args = json_deep_copy(args);
	if (!h->answer) {
		snprintf(err, n, "refused by the test host");
		return NULL;
	}
	return json_incref(h->answer);
}

Test(js, host_calls_are_not_available_without_a_host)
{
	json_t *r = run(request("return bot.findLeads(null, ['name', 'Ann']);"));
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "findLeads is not available") != NULL, "got '%s'", error(r));
	json_decref(r);
}

Test(js, find_leads_goes_to_the_host)
{
	struct fake_host h = {.answer = json_pack("[{si ss}]", "id", 2, "name", "Bob")};
	struct wk_js_host host = {fake_call, &h};
	json_t *req = request("var l = bot.findLeads(['id', 'name'], [['tags', 'contains', 'vip'], ['name', 'Bob']],\n"
			      "                       'id desc', 10, 5);\nreturn l[0].name + l.length;");
	json_t *r = wk_js_run(req, NULL, &host);
	json_decref(req);
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "Bob1");
	cr_expect_str_eq(h.method, "findLeads");
	char *a = json_dumps(h.args, JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect_str_eq(a, "{\"columns\":[\"id\",\"name\"],\"limit\":10,\"offset\":5,\"order_by\":\"id desc\","
			    "\"where\":[[\"tags\",\"contains\",\"vip\"],[\"name\",\"Bob\"]]}");
	free(a);
	json_decref(r), json_decref(h.args), json_decref(h.answer);
}

Test(js, api_calls_carry_headers_and_status)
{
	struct fake_host h = {.answer = json_pack("{si s{ss}}", "status", 201, "body", "ok", "yes")};
	struct wk_js_host host = {fake_call, &h};
	json_t *req = request("api.setHeaders({'X-Key': 'k1'});\n"
			      "var b = api.postJson('https://example.org/hook', {a: 1});\n"
			      "return [b.ok, api.getLastResponseCode()];");
	json_t *r = wk_js_run(req, NULL, &host);
	json_decref(req);
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[\"yes\",201]");
	free(s);
	cr_expect_str_eq(h.method, "api.postJson");
	char *a = json_dumps(h.args, JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect_str_eq(a, "{\"body\":{\"a\":1},\"headers\":{\"X-Key\":\"k1\"},\"url\":\"https://example.org/hook\"}");
	free(a);
	json_decref(r), json_decref(h.args), json_decref(h.answer);
}

Test(js, a_refused_host_call_is_a_catchable_error_with_its_line)
{
	struct fake_host h = {.answer = NULL};
	struct wk_js_host host = {fake_call, &h};
	json_t *req = request("var x = 1;\napi.getJson('http://169.254.169.254/');");
	json_t *r = wk_js_run(req, NULL, &host);
	json_decref(req);
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "line 2") && strstr(error(r), "refused by the test host"), "got '%s'", error(r));
	json_decref(r), json_decref(h.args);
	h.args = NULL;
	req = request("try { api.getJson('http://x/'); } catch (e) { return 'caught: ' + e.message; }");
	r = wk_js_run(req, NULL, &host);
	json_decref(req);
	cr_expect(strstr(json_string_value(json_object_get(r, "result")), "caught: api.getJson: refused"), "got %s",
		  json_string_value(json_object_get(r, "result")));
	json_decref(r), json_decref(h.args);
}

static json_t *script_request(const char *commands)
{
	json_t *req = request("");
	json_object_del(req, "code");
	json_error_t je;
	json_t *cmds = json_loads(commands, 0, &je);
	cr_assert(cmds, "test script is not JSON: %s", je.text);
	json_object_set_new(req, "script", cmds);
	json_object_set_new(req, "script_name", json_string("script 'welcome'"));
	return req;
}

Test(script, commands_in_order_with_conditions_and_substitution)
{
	json_t *r = run(
		script_request("[{\"type\":\"set_attr\",\"key\":\"greet\",\"value\":\"Hi {{ $lang }}!\"},"
			       "{\"type\":\"send_text\",\"text\":\"{{$greet}} ({{ $missing }})\"},"
			       "{\"type\":\"send_text\",\"text\":\"never\",\"condition\":\"return false;\"},"
			       "{\"type\":\"add_tags\",\"tags\":\"x, y\"},{\"type\":\"remove_tags\",\"tags\":[\"a\"]},"
			       "{\"type\":\"run_js\",\"code\":\"lead.setAttr('js', lead.getAllTags().join('|'));\"},"
			       "{\"type\":\"stop\"},"
			       "{\"type\":\"send_text\",\"text\":\"after stop\"}]"));
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	json_t *msgs = effects(r, "messages", NULL);
	cr_assert_eq(json_array_size(msgs), 1, "one message: the conditional one and the one after stop do not run");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "text")), "Hi en! ()");
	cr_expect_str_eq(json_string_value(json_object_get(effects(r, "lead", "set"), "greet")), "Hi en!");
	cr_expect_str_eq(json_string_value(json_object_get(effects(r, "lead", "set"), "js")), "b|x|y");
	json_decref(r);
}

Test(script, run_script_hands_over_and_stops)
{
	json_t *r = run(script_request("[{\"type\":\"run_script\",\"script_code\":\"next\"},"
				       "{\"type\":\"send_text\",\"text\":\"not reached\"}]"));
	cr_assert_str_eq(outcome(r), "done", "error: %s", error(r));
	cr_expect_null(effects(r, "messages", NULL));
	json_t *job = json_array_get(effects(r, "jobs", NULL), 0);
	cr_expect_str_eq(json_string_value(json_object_get(job, "script_code")), "next");
	cr_expect_eq(json_integer_value(json_object_get(job, "lead_id")), 7);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(job, "script_request_params"), "text")),
			 "hi");
	cr_expect(json_string_length(json_object_get(job, "job_id")) == 36, "a full envelope with its own id");
	json_decref(r);
}

Test(script, errors_name_the_command_and_line)
{
	json_t *r = run(script_request("[{\"type\":\"send_text\",\"text\":\"ok\"},"
				       "{\"type\":\"run_js\",\"code\":\"var a = 1;\\nnull.x = a;\"}]"));
	cr_expect_str_eq(outcome(r), "failed");
	cr_expect(strstr(error(r), "script 'welcome', command 2 (run_js), line 2: TypeError") != NULL, "got '%s'",
		  error(r));
	cr_expect_null(json_object_get(r, "effects"), "the message of command 1 is dropped with the failed run");
	json_decref(r);
	r = run(script_request("[{\"type\":\"teleport\"}]"));
	cr_expect(strstr(error(r), "command 1 (teleport): TypeError: unknown command type 'teleport'") != NULL,
		  "got '%s'", error(r));
	json_decref(r);
	r = run(script_request("[{\"type\":\"set_attr\",\"value\":1}]"));
	cr_expect(strstr(error(r), "command 1 (set_attr)") && strstr(error(r), "needs a \"key\""), "got '%s'",
		  error(r));
	json_decref(r);
	r = run(script_request("[{\"type\":\"send_text\",\"text\":\"x\",\"condition\":\"return (;\"}]"));
	cr_expect(strstr(error(r), "command 1 (send_text) condition, line 1: SyntaxError") != NULL, "got '%s'",
		  error(r));
	json_decref(r);
	r = run(script_request("{\"not\":\"a list\"}"));
	cr_expect(strstr(error(r), "not a list of commands") != NULL, "got '%s'", error(r));
	json_decref(r);
	r = run(script_request("[{\"type\":\"run_script\"}]"));
	cr_expect(strstr(error(r), "needs \"script_id\" or \"script_code\"") != NULL, "got '%s'", error(r));
	json_decref(r);
}

Test(js, find_leads_refuses_non_whole_limits)
{
	struct fake_host h = {.answer = json_pack("[]")};
	struct wk_js_host host = {fake_call, &h};
	static const char *bad[] = {"bot.findLeads(null, null, null, 1/0);", "bot.findLeads(null, null, null, NaN);",
				    "bot.findLeads(null, null, null, 10, 1e300);",
				    "bot.findLeads(null, null, null, 2.5);"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *req = request(bad[i]);
		json_t *r = wk_js_run(req, NULL, &host);
		json_decref(req);
		cr_expect_str_eq(outcome(r), "failed", "%s", bad[i]);
		cr_expect(strstr(error(r), "must be a whole number") != NULL, "%s: got '%s'", bad[i], error(r));
		json_decref(r);
	}
	json_decref(h.args), json_decref(h.answer);
}

Test(js, empty_results_are_kept)
{
	json_t *r = run(request("return [];"));
	cr_assert(json_is_array(json_object_get(r, "result")), "[] is a result");
	json_decref(r);
	r = run(request("return {};"));
	cr_assert(json_is_object(json_object_get(r, "result")), "{} is a result");
	json_decref(r);
}

/* ---- the engine: states reused per bot ---- */

static json_t *bot_request(int bot, const char *code)
{
	json_t *r = request(code);
	json_object_set_new(json_object_get(r, "context"), "botId", json_integer(bot));
	return r;
}

static const char *engine_result(struct wk_js_engine *e, json_t *req, char *buf, size_t n)
{
	json_t *r = wk_js_engine_run(e, req, NULL);
	json_decref(req);
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(buf, n, "%s", s ? s : outcome(r));
	free(s);
	json_decref(r);
	return buf;
}

Test(engine, a_runs_globals_are_gone_in_the_next_run_of_the_same_bot)
{
	struct wk_js_engine *e = wk_js_engine_new(NULL);
	char buf[200];
	cr_assert_str_eq(
		engine_result(e, bot_request(1, "implicit = 'x'; this.explicit = 1; return 1;"), buf, sizeof(buf)),
		"1");
	cr_expect_str_eq(
		engine_result(e, bot_request(1, "return [typeof implicit, typeof explicit];"), buf, sizeof(buf)),
		"[\"undefined\",\"undefined\"]");
	wk_js_engine_free(e);
}

Test(engine, bots_never_share_a_state)
{
	struct wk_js_engine *e = wk_js_engine_new(NULL);
	char buf[200];
	engine_result(e, bot_request(1, "Object.prototype.secret = 'bot 1'; String.prototype.x = 1; return 1;"), buf,
		      sizeof(buf));
	cr_expect_str_eq(engine_result(e, bot_request(2, "return [({}).secret === undefined, ''.x === undefined];"),
				       buf, sizeof(buf)),
			 "[true,true]");
	/* More bots than states: the least recently used state is rebuilt, still never shared. */
	for (int b = 10; b < 30; b++)
		cr_expect_str_eq(engine_result(e, bot_request(b, "var s = ({}).secret; return s === undefined;"), buf,
					       sizeof(buf)),
				 "true", "bot %d", b);
	wk_js_engine_free(e);
}

Test(engine, context_is_each_runs_own)
{
	struct wk_js_engine *e = wk_js_engine_new(NULL);
	char buf[200];
	for (int lead = 1; lead <= 3; lead++) {
		json_t *req = bot_request(1, "return [leadId, request.json.n, request.json.n, lead.getAttr('k')];");
		json_object_set_new(json_object_get(req, "context"), "leadId", json_integer(lead));
		json_object_set_new(req, "params", json_pack("{si}", "n", lead * 10));
		json_object_set_new(json_object_get(req, "lead"), "attributes", json_pack("{si}", "k", lead));
		char want[64];
		snprintf(want, sizeof(want), "[%d,%d,%d,\"%d\"]", lead, lead * 10, lead * 10, lead);
		cr_expect_str_eq(engine_result(e, req, buf, sizeof(buf)), want);
	}
	cr_expect_str_eq(engine_result(e, bot_request(1, "leadId = 99; return leadId;"), buf, sizeof(buf)), "7",
			 "context ids are read-only");
	wk_js_engine_free(e);
}

Test(engine, code_changes_are_seen_and_compiled_code_is_reused)
{
	struct wk_js_engine *e = wk_js_engine_new(NULL);
	char buf[200];
	cr_expect_str_eq(engine_result(e, bot_request(1, "return 'v1';"), buf, sizeof(buf)), "\"v1\"");
	cr_expect_str_eq(engine_result(e, bot_request(1, "return 'v2';"), buf, sizeof(buf)), "\"v2\"");
	for (int i = 0; i < 100; i++)
		cr_assert_str_eq(engine_result(e, bot_request(1, "return 'v1';"), buf, sizeof(buf)), "\"v1\"");
	wk_js_engine_free(e);
}

Test(engine, a_state_that_ran_out_of_memory_is_rebuilt)
{
	struct wk_js_limits lim = wk_js_default_limits;
	lim.heap_max = 4u << 20;
	lim.runs_per_state = 3;
	struct wk_js_engine *e = wk_js_engine_new(&lim);
	char buf[200];
	cr_expect_str_eq(
		engine_result(e, bot_request(1, "var a = []; while (true) a.push('xxxxxxxxxxxxxxxx' + a.length);"), buf,
			      sizeof(buf)),
		"failed");
	for (int i = 0; i < 10; i++)
		cr_expect_str_eq(engine_result(e,
					       bot_request(1, "var a = []; for (var i = 0; i < 1000; i++) a.push(i);"
							      " return a.length;"),
					       buf, sizeof(buf)),
				 "1000", "run %d after the memory bomb", i);
	wk_js_engine_free(e);
}

Test(js, a_request_without_params_sees_an_empty_object)
{
	json_t *req = request("return [typeof request.json, request.getParam('x', 'd')];");
	json_object_del(req, "params");
	json_t *r = run(req);
	char *s = json_dumps(json_object_get(r, "result"), JSON_COMPACT);
	cr_expect_str_eq(s, "[\"object\",\"d\"]", "got %s (%s)", s, error(r));
	free(s);
	json_decref(r);
}
