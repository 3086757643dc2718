/*
 * cm_job.c - schedule request and job envelope: parse, validate, serialize. See cm_job.h.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_job.h"
#include "cm_js.h"
#include "cm_time.h"
#include "cm_utf8.h"

const struct cm_job_limits cm_job_default_limits = {
	.params_max = 64 * 1024,
	.condition_max = 64 * 1024,
	.horizon_sec = 366L * 24 * 3600,
	.min_interval_sec = 10,
	.tags_max = 100,
};

#define TAG_MAX_LEN 100
#define CODE_MAX_LEN 255

static const char *kind_names[] = {"none", "script", "trigger", "broadcast"};

const char *cm_target_kind_name(enum cm_target_kind k)
{
	return (unsigned)k < CM_ARRAY_LEN(kind_names) ? kind_names[k] : "none";
}

enum cm_target_kind cm_target_kind_parse(const char *s)
{
	for (size_t i = 1; i < CM_ARRAY_LEN(kind_names); i++)
		if (s && strcmp(s, kind_names[i]) == 0)
			return (enum cm_target_kind)i;
	return CM_TARGET_NONE;
}

void cm_errors_add(json_t *errors, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *arr = json_object_get(errors, field);
	if (!json_is_array(arr)) {
		arr = json_array();
		json_object_set_new(errors, field, arr);
	}
	json_array_append_new(arr, cm_json_text(msg)); /* msg may quote a value, or be cut inside a character */
}

void cm_errors_line(const json_t *errors, char *out, size_t out_size)
{
	size_t off = 0;
	const char *field;
	json_t *rules;
	out[0] = '\0';
	json_object_foreach((json_t *)errors, field, rules)
	{
		size_t i;
		json_t *r;
		json_array_foreach(rules, i, r)
		{
			int n = snprintf(out + off, out_size - off, "%s%s: %s", off ? "; " : "", field,
					 json_string_value(r) ? json_string_value(r) : "?");
			if (n < 0 || (size_t)n >= out_size - off)
				return;
			off += (size_t)n;
		}
	}
}

void cm_job_init(struct cm_job *job)
{
	memset(job, 0, sizeof(*job));
}

static void free_tags(char **tags, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(tags[i]);
	free(tags);
}

void cm_job_clear(struct cm_job *job)
{
	if (!job)
		return;
	free(job->target_code);
	free(job->condition);
	free(job->request_hash);
	json_decref(job->params);
	free_tags(job->add_tags, job->n_add_tags);
	free_tags(job->remove_tags, job->n_remove_tags);
	memset(job, 0, sizeof(*job));
}

void cm_job_key(int64_t bot_id, int64_t lead_id, char *out, size_t out_size)
{
	if (lead_id > 0)
		snprintf(out, out_size, "%" PRId64 ":%" PRId64, bot_id, lead_id);
	else
		snprintf(out, out_size, "%" PRId64 ":-", bot_id);
}

/*
 * Reads an id (positive integer). PHP and form-style clients send numbers as strings, so a string of
 * digits is accepted too. Returns 1 when present and valid, 0 when absent or null, -1 when invalid
 * (the error is recorded).
 */
static int get_id(const json_t *obj, const char *field, int64_t *out, json_t *errors)
{
	json_t *v = json_object_get(obj, field);
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 1) {
			cm_errors_add(errors, field, "must be a positive integer");
			return -1;
		}
		*out = json_integer_value(v);
		return 1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (*s && isdigit((unsigned char)*s) && !*end && !errno && n >= 1) {
			*out = n;
			return 1;
		}
	}
	cm_errors_add(errors, field, "must be a positive integer");
	return -1;
}

/* A non-negative integer (also as a digit string). Same returns as get_id. */
static int get_count(const json_t *obj, const char *field, int64_t *out, json_t *errors)
{
	json_t *v = json_object_get(obj, field);
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = json_integer_value(v);
		return 1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (*s && isdigit((unsigned char)*s) && !*end && !errno) {
			*out = n;
			return 1;
		}
	}
	cm_errors_add(errors, field, "must be an integer >= 0");
	return -1;
}

