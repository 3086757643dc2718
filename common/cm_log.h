/*
 * cm_log.h - one event per line on stderr: JSON by default, text for people.
 *
 * {"ts":"2026-01-21T18:00:00.250Z","level":"info","msg":"…","job_id":"…"}
 * The subject of an event (job id, topic[partition]@offset, bot id) goes in the key/value
 * fields so that it can be searched; the message says what happened. Thread-safe: each line
 * is written with a single write(2).
 */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stddef.h>
#include "cm_compiler.h"

enum cm_log_level { CM_LOG_DEBUG, CM_LOG_INFO, CM_LOG_WARN, CM_LOG_ERROR };
enum cm_log_format { CM_LOG_JSON, CM_LOG_TEXT };

struct cm_kv {
	const char *k;
	const char *v; /* NULL values are left out */
};

/* Set once at start-up, before threads start. name is the binary ("worker"), borrowed. */
void cm_log_setup(const char *name, enum cm_log_format fmt, enum cm_log_level min_level);
/* What cm_log_setup set (a sandbox child is started with the same). */
enum cm_log_format cm_log_get_format(void);
enum cm_log_level cm_log_get_level(void);
/* "json"/"text" and "debug"/"info"/"warn"/"error"; -1 when unknown. */
int cm_log_format_parse(const char *s);
int cm_log_level_parse(const char *s);

void cm_log_kv(enum cm_log_level level, const struct cm_kv *kv, size_t nkv, const char *fmt, ...) CM_PRINTF(4, 5);

#define cm_log_debug(...) cm_log_kv(CM_LOG_DEBUG, NULL, 0, __VA_ARGS__)
#define cm_log_info(...) cm_log_kv(CM_LOG_INFO, NULL, 0, __VA_ARGS__)
#define cm_log_warn(...) cm_log_kv(CM_LOG_WARN, NULL, 0, __VA_ARGS__)
#define cm_log_error(...) cm_log_kv(CM_LOG_ERROR, NULL, 0, __VA_ARGS__)
/* cm_log_with(CM_LOG_WARN, "job_id", id, "bad: %s", err) - one subject field. */
#define cm_log_with(level, key, val, ...) cm_log_kv((level), (const struct cm_kv[]){{(key), (val)}}, 1, __VA_ARGS__)

#endif
