/*
 * test_ctl_leadfile.c - the leads `botjobsctl lead import` reads (ctl_leadfile.h): JSON lines and CSV,
 * good and bad records with their line numbers, what each field becomes, and the COPY rows.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_leadfile.h"

/* Criterion copies parameters into the test's process: inline arrays, not pointers (ASLR). */
struct lcase {
	char label[64];
	char input[400];
	/* what reading yields, records separated by '|': "ID@LINE" for a good one, "!LINE:words" for a bad one
	 * whose reason contains words; "ERR:words" alone when opening fails */
	char want[200];
};

static const struct lcase lcases[] = {
	{"jsonl two leads", "{\"id\":1}\n{\"id\":2,\"name\":\"Bob\"}\n", "1@1|2@2"},
	{"jsonl no final newline", "{\"id\":7}", "7@1"},
	{"jsonl blank lines and CRLF", "\n{\"id\":1}\r\n   \r\n{\"id\":2}\r\n", "1@2|2@4"},
	{"jsonl id as digits", "{\"id\":\"42\"}\n", "42@1"},
	{"jsonl bad JSON in the middle", "{\"id\":1}\n{\"id\":2,\n{\"id\":3}\n", "1@1|!2:not JSON|3@3"},
	{"jsonl not an object", "[1,2]\n{\"id\":3}\n", "!1:JSON object|3@2"},
	{"jsonl missing id", "{\"name\":\"x\"}\n", "!1:id: is required"},
	{"jsonl zero id", "{\"id\":0}\n", "!1:positive integer"},
	{"jsonl negative id as text", "{\"id\":\"-3\"}\n", "!1:positive integer"},
	{"jsonl unknown field", "{\"id\":1,\"nmae\":\"x\"}\n", "!1:unknown field \"nmae\""},
	{"jsonl attributes not an object", "{\"id\":1,\"attributes\":[1]}\n", "!1:attributes"},
	{"jsonl tag with a comma", "{\"id\":1,\"tags\":[\"a,b\"]}\n", "!1:comma"},
	{"jsonl tag not a string", "{\"id\":1,\"tags\":[1]}\n", "!1:tags"},
	{"jsonl muted as text", "{\"id\":1,\"muted\":\"yes\"}\n", "!1:muted"},
	{"jsonl duplicate key", "{\"id\":1,\"id\":2}\n", "!1:not JSON"},
	{"jsonl NUL escape", "{\"id\":1,\"name\":\"a\\u0000b\"}\n", "!1:not JSON"},
	{"empty file", "", ""},
	{"csv header and rows", "id,name,channel,tags,city\n1,Ann,telegram,a|b,Oslo\n2,Bob,,,\n", "1@2|2@3"},
	{"csv byte order mark", "\xEF\xBB\xBFid,name\n5,Eve\n", "5@2"},
	{"csv CRLF", "id,name\r\n1,Ann\r\n2,Bob\r\n", "1@2|2@3"},
	{"csv quoted comma and quote", "id,name\n1,\"Doe, \"\"J\"\"\"\n", "1@2"},
	{"csv line break in quotes", "id,note\n1,\"two\nlines\"\n2,x\n", "1@2|2@4"},
	{"csv bad id", "id,name\nabc,Ann\n2,Bob\n", "!2:id: 'abc'|2@3"},
	{"csv too many fields", "id,name\n1,Ann,extra\n2,Bob\n", "!2:3 field(s)|2@3"},
	{"csv too few fields", "id,name,city\n1,Ann\n", "!2:2 field(s)"},
	{"csv text after a closing quote", "id,name\n1,\"Ann\"x\n2,Bob\n", "!2:after a closing quote|2@3"},
	{"csv unterminated quote", "id,name\n1,Ann\n2,\"Bob\n3,Cy\n", "1@2|!3:never closed"},
	{"csv bad tag", "id,tags\n1,ok|no\x01pe\n", "!2:control character"},
	{"csv muted", "id,muted\n1,true\n2,no\n3,\n4,maybe\n", "1@2|2@3|3@4|!5:muted"},
	{"csv blank lines skipped", "id\n\n1\n\n2\n", "1@3|2@5"},
	{"csv no id column", "name,city\nAnn,Oslo\n", "ERR:'id' column"},
	{"csv duplicate column", "id,city,City,city\n", "ERR:appears twice"},
	{"csv empty column name", "id,,city\n", "ERR:no name"},
	{"csv invalid UTF-8", "id,name\n1,\xC3\x28\n2,ok\n", "!2:UTF-8|2@3"},
};