/* true/false, also 1/0 and "true"/"false"/"1"/"0". Same returns as get_id. */
static int get_bool(const json_t *obj, const char *field, int *out, json_t *errors)
{
	json_t *v = json_object_get(obj, field);
	if (!v || json_is_null(v))
		return 0;
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return 1;
	}
	if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
		*out = (int)json_integer_value(v);
		return 1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (!strcmp(s, "true") || !strcmp(s, "1")) {
			*out = 1;
			return 1;
		}
		if (!strcmp(s, "false") || !strcmp(s, "0")) {
			*out = 0;
			return 1;
		}
	}
	cm_errors_add(errors, field, "must be a boolean");
	return -1;
}

/* A non-empty code string of at most CODE_MAX_LEN bytes. */
static int get_code(const json_t *obj, const char *field, const char **out, json_t *errors)
{
	json_t *v = json_object_get(obj, field);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		cm_errors_add(errors, field, "must be a non-empty string");
		return -1;
	}
	if (json_string_length(v) > CODE_MAX_LEN) {
		cm_errors_add(errors, field, "must be at most %d bytes (UTF-8)", CODE_MAX_LEN);
		return -1;
	}
	*out = json_string_value(v);
	return 1;
}

static int tag_ok(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == ',')
			return 0;
	return 1;
}

/* Appends one trimmed tag unless empty or already there. Returns -1 on a bad tag (recorded). */
static int push_tag(const char *field, const char *s, size_t n, char ***tags, size_t *nt, long max, json_t *errors)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return 0;
	if (n > TAG_MAX_LEN || !tag_ok(s, n)) {
		cm_errors_add(errors, field, "each tag must be 1-%d bytes (UTF-8) without commas or control characters",
			      TAG_MAX_LEN);
		return -1;
	}
	for (size_t i = 0; i < *nt; i++)
		if (strlen((*tags)[i]) == n && memcmp((*tags)[i], s, n) == 0)
			return 0;
	if ((long)*nt >= max) {
		cm_errors_add(errors, field, "must list at most %ld tags", max);
		return -1;
	}
	char **grown = realloc(*tags, (*nt + 1) * sizeof(char *));
	if (!grown)
		return -1;
	*tags = grown;
	grown[*nt] = strndup(s, n);
	if (!grown[*nt])
		return -1;
	(*nt)++;
	return 0;
}

/* add_tags / remove_tags: "a, b" or ["a", "b"]; split, trimmed, de-duplicated. */
static int get_tags(const json_t *obj, const char *field, char ***tags, size_t *nt, long max, json_t *errors)
{
	json_t *v = json_object_get(obj, field);
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		while (*s) {
			const char *c = strchr(s, ',');
			size_t n = c ? (size_t)(c - s) : strlen(s);
			if (push_tag(field, s, n, tags, nt, max, errors) == -1)
				return -1;
			s += n + (c ? 1 : 0);
		}
		return 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *t;
		json_array_foreach(v, i, t)
		{
			if (!json_is_string(t)) {
				cm_errors_add(errors, field, "must be a comma-separated string or an array of strings");
				return -1;
			}
			if (push_tag(field, json_string_value(t), json_string_length(t), tags, nt, max, errors) == -1)
				return -1;
		}
		return 1;
	}
	cm_errors_add(errors, field, "must be a comma-separated string such as \"a,b\"");
	return -1;
}

const char *const cm_job_request_fields[] = {
	"script_id",
	"script_code",
	"trigger_id",
	"trigger_code",
	"broadcast_id",
	"broadcast_code",
	"lead_id",
	"ticket_id",
	"run_at",
	"run_after_sec",
	"is_periodic",
	"repeat_interval_sec",
	"condition_script_code",
	"script_request_params",
	"add_tags",
	"remove_tags",
};
const size_t cm_job_request_nfields = CM_ARRAY_LEN(cm_job_request_fields);

