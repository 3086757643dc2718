/*
 * test_job.c - the schedule rules of SPEC §1 (cm_job_from_request) and the Kafka envelope
 * (cm_job_to_envelope / cm_envelope_parse), table-driven.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_job.h"
#include "cm_time.h"

#define NOW INT64_C(1800000000000000) /* 2027-01-15T08:00:00Z */

/* Criterion copies parameters into the test's process: inline arrays, not pointers (ASLR). */
struct rcase {
	char label[64];
	char body[400];
	char bad[120]; /* the fields that must be reported, comma-separated; "" = valid */
};

static const struct rcase rcases[] = {
	{"trigger by code", "{\"trigger_code\":\"echo\",\"lead_id\":1}", ""},
	{"trigger by id as string", "{\"trigger_id\":\"7\"}", ""},
	{"trigger without lead", "{\"trigger_code\":\"echo\"}", ""},
	{"broadcast without lead", "{\"broadcast_code\":\"promo\"}", ""},
	{"script with lead", "{\"script_id\":3,\"lead_id\":9,\"ticket_id\":4}", ""},
	{"tags only", "{\"lead_id\":1,\"add_tags\":\"a,b\",\"remove_tags\":\"c\"}", ""},
	{"everything",
	 "{\"trigger_code\":\"t\",\"lead_id\":1,\"run_at\":\"2027-01-15 09:00:00\",\"is_periodic\":true,"
	 "\"repeat_interval_sec\":60,\"condition_script_code\":\"return true;\",\"script_request_params\":"
	 "{\"a\":[1,2]},\"add_tags\":[\"x\"]}",
	 ""},
	{"script by code", "{\"script_code\":\"welcome\",\"lead_id\":\"9\"}", ""},
	{"broadcast by id", "{\"broadcast_id\":4}", ""},
	{"ticket id as string", "{\"trigger_id\":1,\"ticket_id\":\"12\"}", ""},
	{"bad ticket id", "{\"trigger_id\":1,\"ticket_id\":0}", "ticket_id"},
	{"run_at RFC 3339", "{\"trigger_id\":1,\"run_at\":\"2027-01-15T09:00:00.250+01:00\"}", ""},
	{"run_at in the past", "{\"trigger_id\":1,\"run_at\":\"2020-01-01 00:00:00\"}", ""},
	{"zero delay", "{\"trigger_id\":1,\"run_after_sec\":0}", ""},
	{"delay at the horizon", "{\"trigger_id\":1,\"run_after_sec\":31622400}", ""},
	{"delay past the horizon", "{\"trigger_id\":1,\"run_after_sec\":31622401}", "run_after_sec"},
	{"delay as string", "{\"trigger_id\":1,\"run_after_sec\":\"30\"}", ""},
	{"delay as words", "{\"trigger_id\":1,\"run_after_sec\":\"soon\"}", "run_after_sec"},
	{"not periodic without interval", "{\"trigger_id\":1,\"is_periodic\":false}", ""},
	{"interval at the floor", "{\"trigger_id\":1,\"is_periodic\":\"true\",\"repeat_interval_sec\":10}", ""},
	{"interval as words", "{\"trigger_id\":1,\"is_periodic\":true,\"repeat_interval_sec\":\"hourly\"}",
	 "repeat_interval_sec"},
	{"condition that compiles", "{\"trigger_id\":1,\"condition_script_code\":\"return lead.getAttr('x') == 1;\"}",
	 ""},
	{"empty condition", "{\"trigger_id\":1,\"condition_script_code\":\"\"}", ""},
	{"params null", "{\"trigger_id\":1,\"script_request_params\":null}", ""},
	{"params as string", "{\"trigger_id\":1,\"script_request_params\":\"{}\"}", "script_request_params"},
	{"tags array", "{\"lead_id\":1,\"remove_tags\":[\"a\",\"b\"]}", ""},
	{"tags with a number inside", "{\"lead_id\":1,\"remove_tags\":[\"a\",2]}", "remove_tags"},
	{"tags with a control character", "{\"lead_id\":1,\"add_tags\":\"a\\u0001b\"}", "add_tags"},
	{"id and code of one kind", "{\"trigger_id\":1,\"trigger_code\":\"echo\"}", "trigger_code"},
	{"two kinds", "{\"trigger_code\":\"echo\",\"script_id\":2,\"lead_id\":1}", "target"},
	{"no target", "{\"lead_id\":1}", "target"},
	{"empty body", "{}", "target"},
	{"tags only without lead", "{\"add_tags\":\"a\"}", "lead_id"},
	{"script without lead", "{\"script_code\":\"s\"}", "lead_id"},
	{"zero id", "{\"trigger_id\":0}", "trigger_id"},
	{"negative lead", "{\"trigger_code\":\"t\",\"lead_id\":-5}", "lead_id"},
	{"fractional lead", "{\"trigger_code\":\"t\",\"lead_id\":1.5}", "lead_id"},
	{"lead as words", "{\"trigger_code\":\"t\",\"lead_id\":\"one\"}", "lead_id"},
	{"empty code", "{\"trigger_code\":\"\"}", "trigger_code"},
	{"code as number", "{\"trigger_code\":5}", "trigger_code"},
	{"bad run_at", "{\"trigger_code\":\"t\",\"run_at\":\"tomorrow\"}", "run_at"},
	{"impossible run_at", "{\"trigger_code\":\"t\",\"run_at\":\"2027-02-30 10:00:00\"}", "run_at"},
	{"run_at as number", "{\"trigger_code\":\"t\",\"run_at\":1800000000}", "run_at"},
	{"run_at too far", "{\"trigger_code\":\"t\",\"run_at\":\"2030-01-01 00:00:00\"}", "run_at"},
	{"negative delay", "{\"trigger_code\":\"t\",\"run_after_sec\":-1}", "run_after_sec"},
	{"delay too long", "{\"trigger_code\":\"t\",\"run_after_sec\":99999999}", "run_after_sec"},
	{"fractional delay", "{\"trigger_code\":\"t\",\"run_after_sec\":1.5}", "run_after_sec"},
	{"periodic without interval", "{\"trigger_code\":\"t\",\"is_periodic\":true}", "repeat_interval_sec"},
	{"interval under the floor", "{\"trigger_code\":\"t\",\"is_periodic\":true,\"repeat_interval_sec\":5}",
	 "repeat_interval_sec"},
	{"periodic not boolean", "{\"trigger_code\":\"t\",\"is_periodic\":\"often\"}", "is_periodic"},
	{"condition does not compile", "{\"trigger_code\":\"t\",\"condition_script_code\":\"return (;\"}",
	 "condition_script_code"},
	{"condition with let", "{\"trigger_code\":\"t\",\"condition_script_code\":\"let x = 1; return x;\"}",
	 "condition_script_code"},
	{"condition not a string", "{\"trigger_code\":\"t\",\"condition_script_code\":true}", "condition_script_code"},
	{"params not an object", "{\"trigger_code\":\"t\",\"script_request_params\":[1]}", "script_request_params"},
	{"tags not a string", "{\"lead_id\":1,\"add_tags\":5}", "add_tags"},
	{"tag too long",
	 "{\"lead_id\":1,\"add_tags\":"
	 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaa\"}",
	 "add_tags"},
	{"unknown field", "{\"trigger_code\":\"t\",\"trigger_cod\":\"x\"}", "trigger_cod"},
	{"every bad field at once", "{\"trigger_code\":5,\"lead_id\":-1,\"run_at\":\"x\",\"is_periodic\":true}",
	 "trigger_code,lead_id,run_at,repeat_interval_sec"},
};

