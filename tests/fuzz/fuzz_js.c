/*
 * fuzz_js.c - libFuzzer target: the sandbox child's side of the protocol, decoding a run request
 * (sandbox/sb_serve.c hands the "req" of a run frame to wk_js_engine_run) and the bot API over it: the
 * context, the lead/bot/ticket snapshot, params, tags and the code, turned into MuJS values, run, and
 * the effects turned back into the reply the worker reads.
 *
 * Input: the request as JSON, e.g.
 *   {"context":{"botId":1,"leadId":7},"lead":{"id":7,"attributes":{"lang":"en"},"tags":["a"]},
 *    "bot":{"id":1,"attributes":{}},"params":{"text":"hi"},"name":"trigger t",
 *    "code":"lead.setAttr('x', request.json.text); bot.sendText('hi'); return lead.getAllTags();"}
 * Code that could loop forever (a loop, eval, the Function constructor) is replaced by a fixed script
 * that touches the snapshot: a runaway script is the parent's watchdog's business (tests/unit/test_sandbox.c),
 * not a finding. Host calls (findLeads, api.*) get a fixed answer.
 * Checks beyond "no crash, no leak, no undefined behaviour": there is always a reply, and it is one the
 * worker accepts (valid_reply of worker/wk_sandbox.c) - a hostile snapshot or script cannot make the
 * child say something the parent refuses; host calls never exceed calls_max.
 * Seeds: tests/fuzz/corpus/js/ (the requests of tests/unit/test_js.c and test_js_api.c).
 */
#include "../../worker/wk_sandbox.c" /* NOLINT(bugprone-suspicious-include): valid_reply is static */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CALLS_MAX 8

static const char FIXED_CODE[] = "var a = lead.getAllAttr(), t = lead.getAllTags(), b = bot.getAllAttr();\n"
				 "lead.setAttr('seen', String(request.getParam('text', '')));\n"
				 "lead.addTags(t.join(','));\n"
				 "memory.setAttr('k', JSON.stringify(request.json));\n"
				 "bot.sendText('n=' + Object.keys(a).length + '/' + Object.keys(b).length);\n"
				 "return {lead: leadId, bot: botId, job: jobId, params: request.json};";

static int calls;

static json_t *host_call(void *ctx, const char *method, const json_t *args, char *errstr, size_t errstr_size)
{
	(void)ctx;
	(void)args;
	if (++calls > CALLS_MAX) {
		fprintf(stderr, "host call %d of at most %d\n", calls, CALLS_MAX);
		abort();
	}
	if (strcmp(method, "findLeads") == 0)
		return json_pack("[{sisssb}]", "id", 1, "name", "Ann", "muted", 0);
	if (strncmp(method, "api.", 4) == 0)
		return json_pack("{sis{sb}}", "status", 200, "body", "ok", 1);
	snprintf(errstr, errstr_size, "unknown host call");
	return NULL;
}

static int may_loop(const char *code)
{
	static const char *words[] = {"for", "while", "eval", "Function", "constructor"};
	for (size_t i = 0; i < CM_ARRAY_LEN(words); i++)
		if (strstr(code, words[i]))
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *req = json_loadb((const char *)data, size, 0, NULL);
	if (!json_is_object(req)) {
		json_decref(req);
		return 0; /* sb_serve refuses a run frame whose req is not an object */
	}
	const char *code = json_string_value(json_object_get(req, "code"));
	if (code && may_loop(code))
		json_object_set_new(req, "code", json_string(FIXED_CODE));

	static int logged;
	if (!logged) {
		cm_log_setup("fuzz", CM_LOG_TEXT, CM_LOG_ERROR);
		logged = 1;
	}
	struct wk_js_limits lim = wk_js_default_limits;
	lim.heap_max = 32u << 20;
	lim.calls_max = CALLS_MAX;
	struct wk_js_engine *e = wk_js_engine_new(&lim);
	if (!e)
		abort();
	const struct wk_js_host host = {.call = host_call};
	/* Twice on one engine, as a child reuses its state for the same bot: the second run must not
	 * trip over what the first left behind. */
	for (int i = 0; i < 2; i++) {
		calls = 0;
		json_t *reply = wk_js_engine_run(e, req, &host);
		if (!reply || !valid_reply(reply)) {
			char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
			fprintf(stderr, "run %d: the worker would refuse this reply: %s\n", i, s ? s : "(none)");
			abort();
		}
		json_decref(reply);
	}
	wk_js_engine_free(e);
	json_decref(req);
	return 0;
}