/* Fields of the envelope beyond those of the request. */
static const char *envelope_fields[] = {"v",	  "type",	 "job_id", "bot_id",
					"due_at", "accepted_at", "source", "request_hash"};

static int known(const char *k, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(k, list[i]) == 0)
			return 1;
	return 0;
}

/*
 * The rules shared by requests and envelopes. due_at (envelopes only) wins over run_at, which wins
 * over run_after_sec.
 */
static int parse_fields(const json_t *body, int64_t bot_id, const struct cm_job_parse_ctx *ctx, int envelope,
			struct cm_job *job, json_t *errors)
{
	const struct cm_job_limits *lim = ctx->limits ? ctx->limits : &cm_job_default_limits;
	size_t nerr0 = json_object_size(errors);

	if (!json_is_object(body)) {
		cm_errors_add(errors, "body", "must be a JSON object");
		return -1;
	}
	job->bot_id = bot_id;

	/* Unknown fields: a typo such as "trigger_cod" must not silently schedule something else. */
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)body, key, val)
	{
		if (known(key, cm_job_request_fields, cm_job_request_nfields))
			continue;
		if (envelope && known(key, envelope_fields, CM_ARRAY_LEN(envelope_fields)))
			continue;
		if (envelope || ctx->unknown == CM_UNKNOWN_IGNORE)
			continue;
		if (ctx->unknown == CM_UNKNOWN_REJECT)
			cm_errors_add(errors, key, "is not a field of this API");
		else if (ctx->warnings)
			cm_errors_add(ctx->warnings, key, "is not a field of this API and was ignored");
	}

	/* The target: at most one kind, and by id or by code, not both. */
	static const struct {
		enum cm_target_kind kind;
		const char *id_field, *code_field;
	} kinds[] = {{CM_TARGET_SCRIPT, "script_id", "script_code"},
		     {CM_TARGET_TRIGGER, "trigger_id", "trigger_code"},
		     {CM_TARGET_BROADCAST, "broadcast_id", "broadcast_code"}};
	int nkinds = 0;
	for (size_t i = 0; i < CM_ARRAY_LEN(kinds); i++) {
		int64_t id = 0;
		const char *code = NULL;
		int hi = get_id(body, kinds[i].id_field, &id, errors);
		int hc = get_code(body, kinds[i].code_field, &code, errors);
		if (hi == 0 && hc == 0)
			continue;
		nkinds++;
		if (hi != 0 && hc != 0) {
			cm_errors_add(errors, kinds[i].code_field, "give %s or %s, not both", kinds[i].id_field,
				      kinds[i].code_field);
			continue;
		}
		if (nkinds > 1)
			continue;
		job->kind = kinds[i].kind;
		if (hi == 1)
			job->target_id = id;
		if (hc == 1 && !(job->target_code = strdup(code)))
			return -1;
	}
	if (nkinds > 1) {
		cm_errors_add(errors, "target", "give at most one of script, trigger or broadcast");
		job->kind = CM_TARGET_NONE;
	}

	get_id(body, "lead_id", &job->lead_id, errors);
	get_id(body, "ticket_id", &job->ticket_id, errors);
	get_tags(body, "add_tags", &job->add_tags, &job->n_add_tags, lim->tags_max, errors);
	get_tags(body, "remove_tags", &job->remove_tags, &job->n_remove_tags, lim->tags_max, errors);

	/* Tags given (even if invalid, which is reported on their own field) make a tags-only job. */
	json_t *at = json_object_get(body, "add_tags"), *rt = json_object_get(body, "remove_tags");
	int tags_given = (at && !json_is_null(at)) || (rt && !json_is_null(rt));
	if (nkinds == 0 && !json_object_get(errors, "target")) {
		if (!tags_given)
			cm_errors_add(errors, "target",
				      "give one of script_id, script_code, trigger_id, trigger_code, broadcast_id, "
				      "broadcast_code (or add_tags/remove_tags with lead_id)");
		else if (!job->lead_id && !json_object_get(errors, "lead_id"))
			cm_errors_add(errors, "lead_id", "is required for a tags-only job");
	}
	if (job->kind == CM_TARGET_SCRIPT && !job->lead_id && !json_object_get(errors, "lead_id"))
		cm_errors_add(errors, "lead_id", "is required to run a script");

	/* When: due_at (envelope) > run_at > run_after_sec > now. */
	int64_t due = ctx->now_us;
	int have_due = 0;
	const char *due_field = "run_after_sec";
	char terr[200];
	if (envelope) {
		json_t *d = json_object_get(body, "due_at");
		if (d && !json_is_null(d)) {
			int64_t t;
			if (!json_is_string(d) || cm_time_parse(json_string_value(d), &t, terr, sizeof(terr)) == -1)
				cm_errors_add(errors, "due_at", "must be an RFC 3339 time");
			else {
				due = t;
				have_due = 1;
				due_field = "due_at";
			}
		}
	}
	json_t *ra = json_object_get(body, "run_at");
	if (!have_due && ra && !json_is_null(ra)) {
		int64_t t;
		if (!json_is_string(ra))
			cm_errors_add(errors, "run_at", "must be a string YYYY-MM-DD hh:mm:ss or RFC 3339");
		else if (cm_time_parse(json_string_value(ra), &t, terr, sizeof(terr)) == -1)
			cm_errors_add(errors, "run_at", "%s", terr);
		else {
			due = t;
			have_due = 1;
			due_field = "run_at";
		}
	}
	int64_t after = 0;
	int ha = get_count(body, "run_after_sec", &after, errors);
	if (ha == 1 && after > lim->horizon_sec) {
		cm_errors_add(errors, "run_after_sec", "must be at most %ld (the scheduling horizon)",
			      lim->horizon_sec);
	} else if (ha == 1 && !have_due) {
		due = ctx->now_us + after * CM_US_PER_SEC;
		have_due = 1;
	}
	if (have_due && due > ctx->now_us + (int64_t)lim->horizon_sec * CM_US_PER_SEC)
		cm_errors_add(errors, due_field, "must be at most %ld days ahead", lim->horizon_sec / 86400);

	get_bool(body, "is_periodic", &job->is_periodic, errors);
	int64_t interval = 0;
	int hi = get_count(body, "repeat_interval_sec", &interval, errors);
	if (job->is_periodic) {
		if (hi == 0 && !json_object_get(errors, "repeat_interval_sec"))
			cm_errors_add(errors, "repeat_interval_sec", "is required when is_periodic is true");
		else if (hi == 1 && interval < lim->min_interval_sec)
			cm_errors_add(errors, "repeat_interval_sec", "must be at least %ld seconds",
				      lim->min_interval_sec);
		else if (hi == 1 && interval > lim->horizon_sec)
			cm_errors_add(errors, "repeat_interval_sec", "must be at most %ld seconds", lim->horizon_sec);
		else
			job->interval_sec = interval;
	}
	/* A one-shot job due in the past is due now; a periodic one keeps its phase ("every day at 09:00"). */
	job->due_us = (!job->is_periodic && due < ctx->now_us) ? ctx->now_us : due;

	json_t *cond = json_object_get(body, "condition_script_code");
	if (cond && !json_is_null(cond)) {
		if (!json_is_string(cond))
			cm_errors_add(errors, "condition_script_code", "must be a string (a JavaScript function body)");
		else if ((long)json_string_length(cond) > lim->condition_max)
			cm_errors_add(errors, "condition_script_code", "must be at most %ld bytes", lim->condition_max);
		else if (json_string_length(cond) > 0) {
			char jerr[512];
			if (ctx->check_condition_compiles &&
			    cm_js_check_body(json_string_value(cond), jerr, sizeof(jerr)) == -1)
				cm_errors_add(errors, "condition_script_code", "does not compile: %s", jerr);
			else if (!(job->condition = strdup(json_string_value(cond))))
				return -1;
		}
	}

	json_t *params = json_object_get(body, "script_request_params");
	if (!params || json_is_null(params)) {
		job->params = json_object();
	} else if (!json_is_object(params)) {
		cm_errors_add(errors, "script_request_params", "must be a JSON object");
	} else {
		size_t sz = json_dumpb(params, NULL, 0, JSON_COMPACT);
		if ((long)sz > lim->params_max)
			cm_errors_add(errors, "script_request_params", "must be at most %ld bytes as JSON",
				      lim->params_max);
		else
			job->params = json_incref(params);
	}
	job->accepted_us = ctx->now_us;
	return json_object_size(errors) > nerr0 ? -1 : 0;
}