ParameterizedTestParameters(job, request_rules)
{
	return cr_make_param_array(struct rcase, rcases, sizeof(rcases) / sizeof(rcases[0]));
}

ParameterizedTest(const struct rcase *c, job, request_rules)
{
	json_error_t je;
	json_t *body = json_loads(c->body, 0, &je);
	cr_assert(body, "%s: test body is not JSON: %s", c->label, je.text);
	json_t *errors = json_object();
	struct cm_job job;
	cm_job_init(&job);
	struct cm_job_parse_ctx ctx = {.now_us = NOW,
				       .limits = &cm_job_default_limits,
				       .unknown = CM_UNKNOWN_REJECT,
				       .check_condition_compiles = 1};
	int rc = cm_job_from_request(body, 42, &ctx, &job, errors);
	char line[1000];
	cm_errors_line(errors, line, sizeof(line));
	if (!c->bad[0]) {
		cr_assert_eq(rc, 0, "%s: got errors '%s', want none", c->label, line);
		cr_assert(json_is_object(job.params), "%s: params must default to {}", c->label);
	} else {
		cr_assert_eq(rc, -1, "%s: accepted, want errors on %s", c->label, c->bad);
		char want[120];
		snprintf(want, sizeof(want), "%s", c->bad);
		size_t nwant = 0;
		for (char *save = NULL, *f = strtok_r(want, ",", &save); f; f = strtok_r(NULL, ",", &save), nwant++)
			cr_expect(json_object_get(errors, f) != NULL, "%s: got '%s', want an error on %s", c->label,
				  line, f);
		cr_expect_eq(json_object_size(errors), nwant, "%s: got '%s', want exactly %s", c->label, line, c->bad);
	}
	cm_job_clear(&job);
	json_decref(errors);
	json_decref(body);
}

