/*
 * ctl_leadfile.h - reading leads to import from JSON lines or CSV, one record at a time, with the
 * line number of every bad one. No database here (ctl_lead.c imports), so all of it is unit-tested.
 *
 * JSON lines: one object per line, blank lines ignored:
 *   {"id": 135, "name": "Ann", "channel": "telegram", "attributes": {"city": "Oslo"}, "tags": ["vip"], "muted": false}
 *   id is required (a positive integer, or a string of digits); the rest is optional. Unknown fields
 *   are an error (a typo would otherwise lose data silently). tags may also be a string "a,b".
 * CSV (RFC 4180: commas, "quoted" fields with "" for a quote, line breaks inside quotes, CRLF or LF,
 *   an optional UTF-8 byte order mark): a header row naming the columns: id (required), name, channel,
 *   tags ("a|b"), muted (true/false/1/0/yes/no); every other column is an attribute of that name. An
 *   empty cell means "not given".
 *
 * "Not given" (NULL name/channel, muted -1) lets an import leave an existing lead's value alone. Tags:
 * 1-100 characters, no commas, no control characters; repeated tags of one lead are kept once.
 */
#ifndef CTL_LEADFILE_H
#define CTL_LEADFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "cm_buf.h"
#include "cm_compiler.h"

enum ctl_leadfile_format { CTL_LEADS_AUTO, CTL_LEADS_JSONL, CTL_LEADS_CSV };

struct ctl_lead {
	int64_t id;
	char *name;	    /* NULL = not given */
	char *channel;	    /* NULL = not given */
	json_t *attributes; /* an object (possibly empty) */
	json_t *tags;	    /* an array of distinct strings (possibly empty) */
	int muted;	    /* 1, 0, or -1 = not given */
};
void ctl_lead_clear(struct ctl_lead *l); /* frees what it owns and zeroes it; NULL-safe */

struct ctl_leadfile;

/*
 * Starts reading f (borrowed: the caller closes it, after ctl_leadfile_close). CTL_LEADS_AUTO: JSON
 * lines when the first character that is not white space is '{' (or '['), CSV otherwise. A CSV header is read
 * here: a bad one returns NULL with errstr.
 */
struct ctl_leadfile *ctl_leadfile_open(FILE *f, enum ctl_leadfile_format format, char *errstr,
				       size_t errstr_size) CM_MUSTCHECK;
void ctl_leadfile_close(struct ctl_leadfile *lf); /* NULL-safe; does not close the FILE */

enum ctl_leadfile_format ctl_leadfile_format(const struct ctl_leadfile *lf);
/* Bytes read so far (for a progress bar). */
long long ctl_leadfile_offset(const struct ctl_leadfile *lf);

/*
 * The next record. Returns 1 with out filled (the caller clears it), 0 at the end, or -1 for a bad
 * record, with errstr saying why; reading goes on after it at the next call. *line gets the line the
 * record starts on (1-based) in every case but the end. -2: the file could not be read (errstr).
 */
int ctl_leadfile_next(struct ctl_leadfile *lf, struct ctl_lead *out, long *line, char *errstr,
		      size_t errstr_size) CM_MUSTCHECK;

/*
 * Appends the lead as one row of PostgreSQL's COPY text format with the columns
 * (line, id, name, channel, attributes jsonb, tags jsonb, muted). Returns 0, or -1 when out of memory.
 */
int ctl_lead_copy_row(const struct ctl_lead *l, long line, struct cm_buf *out) CM_MUSTCHECK;

#endif