ParameterizedTestParameters(leadfile, records)
{
	return cr_make_param_array(struct lcase, lcases, sizeof(lcases) / sizeof(lcases[0]));
}

ParameterizedTest(const struct lcase *c, leadfile, records)
{
	FILE *f = fmemopen((void *)c->input, strlen(c->input), "r");
	if (!*c->input)
		f = fopen("/dev/null", "r");
	cr_assert(f, "%s: fmemopen", c->label);
	char err[300] = "", got[600] = "";
	struct ctl_leadfile *lf = ctl_leadfile_open(f, CTL_LEADS_AUTO, err, sizeof(err));
	if (!lf) {
		snprintf(got, sizeof(got), "ERR:%s", err);
		cr_assert(!strncmp(c->want, "ERR:", 4) && strstr(got, c->want + 4), "%s: got %s, want %s", c->label,
			  got, c->want);
		fclose(f);
		return;
	}
	cr_assert(strncmp(c->want, "ERR:", 4) != 0, "%s: opened, want %s", c->label, c->want);
	/* every bad record must carry the words the case names: check them one by one */
	char want[200];
	snprintf(want, sizeof(want), "%s", c->want);
	char *save = NULL, *w = strtok_r(want, "|", &save);
	struct ctl_lead l;
	long line;
	int rc;
	while ((rc = ctl_leadfile_next(lf, &l, &line, err, sizeof(err))) != 0) {
		cr_assert(rc != -2, "%s: read failure %s", c->label, err);
		char one[400];
		if (rc == 1)
			snprintf(one, sizeof(one), "%lld@%ld", (long long)l.id, line);
		else
			snprintf(one, sizeof(one), "!%ld:%s", line, err);
		ctl_lead_clear(&l);
		size_t off = strlen(got);
		snprintf(got + off, sizeof(got) - off, "%s%s", off ? "|" : "", one);
		cr_assert(w, "%s: got %s, want no more records", c->label, got);
		if (w[0] == '!') {
			const char *colon = strchr(w, ':');
			cr_assert(one[0] == '!' && !strncmp(one, w, (size_t)(colon - w) + 1) && strstr(one, colon + 1),
				  "%s: got '%s', want '%s'", c->label, one, w);
		} else {
			cr_assert_str_eq(one, w, "%s: got '%s', want '%s'", c->label, one, w);
		}
		w = strtok_r(NULL, "|", &save);
	}
	cr_assert(!w, "%s: got %s, want %s", c->label, got, c->want);
	ctl_leadfile_close(lf);
	fclose(f);
}

static struct ctl_leadfile *open_text(const char *text, FILE **f)
{
	char err[300];
	*f = fmemopen((void *)text, strlen(text), "r");
	cr_assert(*f);
	struct ctl_leadfile *lf = ctl_leadfile_open(*f, CTL_LEADS_AUTO, err, sizeof(err));
	cr_assert(lf, "open: %s", err);
	return lf;
}

static void next_good(struct ctl_leadfile *lf, struct ctl_lead *l)
{
	char err[300];
	long line;
	int rc = ctl_leadfile_next(lf, l, &line, err, sizeof(err));
	cr_assert_eq(rc, 1, "want a lead, got %d (%s)", rc, err);
}

static void assert_json(const json_t *v, const char *want, const char *what)
{
	char *got = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	cr_assert_str_eq(got, want, "%s: got %s, want %s", what, got, want);
	free(got);
}

Test(leadfile, csv_fields)
{
	FILE *f;
	struct ctl_leadfile *lf = open_text("id, Name ,channel,tags,city,\"zip code\",muted\n"
					    "1, Ann ,telegram, a | b |a||,Oslo,0150,yes\n"
					    "2,,,,,,\n",
					    &f);
	cr_assert_eq(ctl_leadfile_format(lf), CTL_LEADS_CSV);
	struct ctl_lead l;
	next_good(lf, &l);
	cr_assert_eq(l.id, 1);
	cr_assert_str_eq(l.name, "Ann", "name is trimmed: got '%s'", l.name);
	cr_assert_str_eq(l.channel, "telegram");
	assert_json(l.tags, "[\"a\",\"b\"]", "tags split on |, trimmed, empty and repeated ones dropped");
	assert_json(l.attributes, "{\"city\":\"Oslo\",\"zip code\":\"0150\"}", "attribute columns, text kept as is");
	cr_assert_eq(l.muted, 1);
	ctl_lead_clear(&l);
	next_good(lf, &l);
	cr_assert(!l.name && !l.channel, "empty cells are not given");
	assert_json(l.attributes, "{}", "empty attribute cells are not set");
	assert_json(l.tags, "[]", "no tags");
	cr_assert_eq(l.muted, -1, "muted not given");
	ctl_lead_clear(&l);
	ctl_leadfile_close(lf);
	fclose(f);
}