static int parse(const char *text, struct cm_job *job, json_t **errors, enum cm_unknown_fields unknown,
		 json_t *warnings)
{
	json_t *body = json_loads(text, 0, NULL);
	*errors = json_object();
	cm_job_init(job);
	struct cm_job_parse_ctx ctx = {
		.now_us = NOW, .limits = &cm_job_default_limits, .unknown = unknown, .warnings = warnings};
	int rc = cm_job_from_request(body, 42, &ctx, job, *errors);
	json_decref(body);
	return rc;
}

/* Size limits need bodies too big for the table. */
Test(job, size_limits)
{
	struct cm_job j;
	json_t *e;
	json_t *big = json_object();
	char *pad = malloc(70000);
	memset(pad, 'x', 69999);
	pad[69999] = '\0';
	json_object_set_new(big, "trigger_id", json_integer(1));
	json_object_set_new(big, "script_request_params", json_pack("{ss}", "pad", pad));
	char *text = json_dumps(big, JSON_COMPACT);
	cr_assert_eq(parse(text, &j, &e, CM_UNKNOWN_REJECT, NULL), -1);
	cr_expect(json_object_get(e, "script_request_params") != NULL, "params over 64 KiB");
	cm_job_clear(&j), json_decref(e), free(text);
	json_object_set_new(big, "script_request_params", json_pack("{ss#}", "pad", pad, (size_t)60000));
	text = json_dumps(big, JSON_COMPACT);
	cr_assert_eq(parse(text, &j, &e, CM_UNKNOWN_REJECT, NULL), 0, "60 KB of params are fine");
	cm_job_clear(&j), json_decref(e), free(text);
	json_object_del(big, "script_request_params");
	json_object_set_new(big, "condition_script_code", json_string(pad));
	text = json_dumps(big, JSON_COMPACT);
	cr_assert_eq(parse(text, &j, &e, CM_UNKNOWN_REJECT, NULL), -1);
	cr_expect(json_object_get(e, "condition_script_code") != NULL, "condition over 64 KiB");
	cm_job_clear(&j), json_decref(e), free(text);
	json_t *tags = json_array();
	for (int i = 0; i < 101; i++)
		json_array_append_new(tags, json_sprintf("t%d", i));
	json_object_del(big, "condition_script_code");
	json_object_set_new(big, "lead_id", json_integer(1));
	json_object_set(big, "add_tags", tags);
	text = json_dumps(big, JSON_COMPACT);
	cr_assert_eq(parse(text, &j, &e, CM_UNKNOWN_REJECT, NULL), -1);
	cr_expect(json_object_get(e, "add_tags") != NULL, "101 tags");
	cm_job_clear(&j), json_decref(e), free(text);
	json_array_remove(tags, 100);
	text = json_dumps(big, JSON_COMPACT);
	cr_assert_eq(parse(text, &j, &e, CM_UNKNOWN_REJECT, NULL), 0, "100 tags are fine");
	cm_job_clear(&j), json_decref(e), free(text);
	json_decref(tags), json_decref(big), free(pad);
}