int cm_job_from_request(const json_t *body, int64_t bot_id, const struct cm_job_parse_ctx *ctx, struct cm_job *job,
			json_t *errors)
{
	return parse_fields(body, bot_id, ctx, 0, job, errors);
}

static void set_opt_int(json_t *o, const char *k, int64_t v)
{
	if (v)
		json_object_set_new(o, k, json_integer(v));
}

static json_t *tags_json(char **tags, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(tags[i]));
	return a;
}

json_t *cm_job_to_envelope(const struct cm_job *job)
{
	char buf[CM_TIME_BUFSZ];
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "v", json_integer(CM_ENVELOPE_VERSION));
	json_object_set_new(o, "type", json_string("schedule"));
	json_object_set_new(o, "job_id", json_string(job->job_id));
	json_object_set_new(o, "bot_id", json_integer(job->bot_id));
	set_opt_int(o, "lead_id", job->lead_id);
	set_opt_int(o, "ticket_id", job->ticket_id);
	if (job->kind != CM_TARGET_NONE) {
		char field[32];
		const char *kn = cm_target_kind_name(job->kind);
		if (job->target_code) {
			snprintf(field, sizeof(field), "%s_code", kn);
			json_object_set_new(o, field, json_string(job->target_code));
		} else {
			snprintf(field, sizeof(field), "%s_id", kn);
			json_object_set_new(o, field, json_integer(job->target_id));
		}
	}
	json_object_set_new(o, "due_at", json_string(cm_time_format_us(job->due_us, buf)));
	if (job->is_periodic) {
		json_object_set_new(o, "is_periodic", json_true());
		json_object_set_new(o, "repeat_interval_sec", json_integer(job->interval_sec));
	}
	if (job->condition)
		json_object_set_new(o, "condition_script_code", json_string(job->condition));
	json_object_set(o, "script_request_params", job->params ? job->params : json_object());
	/* A tags-only job whose tags were all empty ("add_tags": "") is still one: without the field the
	 * worker would find neither a target nor tags and dead-letter what the producer accepted. */
	if (job->n_add_tags || (job->kind == CM_TARGET_NONE && !job->n_remove_tags))
		json_object_set_new(o, "add_tags", tags_json(job->add_tags, job->n_add_tags));
	if (job->n_remove_tags)
		json_object_set_new(o, "remove_tags", tags_json(job->remove_tags, job->n_remove_tags));
	json_object_set_new(o, "accepted_at", json_string(cm_time_format_us(job->accepted_us, buf)));
	if (job->request_hash)
		json_object_set_new(o, "request_hash", json_string(job->request_hash));
	return o;
}

