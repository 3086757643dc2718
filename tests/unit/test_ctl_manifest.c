/*
 * test_ctl_manifest.c - bot folders (ctl_manifest.h): what `bot apply` would change (the diff), and
 * reading a folder: compile errors with file and line and the ES5 hint, shape problems, the hash.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_manifest.h"

/* ---- the diff ---- */

static struct ctl_item trig(int64_t id, const char *code, const char *body, const char *cond, int version)
{
	struct ctl_item it = {.kind = CTL_TRIGGER, .id = id, .version = version};
	it.code = strdup(code);
	it.body = body ? strdup(body) : NULL;
	it.condition = cond ? strdup(cond) : NULL;
	return it;
}

static struct ctl_item script(int64_t id, const char *code, const char *commands, int version)
{
	struct ctl_item it = {.kind = CTL_SCRIPT, .id = id, .version = version};
	it.code = strdup(code);
	it.commands = json_loads(commands, 0, NULL);
	cr_assert(it.commands, "test commands");
	return it;
}

static void clear_all(struct ctl_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ctl_item_clear(&it[i]);
}

/* "action kind id fields old->new" per change, joined with "; " */
static void describe(const struct ctl_change *ch, size_t n, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		json_t *f = ctl_fields_json(ch[i].fields);
		char *fs = json_dumps(f, JSON_COMPACT);
		size_t off = strlen(out);
		snprintf(out + off, size - off, "%s%s %s %lld %s %d->%d", i ? "; " : "", ctl_action_name(ch[i].action),
			 ctl_kind_name(ch[i].kind), (long long)ch[i].id, fs, ch[i].old_version, ch[i].new_version);
		free(fs);
		json_decref(f);
	}
}

static void check_diff(const char *label, struct ctl_item *want, size_t nw, struct ctl_item *have, size_t nh, int prune,
		       const char *expect)
{
	char err[400] = "", got[1000];
	size_t n;
	struct ctl_change *ch = ctl_manifest_diff(want, nw, have, nh, prune, &n, err, sizeof(err));
	cr_assert(ch, "%s: refused: %s", label, err);
	describe(ch, n, got, sizeof(got));
	cr_assert_str_eq(got, expect, "%s: got '%s', want '%s'", label, got, expect);
	free(ch);
}

Test(manifest_diff, nothing_changed)
{
	struct ctl_item want[] = {trig(1, "a", "return 1;", NULL, 0), script(7, "s", "[{\"type\":\"stop\"}]", 0)};
	struct ctl_item have[] = {trig(1, "a", "return 1;", "", 3), script(7, "s", "[{\"type\":\"stop\"}]", 2)};
	check_diff("same code; an empty condition is no condition", want, 2, have, 2, 0,
		   "unchanged trigger 1 [] 3->3; unchanged script 7 [] 2->2");
	clear_all(want, 2);
	clear_all(have, 2);
}

Test(manifest_diff, changes_get_the_next_version)
{
	struct ctl_item want[] = {trig(1, "a", "return 2;", NULL, 0), trig(2, "b", "return 1;", "return true;", 0),
				  script(7, "s", "[{\"type\":\"stop\"}]", 0), trig(4, "new", "x();", NULL, 0)};
	struct ctl_item have[] = {trig(1, "a", "return 1;", NULL, 3), trig(2, "b", "return 1;", NULL, 1),
				  script(7, "s", "[{\"type\":\"send_text\",\"text\":\"hi\"}]", 5)};
	want[1].name = strdup("renamed");
	want[1].script_id = 7;
	check_diff("body; condition, name and script; commands; a new one", want, 4, have, 3, 0,
		   "changed trigger 1 [\"body\"] 3->4; changed trigger 2 [\"name\",\"condition\",\"script_id\"] 1->2; "
		   "changed script 7 [\"commands\"] 5->6; added trigger 4 [] 0->1");
	clear_all(want, 4);
	clear_all(have, 3);
}

Test(manifest_diff, unlisted_items_are_kept_or_removed)
{
	struct ctl_item want[] = {trig(1, "a", "1", NULL, 0)};
	struct ctl_item have[] = {trig(1, "a", "1", NULL, 1), trig(2, "b", "2", NULL, 4), script(2, "b", "[]", 1)};
	check_diff("without --prune", want, 1, have, 3, 0,
		   "unchanged trigger 1 [] 1->1; kept trigger 2 [] 4->4; kept script 2 [] 1->1");
	check_diff("with --prune", want, 1, have, 3, 1,
		   "unchanged trigger 1 [] 1->1; removed trigger 2 [] 4->0; removed script 2 [] 1->0");
	clear_all(want, 1);
	clear_all(have, 3);
}