Test(job, due_times)
{
	struct cm_job j;
	json_t *e;
	cr_assert_eq(parse("{\"trigger_code\":\"t\"}", &j, &e, CM_UNKNOWN_REJECT, NULL), 0);
	cr_expect_eq(j.due_us, NOW, "no time = due now");
	cm_job_clear(&j), json_decref(e);
	cr_assert_eq(parse("{\"trigger_code\":\"t\",\"run_after_sec\":300}", &j, &e, CM_UNKNOWN_REJECT, NULL), 0);
	cr_expect_eq(j.due_us, NOW + 300 * CM_US_PER_SEC);
	cm_job_clear(&j), json_decref(e);
	cr_assert_eq(parse("{\"trigger_code\":\"t\",\"run_after_sec\":\"300\"}", &j, &e, CM_UNKNOWN_REJECT, NULL), 0);
	cr_expect_eq(j.due_us, NOW + 300 * CM_US_PER_SEC, "delays may come as strings");
	cm_job_clear(&j), json_decref(e);
	cr_assert_eq(parse("{\"trigger_code\":\"t\",\"run_at\":\"2027-01-15T08:00:10.5Z\",\"run_after_sec\":999}", &j,
			   &e, CM_UNKNOWN_REJECT, NULL),
		     0);
	cr_expect_eq(j.due_us, NOW + 10500000, "run_at wins over run_after_sec");
	cm_job_clear(&j), json_decref(e);
	cr_assert_eq(
		parse("{\"trigger_code\":\"t\",\"run_at\":\"2020-01-01 00:00:00\"}", &j, &e, CM_UNKNOWN_REJECT, NULL),
		0);
	cr_expect_eq(j.due_us, NOW, "a one-shot job in the past is due now");
	cm_job_clear(&j), json_decref(e);
	cr_assert_eq(parse("{\"trigger_code\":\"t\",\"run_at\":\"2027-01-14 09:00:00\",\"is_periodic\":1,"
			   "\"repeat_interval_sec\":86400}",
			   &j, &e, CM_UNKNOWN_REJECT, NULL),
		     0);
	char buf[CM_TIME_BUFSZ];
	cr_expect_str_eq(cm_time_format(j.due_us, buf), "2027-01-14T09:00:00.000Z",
			 "a periodic job keeps its phase (every day at 09:00)");
	cr_expect(j.is_periodic && j.interval_sec == 86400);
	cm_job_clear(&j), json_decref(e);
}

Test(job, tags_are_split_trimmed_deduplicated)
{
	struct cm_job j;
	json_t *e;
	cr_assert_eq(parse("{\"lead_id\":1,\"add_tags\":\" vip, new ,,vip\",\"remove_tags\":[\"old\",\" old \"]}", &j,
			   &e, CM_UNKNOWN_REJECT, NULL),
		     0);
	cr_assert_eq(j.n_add_tags, 2);
	cr_expect_str_eq(j.add_tags[0], "vip");
	cr_expect_str_eq(j.add_tags[1], "new");
	cr_assert_eq(j.n_remove_tags, 1);
	cr_expect_str_eq(j.remove_tags[0], "old");
	cr_expect_eq(j.kind, CM_TARGET_NONE);
	cm_job_clear(&j), json_decref(e);
}

Test(job, unknown_fields_warn_mode)
{
	struct cm_job j;
	json_t *e, *w = json_object();
	cr_assert_eq(parse("{\"trigger_code\":\"t\",\"colour\":\"red\"}", &j, &e, CM_UNKNOWN_WARN, w), 0);
	cr_expect(json_object_get(w, "colour") != NULL, "the unknown field is reported as a warning");
	cm_job_clear(&j), json_decref(e), json_decref(w);
}

Test(job, condition_error_has_its_line)
{
	struct cm_job j;
	json_t *e;
	cr_assert_eq(parse("{\"trigger_code\":\"t\",\"condition_script_code\":\"var a = 1;\\nreturn a +;\"}", &j, &e,
			   CM_UNKNOWN_REJECT, NULL),
		     0, "parse() does not compile conditions");
	cm_job_clear(&j), json_decref(e);
	json_t *body =
		json_loads("{\"trigger_code\":\"t\",\"condition_script_code\":\"var a = 1;\\nreturn a +;\"}", 0, NULL);
	json_t *errors = json_object();
	struct cm_job_parse_ctx ctx = {.now_us = NOW, .check_condition_compiles = 1};
	cm_job_init(&j);
	cr_assert_eq(cm_job_from_request(body, 1, &ctx, &j, errors), -1);
	const char *msg = json_string_value(json_array_get(json_object_get(errors, "condition_script_code"), 0));
	cr_assert(msg && strstr(msg, "line 2") && strstr(msg, "SyntaxError"), "got '%s'", msg);
	cm_job_clear(&j), json_decref(errors), json_decref(body);
}

