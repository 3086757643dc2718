/*
 * fuzz_request.c - libFuzzer target: the schedule request validator (cm_job_from_request), fed the
 * bytes of an HTTP body exactly as the producer's schedule route reads them (json_loadb with
 * JSON_REJECT_DUPLICATES, then the rules of SPEC §1 with the producer's default settings).
 *
 * Beyond "no crash, no leak, no undefined behaviour" it checks what the API promises:
 *   - a rejected body names at least one field, and only fields of the request (or "target"), each
 *     with at least one rule as a string; an unknown field is a warning, never an error;
 *   - an accepted body gives a job inside the limits (due within the horizon, interval within its
 *     bounds, params an object), and its Kafka envelope is accepted by the worker's parser
 *     (cm_envelope_parse) with the same job: what the producer answers 202 the worker never
 *     dead-letters.
 * Seeds: tests/fuzz/corpus/request/ (from tests/contract/requests/ and tests/unit/test_job.c).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_job.h"
#include "cm_time.h"

#define NOW INT64_C(1800000000000000) /* 2027-01-15T08:00:00Z: fixed, so a finding replays */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A field of the request (cm_job.c), or "target": the rule about which of them names the job's target. */
static int is_field(const char *k)
{
	for (size_t i = 0; i < cm_job_request_nfields; i++)
		if (strcmp(k, cm_job_request_fields[i]) == 0)
			return 1;
	return strcmp(k, "target") == 0;
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_tags(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

static void check_rejected(const json_t *body, const json_t *errors, const json_t *warnings)
{
	const char *k;
	json_t *v;
	if (json_object_size(errors) == 0)
		abort(); /* a 422 that names no field */
	json_object_foreach((json_t *)errors, k, v)
	{
		if (!is_field(k)) {
			fprintf(stderr, "error names '%s', not a field of the request\n", k);
			abort();
		}
		if (!json_is_array(v) || json_array_size(v) == 0 || !json_is_string(json_array_get(v, 0)))
			abort();
	}
	json_object_foreach((json_t *)warnings, k, v)
	{
		/* a warning is for an unknown field of the body ("target" is one: it only names errors) */
		if ((is_field(k) && strcmp(k, "target") != 0) || !json_object_get(body, k))
			abort();
	}
	char line[2048];
	cm_errors_line(errors, line, sizeof(line));
	if (!line[0])
		abort();
}

static void check_accepted(const struct cm_job *job)
{
	const struct cm_job_limits *lim = &cm_job_default_limits;
	if (!json_is_object(job->params))
		abort();
	if (job->due_us > NOW + lim->horizon_sec * CM_US_PER_SEC)
		abort();
	if (!job->is_periodic && job->due_us < NOW)
		abort(); /* a one-shot job due in the past is due now */
	if (job->is_periodic && (job->interval_sec < lim->min_interval_sec || job->interval_sec > lim->horizon_sec))
		abort();
	if (job->kind != CM_TARGET_NONE && !job->target_code && job->target_id < 1)
		abort();
	if (job->kind == CM_TARGET_NONE && !job->n_add_tags && !job->n_remove_tags && !job->lead_id)
		abort();

	/* The worker must accept the envelope the producer would publish, and read the same job back. */
	struct cm_job copy = *job;
	snprintf(copy.job_id, sizeof(copy.job_id), "019ab5c4-6f10-7a3e-9c1d-2b3f4a5e6d70");
	json_t *env = cm_job_to_envelope(&copy);
	char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	if (!text)
		abort();
	enum cm_command cmd = 0;
	struct cm_job back;
	struct cm_cancel cancel;
	char err[1024];
	cm_job_init(&back);
	if (cm_envelope_parse(text, strlen(text), NOW, lim, &cmd, &back, &cancel, err, sizeof(err)) != 0) {
		fprintf(stderr, "the worker refuses the producer's envelope: %s\n%s\n", err, text);
		abort();
	}
	if (cmd != CM_CMD_SCHEDULE || back.bot_id != job->bot_id || back.lead_id != job->lead_id ||
	    back.ticket_id != job->ticket_id || back.kind != job->kind || back.target_id != job->target_id ||
	    !same_str(back.target_code, job->target_code) || back.due_us != job->due_us ||
	    back.is_periodic != job->is_periodic || back.interval_sec != job->interval_sec ||
	    !same_str(back.condition, job->condition) || !json_equal(back.params, job->params) ||
	    !same_tags(back.add_tags, back.n_add_tags, job->add_tags, job->n_add_tags) ||
	    !same_tags(back.remove_tags, back.n_remove_tags, job->remove_tags, job->n_remove_tags)) {
		fprintf(stderr, "the envelope changed the job:\n%s\n", text);
		abort();
	}
	cm_job_clear(&back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		return 0; /* 400: bad JSON, or not an object */
	}
	json_t *errors = json_object(), *warnings = json_object();
	struct cm_job job;
	cm_job_init(&job);
	struct cm_job_parse_ctx pc = {.now_us = NOW,
				      .limits = &cm_job_default_limits,
				      .unknown = CM_UNKNOWN_WARN,
				      .warnings = warnings,
				      .check_condition_compiles = 1};
	int rc = cm_job_from_request(body, 42, &pc, &job, errors);
	if (rc == -1)
		check_rejected(body, errors, warnings);
	else if (json_object_size(errors) != 0)
		abort(); /* accepted with errors */
	else
		check_accepted(&job);
	cm_job_clear(&job);
	json_decref(errors);
	json_decref(warnings);
	json_decref(body);
	return 0;
}