json_t *cm_cancel_to_envelope(const struct cm_cancel *c)
{
	json_t *o = json_object();
	json_object_set_new(o, "v", json_integer(CM_ENVELOPE_VERSION));
	json_object_set_new(o, "type", json_string(c->job_id[0] ? "cancel" : "cancel_lead"));
	if (c->job_id[0])
		json_object_set_new(o, "job_id", json_string(c->job_id));
	json_object_set_new(o, "bot_id", json_integer(c->bot_id));
	set_opt_int(o, "lead_id", c->lead_id);
	if (c->accepted_us) {
		char buf[CM_TIME_BUFSZ];
		json_object_set_new(o, "accepted_at", json_string(cm_time_format_us(c->accepted_us, buf)));
	}
	return o;
}

int64_t cm_envelope_now_us(int64_t kafka_ts_ms, int64_t now_us)
{
	if (kafka_ts_ms <= 0 || kafka_ts_ms > CM_TIME_MAX_SEC * 1000)
		return now_us;
	return kafka_ts_ms * 1000;
}

int cm_envelope_parse(const char *data, size_t len, int64_t msg_ts_us, const struct cm_job_limits *limits,
		      enum cm_command *cmd, struct cm_job *job, struct cm_cancel *cancel, char *errstr,
		      size_t errstr_size)
{
	json_error_t jerr;
	json_t *env = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	int rc = -1;
	json_t *errors = json_object();
	if (!env) {
		snprintf(errstr, errstr_size, "not JSON: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
		goto out;
	}
	if (!json_is_object(env)) {
		snprintf(errstr, errstr_size, "envelope: must be a JSON object");
		goto out;
	}
	json_t *v = json_object_get(env, "v");
	if (!json_is_integer(v) || json_integer_value(v) != CM_ENVELOPE_VERSION) {
		snprintf(errstr, errstr_size, "v: must be %d (the envelope version)", CM_ENVELOPE_VERSION);
		goto out;
	}
	const char *type = json_string_value(json_object_get(env, "type"));
	const char *job_id = json_string_value(json_object_get(env, "job_id"));
	int64_t bot_id = 0;
	if (!type ||
	    (strcmp(type, "schedule") != 0 && strcmp(type, "cancel") != 0 && strcmp(type, "cancel_lead") != 0)) {
		snprintf(errstr, errstr_size, "type: must be \"schedule\", \"cancel\" or \"cancel_lead\"");
		goto out;
	}
	int lead_cancel = strcmp(type, "cancel_lead") == 0;
	if (!lead_cancel && (!job_id || !cm_uuid_valid(job_id))) {
		snprintf(errstr, errstr_size, "job_id: must be a UUID");
		goto out;
	}
	if (get_id(env, "bot_id", &bot_id, errors) != 1) {
		snprintf(errstr, errstr_size, "bot_id: must be a positive integer");
		goto out;
	}
	if (strcmp(type, "cancel") == 0 || lead_cancel) {
		memset(cancel, 0, sizeof(*cancel));
		if (!lead_cancel)
			snprintf(cancel->job_id, sizeof(cancel->job_id), "%s", job_id);
		cancel->bot_id = bot_id;
		int hl = get_id(env, "lead_id", &cancel->lead_id, errors);
		if (hl == -1 || (lead_cancel && hl == 0)) {
			snprintf(errstr, errstr_size, "lead_id: must be a positive integer");
			goto out;
		}
		const char *acc = json_string_value(json_object_get(env, "accepted_at"));
		char terr[100];
		if (!acc || cm_time_parse(acc, &cancel->accepted_us, terr, sizeof(terr)) == -1)
			cancel->accepted_us = msg_ts_us;
		*cmd = lead_cancel ? CM_CMD_CANCEL_LEAD : CM_CMD_CANCEL;
		rc = 0;
		goto out;
	}
	struct cm_job_parse_ctx ctx = {
		.now_us = msg_ts_us, .limits = limits, .unknown = CM_UNKNOWN_IGNORE, .check_condition_compiles = 1};
	cm_job_init(job);
	if (parse_fields(env, bot_id, &ctx, 1, job, errors) == -1) {
		cm_errors_line(errors, errstr, errstr_size);
		cm_job_clear(job);
		goto out;
	}
	snprintf(job->job_id, sizeof(job->job_id), "%s", job_id);
	const char *acc = json_string_value(json_object_get(env, "accepted_at"));
	char terr[100];
	if (acc && cm_time_parse(acc, &job->accepted_us, terr, sizeof(terr)) == -1)
		job->accepted_us = msg_ts_us;
	const char *rh = json_string_value(json_object_get(env, "request_hash"));
	if (rh && !(job->request_hash = strdup(rh))) {
		cm_job_clear(job);
		goto out;
	}
	*cmd = CM_CMD_SCHEDULE;
	rc = 0;
out:
	json_decref(errors);
	json_decref(env);
	return rc;
}