Test(leadfile, jsonl_fields)
{
	FILE *f;
	struct ctl_leadfile *lf = open_text(
		"  {\"id\":3,\"name\":\"Ann\",\"channel\":\"wa\",\"attributes\":{\"n\":1,\"o\":{\"p\":[true]}},"
		"\"tags\":\"x, y,x\",\"muted\":false}\n{\"id\":4,\"name\":null,\"tags\":[\"t\",\"t\"]}\n",
		&f);
	cr_assert_eq(ctl_leadfile_format(lf), CTL_LEADS_JSONL);
	struct ctl_lead l;
	next_good(lf, &l);
	cr_assert_str_eq(l.name, "Ann");
	cr_assert_str_eq(l.channel, "wa");
	assert_json(l.attributes, "{\"n\":1,\"o\":{\"p\":[true]}}", "attributes keep their JSON types");
	assert_json(l.tags, "[\"x\",\"y\"]", "tags from \"a,b\"");
	cr_assert_eq(l.muted, 0);
	ctl_lead_clear(&l);
	next_good(lf, &l);
	cr_assert(!l.name, "null name is not given");
	assert_json(l.tags, "[\"t\"]", "a repeated tag is kept once");
	ctl_lead_clear(&l);
	ctl_leadfile_close(lf);
	fclose(f);
}

Test(leadfile, copy_rows_escape_what_copy_needs)
{
	struct ctl_lead l = {.id = 12, .name = "tab\there", .channel = NULL, .muted = -1};
	l.attributes = json_pack("{ss}", "note", "back\\slash\nnew");
	l.tags = json_pack("[s]", "v");
	struct cm_buf b = {0};
	cr_assert_eq(ctl_lead_copy_row(&l, 7, &b), 0);
	/* the JSON text escapes the newline as \n and the backslash as \\; COPY doubles every backslash */
	cr_assert_str_eq(b.p, "7\t12\ttab\\there\t\\N\t{\"note\":\"back\\\\\\\\slash\\\\nnew\"}\t[\"v\"]\t\\N\n",
			 "got '%s'", b.p);
	l.muted = 1;
	b.len = 0;
	cr_assert_eq(ctl_lead_copy_row(&l, 8, &b), 0);
	cr_assert(strstr(b.p, "\tt\n"), "muted true is t: got '%s'", b.p);
	json_decref(l.attributes);
	json_decref(l.tags);
	cm_buf_free(&b);
}

Test(leadfile, many_lines_keep_their_numbers)
{
	/* 20000 lines, every 1000th bad: the reader recovers and the numbers stay right */
	size_t cap = 20000 * 32, len = 0;
	char *text = malloc(cap);
	cr_assert(text);
	for (int i = 1; i <= 20000; i++)
		len += (size_t)snprintf(text + len, cap - len, i % 1000 ? "{\"id\":%d}\n" : "{\"id\":%d\n", i);
	FILE *f = fmemopen(text, len, "r");
	char err[300];
	struct ctl_leadfile *lf = ctl_leadfile_open(f, CTL_LEADS_AUTO, err, sizeof(err));
	struct ctl_lead l;
	long line, good = 0, bad = 0;
	int rc;
	while ((rc = ctl_leadfile_next(lf, &l, &line, err, sizeof(err))) != 0) {
		if (rc == 1) {
			cr_assert_eq(l.id, line, "lead %lld on line %ld", (long long)l.id, line);
			good++;
		} else {
			cr_assert_eq(line % 1000, 0, "bad line %ld", line);
			bad++;
		}
		ctl_lead_clear(&l);
	}
	cr_assert_eq(good, 19980);
	cr_assert_eq(bad, 20);
	cr_assert_eq(ctl_leadfile_offset(lf), (long long)len, "every byte read");
	ctl_leadfile_close(lf);
	fclose(f);
	free(text);
}