Test(envelope, round_trip)
{
	struct cm_job j, back;
	json_t *e;
	cr_assert_eq(parse("{\"trigger_code\":\"echo\",\"lead_id\":7,\"ticket_id\":3,\"run_after_sec\":60,"
			   "\"is_periodic\":true,\"repeat_interval_sec\":3600,\"condition_script_code\":\"return 1;\","
			   "\"script_request_params\":{\"text\":\"hi\"},\"add_tags\":\"a,b\",\"remove_tags\":\"c\"}",
			   &j, &e, CM_UNKNOWN_REJECT, NULL),
		     0);
	snprintf(j.job_id, sizeof(j.job_id), "01a212f2-b91c-7e27-83e4-9f71b82b0035");
	json_t *env = cm_job_to_envelope(&j);
	char *text = json_dumps(env, JSON_COMPACT);
	enum cm_command cmd;
	struct cm_cancel cancel;
	char err[300];
	cr_assert_eq(cm_envelope_parse(text, strlen(text), NOW + 5 * CM_US_PER_SEC, NULL, &cmd, &back, &cancel, err,
				       sizeof(err)),
		     0, "%s", err);
	cr_expect_eq(cmd, CM_CMD_SCHEDULE);
	cr_expect_str_eq(back.job_id, j.job_id);
	cr_expect_eq(back.bot_id, 42);
	cr_expect_eq(back.lead_id, 7);
	cr_expect_eq(back.ticket_id, 3);
	cr_expect_eq(back.kind, CM_TARGET_TRIGGER);
	cr_expect_str_eq(back.target_code, "echo");
	cr_expect_eq(back.due_us, j.due_us, "due_at survives to the µs, whatever the message timestamp");
	cr_expect_eq(back.accepted_us, NOW);
	cr_expect(back.is_periodic && back.interval_sec == 3600);
	cr_expect_str_eq(back.condition, "return 1;");
	cr_expect(json_equal(back.params, j.params));
	cr_expect_eq(back.n_add_tags, 2);
	cr_expect_eq(back.n_remove_tags, 1);
	free(text);
	json_decref(env), json_decref(e);
	cm_job_clear(&j), cm_job_clear(&back);
}