Test(manifest_diff, same_id_in_another_kind_is_another_item)
{
	struct ctl_item want[] = {script(1, "a", "[]", 0)};
	struct ctl_item have[] = {trig(1, "a", "1", NULL, 1)};
	check_diff("a script 1 next to a trigger 1", want, 1, have, 1, 0,
		   "added script 1 [] 0->1; kept trigger 1 [] 1->1");
	clear_all(want, 1);
	clear_all(have, 1);
}

Test(manifest_diff, codes_may_move_between_listed_items)
{
	struct ctl_item want[] = {trig(1, "b", "1", NULL, 0), trig(2, "a", "2", NULL, 0)};
	struct ctl_item have[] = {trig(1, "a", "1", NULL, 1), trig(2, "b", "2", NULL, 1)};
	check_diff("two triggers swap codes", want, 2, have, 2, 0,
		   "changed trigger 1 [\"code\"] 1->2; changed trigger 2 [\"code\"] 1->2");
	clear_all(want, 2);
	clear_all(have, 2);
}

Test(manifest_diff, a_code_held_by_an_unlisted_item)
{
	struct ctl_item want[] = {trig(5, "echo", "1", NULL, 0)};
	struct ctl_item have[] = {trig(9, "echo", "1", NULL, 1)};
	char err[400] = "";
	size_t n;
	struct ctl_change *ch = ctl_manifest_diff(want, 1, have, 1, 0, &n, err, sizeof(err));
	cr_assert_null(ch, "accepted a code another stored trigger keeps");
	cr_assert(strstr(err, "'echo'") && strstr(err, "trigger 9") && strstr(err, "--prune"), "got '%s'", err);
	check_diff("with --prune the holder goes", want, 1, have, 1, 1,
		   "added trigger 5 [] 0->1; removed trigger 9 [] 1->0");
	clear_all(want, 1);
	clear_all(have, 1);
}

/* ---- reading folders ---- */

static char dir[64];

static void put(const char *rel, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	mkdir(path, 0700);
	*slash = '/';
	FILE *f = fopen(path, "w");
	cr_assert(f, "writing %s", path);
	fputs(text, f);
	fclose(f);
}

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_ctl_manifest.XXXXXX");
	cr_assert(mkdtemp(dir), "mkdtemp");
}

static void remove_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* Loads the folder; returns the problems printed (malloc'd) and their count in *n. */
static char *load(struct ctl_manifest *m, int *n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&text, &len);
	cr_assert(errs);
	*n = ctl_manifest_load(dir, m, errs);
	fclose(errs);
	return text;
}

TestSuite(manifest_load, .init = make_dir, .fini = remove_dir);

Test(manifest_load, a_good_folder)
{
	put("manifest.json", "{\"business\":\"Acme\",\"bot\":{\"id\":5,\"name\":\"acme\"},"
			     "\"triggers\":[{\"id\":1,\"code\":\"a\",\"file\":\"t/"
			     "a.js\",\"script_id\":7,\"condition\":\"return true;\"}],"
			     "\"scripts\":[{\"id\":7,\"code\":\"s\",\"file\":\"s/s.json\"}],"
			     "\"broadcasts\":[{\"id\":2,\"code\":\"b\",\"script_id\":7}],"
			     "\"lead_statuses\":[{\"id\":1,\"name\":\"new\"}],\"bot_attributes\":{\"k\":1}}");
	put("t/a.js", "var x = 1;\nreturn x;\n");
	put("s/s.json",
	    "[{\"type\":\"send_text\",\"text\":\"hi\"},{\"type\":\"run_js\",\"code\":\"lead.addTag('x');\"}]");
	struct ctl_manifest m;
	int n;
	char *errs = load(&m, &n);
	cr_assert_eq(n, 0, "problems: %s", errs);
	cr_assert_eq(m.bot_id, 5);
	cr_assert_str_eq(m.bot_name, "acme");
	cr_assert_eq(m.nitems, 3);
	cr_assert_eq(m.items[0].kind, CTL_SCRIPT, "scripts are read first");
	const struct ctl_item *t = &m.items[1];
	cr_assert_str_eq(t->body, "var x = 1;\nreturn x;\n");
	cr_assert_str_eq(t->condition, "return true;");
	cr_assert_eq(t->script_id, 7);
	cr_assert_str_eq(
		json_string_value(json_object_get(json_array_get(json_object_get(m.doc, "triggers"), 0), "body")),
		t->body, "the recorded manifest has the code inlined");
	cr_assert_eq(strlen(m.hash), 64);
	char first[65];
	memcpy(first, m.hash, sizeof(first));
	ctl_manifest_free(&m);
	free(errs);

	/* the same content with the keys in another order hashes the same; other code does not */
	put("manifest.json", "{\"bot_attributes\":{\"k\":1},\"lead_statuses\":[{\"name\":\"new\",\"id\":1}],"
			     "\"broadcasts\":[{\"script_id\":7,\"code\":\"b\",\"id\":2}],"
			     "\"scripts\":[{\"file\":\"s/s.json\",\"code\":\"s\",\"id\":7}],"
			     "\"triggers\":[{\"condition\":\"return "
			     "true;\",\"script_id\":7,\"file\":\"t/a.js\",\"code\":\"a\",\"id\":1}],"
			     "\"bot\":{\"name\":\"acme\",\"id\":5},\"business\":\"Acme\"}");
	errs = load(&m, &n);
	cr_assert_eq(n, 0, "problems: %s", errs);
	cr_assert_str_eq(m.hash, first, "key order must not change the hash");
	ctl_manifest_free(&m);
	free(errs);
	put("t/a.js", "var x = 2;\nreturn x;\n");
	errs = load(&m, &n);
	cr_assert_str_neq(m.hash, first, "changed code must change the hash");
	ctl_manifest_free(&m);
	free(errs);
}

