/*
 * fuzz_envelope.c - libFuzzer target: the Kafka envelope parser the worker's consumer runs on every
 * message of botjobs.jobs (cm_envelope_parse), which any service may publish to.
 *
 * Input: the message's Kafka timestamp in milliseconds as a decimal line, then the message value:
 *   "1764078276410\n{\"v\":1,\"type\":\"schedule\",...}"
 * (no newline: the whole input is the value and the timestamp is a fixed one). The timestamp is turned
 * into the parser's "now" as the consumer does (worker/wk_consumer.c), since a publisher chooses it too.
 *
 * Checks beyond "no crash, no leak, no undefined behaviour":
 *   - a refused message has a reason (it goes to the dead-letter topic with it);
 *   - an accepted schedule or cancel, serialized again (cm_job_to_envelope / cm_cancel_to_envelope),
 *     parses to the same command: what the worker stores is what the message said.
 * Seeds: tests/fuzz/corpus/envelope/ (from tests/contract/envelopes/ and tests/unit/test_job.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_job.h"
#include "cm_time.h"

#define NOW_MS INT64_C(1800000000000) /* 2027-01-15T08:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_job(const struct cm_job *a, const struct cm_job *b)
{
	if (strcmp(a->job_id, b->job_id) != 0 || a->bot_id != b->bot_id || a->lead_id != b->lead_id ||
	    a->ticket_id != b->ticket_id || a->kind != b->kind || a->target_id != b->target_id ||
	    !same_str(a->target_code, b->target_code) || a->due_us != b->due_us || a->is_periodic != b->is_periodic ||
	    a->interval_sec != b->interval_sec || !same_str(a->condition, b->condition) ||
	    !json_equal(a->params, b->params) || a->n_add_tags != b->n_add_tags ||
	    a->n_remove_tags != b->n_remove_tags || a->accepted_us != b->accepted_us ||
	    !same_str(a->request_hash, b->request_hash))
		return 0;
	for (size_t i = 0; i < a->n_add_tags; i++)
		if (strcmp(a->add_tags[i], b->add_tags[i]) != 0)
			return 0;
	for (size_t i = 0; i < a->n_remove_tags; i++)
		if (strcmp(a->remove_tags[i], b->remove_tags[i]) != 0)
			return 0;
	return 1;
}

static void reparse(json_t *env, int64_t ts_us, enum cm_command want_cmd, const struct cm_job *job,
		    const struct cm_cancel *cancel)
{
	char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	json_decref(env);
	if (!text)
		abort();
	enum cm_command cmd = 0;
	struct cm_job j2;
	struct cm_cancel c2;
	char err[1024];
	cm_job_init(&j2);
	if (cm_envelope_parse(text, strlen(text), ts_us, &cm_job_default_limits, &cmd, &j2, &c2, err, sizeof(err))) {
		fprintf(stderr, "our own envelope is refused: %s\n%s\n", err, text);
		abort();
	}
	if (cmd != want_cmd)
		abort();
	if (cmd == CM_CMD_SCHEDULE && !same_job(job, &j2)) {
		fprintf(stderr, "the envelope changed the job:\n%s\n", text);
		abort();
	}
	if (cmd != CM_CMD_SCHEDULE && (strcmp(cancel->job_id, c2.job_id) != 0 || cancel->bot_id != c2.bot_id ||
				       cancel->lead_id != c2.lead_id || cancel->accepted_us != c2.accepted_us)) {
		fprintf(stderr, "the envelope changed the cancel:\n%s\n", text);
		abort();
	}
	cm_job_clear(&j2);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *nl = memchr(p, '\n', size);
	int64_t ts = NOW_MS;
	if (nl) {
		char num[32];
		size_t n = (size_t)(nl - p);
		snprintf(num, sizeof(num), "%.*s", (int)(n < sizeof(num) ? n : sizeof(num) - 1), p);
		ts = strtoll(num, NULL, 10);
		size -= n + 1;
		p = nl + 1;
	}
	int64_t ts_us = cm_envelope_now_us(ts, NOW_MS * 1000); /* as the consumer does */

	enum cm_command cmd = 0;
	struct cm_job job;
	struct cm_cancel cancel;
	char err[1024] = "";
	cm_job_init(&job);
	if (cm_envelope_parse(p, size, ts_us, &cm_job_default_limits, &cmd, &job, &cancel, err, sizeof(err)) == -1) {
		if (!err[0])
			abort(); /* a dead-letter without a reason */
		return 0;
	}
	char key[48];
	if (cmd == CM_CMD_SCHEDULE) {
		cm_job_key(job.bot_id, job.lead_id, key, sizeof(key));
		reparse(cm_job_to_envelope(&job), ts_us, cmd, &job, NULL);
	} else if (cmd == CM_CMD_CANCEL || cmd == CM_CMD_CANCEL_LEAD) {
		cm_job_key(cancel.bot_id, cancel.lead_id, key, sizeof(key));
		reparse(cm_cancel_to_envelope(&cancel), ts_us, cmd, NULL, &cancel);
	} else {
		abort();
	}
	cm_job_clear(&job);
	return 0;
}
