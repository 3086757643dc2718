/*
 * cm_job.h - the schedule request and the Kafka job envelope: parse, validate, serialize.
 *
 * One set of rules (SPEC §1) serves the producer (HTTP body) and the worker (messages on
 * botjobs.jobs, which other services may publish directly), so both reject the same things
 * with the same words. Errors are collected, not returned at the first: every bad field is
 * named in `errors`, a jansson object {"field": ["rule", ...]}.
 *
 * Ownership: struct cm_job owns its strings, tag arrays and params (cm_job_clear frees them).
 */
#ifndef CM_JOB_H
#define CM_JOB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "cm_compiler.h"
#include "cm_id.h"

#define CM_ENVELOPE_VERSION 1

enum cm_target_kind { CM_TARGET_NONE = 0, CM_TARGET_SCRIPT, CM_TARGET_TRIGGER, CM_TARGET_BROADCAST };

struct cm_job_limits {
	long params_max;       /* bytes of script_request_params as compact JSON (64 KiB) */
	long condition_max;    /* bytes of condition_script_code (64 KiB) */
	long horizon_sec;      /* how far ahead a job may be due (366 days) */
	long min_interval_sec; /* floor of repeat_interval_sec (10) */
	long tags_max;	       /* tags per list (100) */
};
extern const struct cm_job_limits cm_job_default_limits;

/* The fields of a schedule request (SPEC §1), in the documented order; cm_job_request_nfields of them. */
extern const char *const cm_job_request_fields[];
extern const size_t cm_job_request_nfields;

struct cm_job {
	char job_id[CM_UUID_STRLEN + 1];
	int64_t bot_id;
	int64_t lead_id;   /* 0 = none */
	int64_t ticket_id; /* 0 = none */
	enum cm_target_kind kind;
	int64_t target_id; /* 0 when the target is named by code */
	char *target_code; /* NULL when named by id */
	int64_t due_us;	   /* when it is due (µs since the epoch, UTC) */
	int is_periodic;
	int64_t interval_sec; /* 0 unless periodic */
	char *condition;      /* condition_script_code, NULL = none */
	json_t *params;	      /* script_request_params, an object, never NULL after a successful parse */
	char **add_tags;
	size_t n_add_tags;
	char **remove_tags;
	size_t n_remove_tags;
	int64_t accepted_us; /* when the producer accepted it */
	char *request_hash;  /* hex SHA-256 of the request body when an Idempotency-Key was given, else NULL */
};

enum cm_unknown_fields { CM_UNKNOWN_REJECT, CM_UNKNOWN_WARN, CM_UNKNOWN_IGNORE };

struct cm_job_parse_ctx {
	int64_t now_us; /* "now" for run_after_sec and the horizon */
	const struct cm_job_limits *limits;
	enum cm_unknown_fields unknown; /* what to do with fields the API does not know */
	json_t *warnings;		/* with CM_UNKNOWN_WARN: unknown fields are added here (may be NULL) */
	int check_condition_compiles;	/* compile condition_script_code with MuJS */
};

/* Zeroes job. */
void cm_job_init(struct cm_job *job);
/* Frees what job owns and zeroes it. NULL-safe. */
void cm_job_clear(struct cm_job *job);

/*
 * Validates a schedule request body (SPEC §1) for bot_id and fills job (job_id is left empty).
 * Returns 0, or -1 with every problem added to errors ({"field": ["rule"]}; borrowed, must be an object).
 */
int cm_job_from_request(const json_t *body, int64_t bot_id, const struct cm_job_parse_ctx *ctx, struct cm_job *job,
			json_t *errors) CM_MUSTCHECK;

/* The envelope for botjobs.jobs. Returns a new reference, NULL on out of memory. */
json_t *cm_job_to_envelope(const struct cm_job *job);

/* schedule a job; cancel one job; cancel every pending job of a lead (keyed like the lead's jobs, so
 * it comes after every schedule of that lead published before it). */
enum cm_command { CM_CMD_SCHEDULE = 1, CM_CMD_CANCEL = 2, CM_CMD_CANCEL_LEAD = 3 };

struct cm_cancel {
	char job_id[CM_UUID_STRLEN + 1]; /* empty for CM_CMD_CANCEL_LEAD */
	int64_t bot_id;
	int64_t lead_id;     /* 0 = not given (required for CM_CMD_CANCEL_LEAD) */
	int64_t accepted_us; /* cancel_lead: only jobs accepted at or before this are cancelled */
};

/*
 * Validates one message of botjobs.jobs. msg_ts_us (the Kafka timestamp) is "now" for a message
 * that carries run_after_sec instead of due_at. A schedule fills job (and *cmd = CM_CMD_SCHEDULE),
 * a cancel or cancel_lead fills cancel. Returns 0, or -1 with a one-line reason in errstr (for the dead-letter).
 */
int cm_envelope_parse(const char *data, size_t len, int64_t msg_ts_us, const struct cm_job_limits *limits,
		      enum cm_command *cmd, struct cm_job *job, struct cm_cancel *cancel, char *errstr,
		      size_t errstr_size) CM_MUSTCHECK;

/*
 * The "now" of a message for cm_envelope_parse: its Kafka timestamp (milliseconds) in µs, or now_us
 * when it has none (0 or less) or one past 9999-12-31 (publishers choose it; ts * 1000 could overflow).
 */
int64_t cm_envelope_now_us(int64_t kafka_ts_ms, int64_t now_us);

/* A cancel envelope, or a cancel_lead one when c->job_id is empty. */
json_t *cm_cancel_to_envelope(const struct cm_cancel *c);

/* Kafka key "{botId}:{leadId}" or "{botId}:-". out: at least 48 bytes. */
void cm_job_key(int64_t bot_id, int64_t lead_id, char *out, size_t out_size);

const char *cm_target_kind_name(enum cm_target_kind k);	 /* "script", "trigger", "broadcast", "none" */
enum cm_target_kind cm_target_kind_parse(const char *s); /* CM_TARGET_NONE when unknown */

/* Adds rule to errors[field] (an array). printf-like. */
void cm_errors_add(json_t *errors, const char *field, const char *fmt, ...) CM_PRINTF(3, 4);
/* Flattens errors into one line "field: rule; field: rule". */
void cm_errors_line(const json_t *errors, char *out, size_t out_size);

#endif