Test(envelope, direct_publishers_may_use_run_after_sec)
{
	const char *m = "{\"v\":1,\"type\":\"schedule\",\"job_id\":\"01a212f2-b91c-7e27-83e4-9f71b82b0035\","
			"\"bot_id\":5,\"trigger_id\":2,\"run_after_sec\":10}";
	enum cm_command cmd;
	struct cm_job j;
	struct cm_cancel c;
	char err[300];
	cr_assert_eq(cm_envelope_parse(m, strlen(m), NOW, NULL, &cmd, &j, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(j.due_us, NOW + 10 * CM_US_PER_SEC, "relative to the message timestamp");
	cm_job_clear(&j);
}

Test(envelope, cancel)
{
	const char *m =
		"{\"v\":1,\"type\":\"cancel\",\"job_id\":\"01a212f2-b91c-7e27-83e4-9f71b82b0035\",\"bot_id\":5}";
	enum cm_command cmd;
	struct cm_job j;
	struct cm_cancel c;
	char err[300];
	cr_assert_eq(cm_envelope_parse(m, strlen(m), NOW, NULL, &cmd, &j, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cmd, CM_CMD_CANCEL);
	cr_expect_eq(c.bot_id, 5);
	cr_expect_str_eq(c.job_id, "01a212f2-b91c-7e27-83e4-9f71b82b0035");
}

struct bad_env {
	char label[48];
	char msg[300];
	char reason[64];
};

static const struct bad_env bad_envs[] = {
	{"not JSON", "{\"v\":1,", "not JSON"},
	{"not an object", "[1,2]", "must be a JSON object"},
	{"binary", "\x01\x02\xff", "not JSON"},
	{"no version", "{\"type\":\"schedule\"}", "v: must be 1"},
	{"future version", "{\"v\":2,\"type\":\"schedule\"}", "v: must be 1"},
	{"unknown type", "{\"v\":1,\"type\":\"explode\"}", "type:"},
	{"bad job id", "{\"v\":1,\"type\":\"schedule\",\"job_id\":\"x\",\"bot_id\":1}", "job_id: must be a UUID"},
	{"no bot", "{\"v\":1,\"type\":\"schedule\",\"job_id\":\"01a212f2-b91c-7e27-83e4-9f71b82b0035\"}", "bot_id"},
	{"invalid fields",
	 "{\"v\":1,\"type\":\"schedule\",\"job_id\":\"01a212f2-b91c-7e27-83e4-9f71b82b0035\",\"bot_id\":1,"
	 "\"trigger_code\":\"t\",\"due_at\":\"soon\"}",
	 "due_at"},
	{"no target",
	 "{\"v\":1,\"type\":\"schedule\",\"job_id\":\"01a212f2-b91c-7e27-83e4-9f71b82b0035\",\"bot_id\":1}", "target"},
	{"duplicate keys", "{\"v\":1,\"v\":1}", "not JSON"},
};

ParameterizedTestParameters(envelope, invalid)
{
	return cr_make_param_array(struct bad_env, bad_envs, sizeof(bad_envs) / sizeof(bad_envs[0]));
}

ParameterizedTest(const struct bad_env *c, envelope, invalid)
{
	enum cm_command cmd;
	struct cm_job j;
	struct cm_cancel cancel;
	char err[300] = "";
	cr_assert_eq(cm_envelope_parse(c->msg, strlen(c->msg), NOW, NULL, &cmd, &j, &cancel, err, sizeof(err)), -1,
		     "%s: accepted", c->label);
	cr_assert(strstr(err, c->reason) != NULL, "%s: got reason '%s', want it to mention '%s'", c->label, err,
		  c->reason);
}

/* Found by fuzz_request: a tags-only job whose tags are all empty was answered 202 and then
 * dead-lettered by the worker ("target: give one of ..."), its envelope having no tags at all. */
Test(envelope, every_accepted_request_makes_an_envelope_the_worker_accepts)
{
	static const char *bodies[] = {
		"{\"add_tags\":\"\",\"lead_id\":1}",	   "{\"add_tags\":\" , ,\",\"lead_id\":1}",
		"{\"remove_tags\":[],\"lead_id\":\"5\"}",  "{\"add_tags\":[\"\"],\"remove_tags\":\"\",\"lead_id\":2}",
		"{\"remove_tags\":\"vip\",\"lead_id\":3}", "{\"trigger_code\":\"t\",\"add_tags\":\"\"}",
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(bodies); i++) {
		struct cm_job j, back;
		json_t *e;
		cr_assert_eq(parse(bodies[i], &j, &e, CM_UNKNOWN_REJECT, NULL), 0, "%s: refused", bodies[i]);
		snprintf(j.job_id, sizeof(j.job_id), "01a212f2-b91c-7e27-83e4-9f71b82b0035");
		json_t *env = cm_job_to_envelope(&j);
		char *text = json_dumps(env, JSON_COMPACT), err[300] = "";
		enum cm_command cmd;
		struct cm_cancel cancel;
		cr_expect_eq(cm_envelope_parse(text, strlen(text), NOW, NULL, &cmd, &back, &cancel, err, sizeof(err)),
			     0, "%s: the worker refuses %s: %s", bodies[i], text, err);
		cr_expect_eq(back.kind, j.kind, "%s", bodies[i]);
		cr_expect_eq(back.n_add_tags + back.n_remove_tags, j.n_add_tags + j.n_remove_tags, "%s", bodies[i]);
		free(text);
		json_decref(env), json_decref(e);
		cm_job_clear(&j), cm_job_clear(&back);
	}
}

/* Found by fuzz_envelope: a publisher's timestamp past INT64_MAX / 1000 ms overflowed ts * 1000. */
Test(envelope, message_timestamps)
{
	static const struct {
		const char *label;
		int64_t ts_ms, want;
	} c[] = {
		{"none", 0, NOW},
		{"none (-1)", -1, NOW},
		{"the epoch's first ms", 1, 1000},
		{"now", NOW / 1000, NOW},
		{"year 9999", CM_TIME_MAX_SEC * 1000, CM_TIME_MAX_SEC * 1000 * 1000},
		{"past year 9999", CM_TIME_MAX_SEC * 1000 + 1000, NOW},
		{"INT64_MAX", INT64_MAX, NOW},
	};
	for (size_t i = 0; i < CM_ARRAY_LEN(c); i++) {
		int64_t got = cm_envelope_now_us(c[i].ts_ms, NOW);
		cr_expect_eq(got, c[i].want, "%s: got %lld, want %lld", c[i].label, (long long)got,
			     (long long)c[i].want);
	}
}

/* Found by fuzz_api: a rule quoting a client's bytes (or cut inside a character) made no string. */
Test(job, error_rules_are_utf8)
{
	json_t *errors = json_object();
	cm_errors_add(errors, "run_at", "bad '%s'", "a\xff\xe2\x82");
	json_t *rules = json_object_get(errors, "run_at");
	cr_assert_eq(json_array_size(rules), 1, "the rule is there");
	cr_expect_str_eq(json_string_value(json_array_get(rules, 0)), "bad 'a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd'");
	json_decref(errors);
}