Test(manifest_load, compile_errors_name_the_file_line_and_es5_hint)
{
	put("manifest.json", "{\"business\":\"Acme\",\"bot\":{\"id\":5},"
			     "\"triggers\":[{\"id\":1,\"code\":\"a\",\"file\":\"a.js\"},"
			     "{\"id\":2,\"code\":\"b\",\"body\":\"var f = (x) => x;\"},"
			     "{\"id\":3,\"code\":\"c\",\"body\":\"return 1;\",\"condition\":\"return `t`;\"}],"
			     "\"scripts\":[{\"id\":7,\"code\":\"s\",\"commands\":[{\"type\":\"run_js\",\"code\":"
			     "\"var a;\\nconst b = 1;\"}]}]}");
	put("a.js", "// three lines\nvar ok = 1;\nlet y = 2;\n");
	struct ctl_manifest m;
	int n;
	char *errs = load(&m, &n);
	cr_assert_eq(n, 4, "got %d problems:\n%s", n, errs);
	char want[300];
	snprintf(want, sizeof(want), "%s/a.js:3: SyntaxError", dir);
	cr_assert(strstr(errs, want), "want '%s' in:\n%s", want, errs);
	cr_assert(strstr(errs, "use var"), "let: want the hint in:\n%s", errs);
	cr_assert(strstr(errs, "trigger 2 'b' body, line 1: SyntaxError") && strstr(errs, "use function"),
		  "arrow: got:\n%s", errs);
	cr_assert(strstr(errs, "trigger 3 'c' condition, line 1") && strstr(errs, "string concatenation"),
		  "template literal: got:\n%s", errs);
	cr_assert(strstr(errs, "script 7 's', command 1 (run_js) code, line 2"), "script command: got:\n%s", errs);
	ctl_manifest_free(&m);
	free(errs);
}

Test(manifest_load, shape_problems_are_all_reported)
{
	put("manifest.json",
	    "{\"bot\":{\"id\":0},\"colour\":1,"
	    "\"triggers\":[{\"id\":1,\"code\":\"a\",\"body\":\"1\",\"script_id\":9},"
	    "{\"id\":1,\"code\":\"a\",\"body\":\"1\"},{\"id\":2,\"code\":\"\",\"bdy\":\"x\"},"
	    "{\"id\":3,\"code\":\"x\",\"file\":\"missing.js\"}],"
	    "\"scripts\":[{\"id\":7,\"code\":\"s\",\"commands\":[{\"type\":\"shout\"},{\"type\":\"set_attr\"}]}],"
	    "\"broadcasts\":[{\"id\":1,\"code\":\"b\"}]}");
	struct ctl_manifest m;
	int n;
	char *errs = load(&m, &n);
	static const char *const want[] = {
		"unknown field \"colour\"",
		"\"business\"",
		"\"bot\"",
		"two triggers have the id 1",
		"two triggers have the code 'a'",
		"script_id 9 is not a script of this manifest",
		"unknown field \"bdy\"",
		"\"code\" must be a string",
		"a trigger needs \"file\" or \"body\"",
		"missing.js: cannot be read",
		"command 1 (shout): unknown type",
		"command 2 (set_attr): needs \"key\"",
		"a broadcast needs",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect(strstr(errs, want[i]), "want '%s' in:\n%s", want[i], errs);
	cr_assert_geq(n, (int)(sizeof(want) / sizeof(want[0])));
	ctl_manifest_free(&m);
	free(errs);
}

Test(manifest_load, a_manifest_that_is_not_json)
{
	put("manifest.json", "{\"business\": \"x\",\n \"bot\": }");
	struct ctl_manifest m;
	int n;
	char *errs = load(&m, &n);
	cr_assert_eq(n, 1);
	char want[200];
	snprintf(want, sizeof(want), "%s/manifest.json:2:", dir);
	cr_assert(strstr(errs, want), "want '%s' in '%s'", want, errs);
	ctl_manifest_free(&m);
	free(errs);
}
