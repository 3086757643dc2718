/*
 * ctl_lead.c - `botjobsctl lead import BOT FILE`, `lead show BOT LEAD`, `lead list BOT`.
 *
 * import: the file (JSON lines or CSV, see ctl_leadfile.h; "-" = stdin) is read record by record and
 * every good record streamed with COPY into a temporary table; one INSERT … ON CONFLICT then upserts
 * them all by (bot, id), in the same transaction. A bad record is reported with its line number and
 * left out; the others still land, and the exit status is 1. An import only adds: attributes are
 * merged (the file's keys win), tags are added to the lead's, name/channel/muted change only when the
 * file gives them. When an id comes twice, the later line wins.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_pg.h"
#include "cm_time.h"
#include "ctl.h"
#include "ctl_leadfile.h"

#define COPY_CHUNK (256 * 1024) /* bytes sent to COPY at a time */
#define BAD_JSON_MAX 1000	/* bad lines listed in --json output (all are printed on stderr) */

struct progress {
	int tty;
	long long size; /* of the file, 0 = unknown (a pipe) */
	int64_t started_us, last_us;
	int drawn; /* a bar is on the terminal's last line */
};

static void progress_clear(struct progress *pg)
{
	if (pg->tty && pg->drawn) {
		fputs("\r\033[K", stderr);
		pg->drawn = 0;
	}
}

static void progress_show(struct progress *pg, long long off, long lines, long bad, int force)
{
	int64_t now = cm_time_mono_us();
	/* a terminal gets a bar redrawn ten times a second; a log gets a line every two seconds */
	if (!(force && pg->tty) && now - pg->last_us < (pg->tty ? 100000 : 2000000))
		return;
	pg->last_us = now;
	double secs = (double)(now - pg->started_us) / 1e6;
	int pct = pg->size > 0 ? (int)(off * 100 / pg->size) : -1;
	if (pct > 100)
		pct = 100;
	if (pg->tty) {
		char bar[31];
		int fill = pct < 0 ? 0 : pct * 30 / 100;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '-';
		bar[30] = '\0';
		if (pct >= 0)
			fprintf(stderr, "\r\033[Klead import: [%s] %3d%%  %ld lines, %ld bad, %.1f s", bar, pct, lines,
				bad, secs);
		else
			fprintf(stderr, "\r\033[Klead import: %ld lines, %ld bad, %.1f s", lines, bad, secs);
		pg->drawn = 1;
	} else if (pct >= 0) {
		fprintf(stderr, "lead import: %ld lines read (%d%%), %ld bad, %.1f s\n", lines, pct, bad, secs);
	} else {
		fprintf(stderr, "lead import: %ld lines read, %ld bad, %.1f s\n", lines, bad, secs);
	}
	fflush(stderr);
}

struct import {
	const struct ctl_cfg *cfg;
	const char *file;
	char bot[24];
	PGconn *c;
	FILE *f;
	struct ctl_leadfile *lf;
	struct cm_buf copy;
	struct progress pg;
	long records, good, bad, inserted, updated, repeated;
	json_t *bad_lines; /* [{"line":N,"error":"…"}] */
	char err[1024];
};

static int copy_flush(struct import *im)
{
	if (im->copy.len == 0)
		return 0;
	if (PQputCopyData(im->c, im->copy.p, (int)im->copy.len) != 1) {
		snprintf(im->err, sizeof(im->err), "COPY: %s", PQerrorMessage(im->c));
		return -1;
	}
	im->copy.len = 0;
	return 0;
}

/* Reads the whole file into the COPY. Returns 0, or -1 with im->err (the file or the connection failed). */
static int stream(struct import *im)
{
	struct ctl_lead lead;
	char why[600];
	long line = 0;
	for (;;) {
		int rc = ctl_leadfile_next(im->lf, &lead, &line, why, sizeof(why));
		if (rc == 0)
			break;
		if (rc == -2) {
			snprintf(im->err, sizeof(im->err), "%s: %s", im->file, why);
			return -1;
		}
		im->records++;
		if (rc == -1) {
			im->bad++;
			progress_clear(&im->pg);
			fprintf(stderr, "%s:%ld: %s\n", im->file, line, why);
			if (json_array_size(im->bad_lines) < BAD_JSON_MAX)
				json_array_append_new(im->bad_lines,
						      json_pack("{sI ss}", "line", (json_int_t)line, "error", why));
		} else {
			im->good++;
			int bad = ctl_lead_copy_row(&lead, line, &im->copy);
			ctl_lead_clear(&lead);
			if (bad) {
				snprintf(im->err, sizeof(im->err), "out of memory");
				return -1;
			}
			if (im->copy.len >= COPY_CHUNK && copy_flush(im) == -1)
				return -1;
		}
		if ((im->records & 1023) == 0)
			progress_show(&im->pg, ctl_leadfile_offset(im->lf), line, im->bad, 0);
	}
	return copy_flush(im);
}

static const char UPSERT_SQL[] =
	"WITH src AS ("
	"  SELECT DISTINCT ON (t.id) t.* FROM lead_import t ORDER BY t.id, t.line DESC"
	"), up AS ("
	"  INSERT INTO leads AS l (bot_id, id, name, channel, attributes, tags, muted)"
	"  SELECT $1, s.id, s.name, coalesce(s.channel, e.channel, 'api'), s.attributes,"
	"         ARRAY(SELECT jsonb_array_elements_text(s.tags)), coalesce(s.muted, e.muted, false)"
	"    FROM src s LEFT JOIN leads e ON e.bot_id = $1 AND e.id = s.id"
	"  ON CONFLICT (bot_id, id) DO UPDATE SET"
	"    name = coalesce(EXCLUDED.name, l.name),"
	"    channel = EXCLUDED.channel,"
	"    attributes = l.attributes || EXCLUDED.attributes,"
	"    tags = l.tags || ARRAY(SELECT x FROM unnest(EXCLUDED.tags) x WHERE x <> ALL (l.tags)),"
	"    muted = EXCLUDED.muted,"
	"    updated_at = now()"
	"  RETURNING (xmax = 0) AS inserted"
	")"
	" SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),"
	"        (SELECT count(*) - count(DISTINCT id) FROM lead_import)"
	" FROM up";

static int import_db(struct import *im)
{
	char err[800];
	const char *p[] = {im->bot};
	PGresult *r = cm_pg_query(im->c, "SELECT 1 FROM bots WHERE id = $1", 1, p, err, sizeof(err));
	if (!r)
		goto fail;
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found) {
		snprintf(im->err, sizeof(im->err), "there is no bot %s", im->bot);
		return -1;
	}
	if (cm_pg_exec(im->c, "BEGIN", err, sizeof(err)) == -1 ||
	    cm_pg_exec(im->c,
		       "CREATE TEMP TABLE lead_import (line bigint, id bigint, name text, channel text,"
		       " attributes jsonb, tags jsonb, muted boolean) ON COMMIT DROP",
		       err, sizeof(err)) == -1)
		goto fail;
	r = PQexec(im->c, "COPY lead_import FROM STDIN");
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		snprintf(err, sizeof(err), "COPY: %s", PQresultErrorMessage(r));
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	if (stream(im) == -1) {
		PQputCopyEnd(im->c, "the import stopped");
		while ((r = PQgetResult(im->c)))
			PQclear(r);
		return -1;
	}
	progress_show(&im->pg, ctl_leadfile_offset(im->lf), im->records, im->bad, 1);
	if (PQputCopyEnd(im->c, NULL) != 1) {
		snprintf(err, sizeof(err), "COPY: %s", PQerrorMessage(im->c));
		goto fail;
	}
	int ok = 1;
	while ((r = PQgetResult(im->c))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, sizeof(err), "COPY: %s", PQresultErrorMessage(r));
			ok = 0;
		}
		PQclear(r);
	}
	if (!ok)
		goto fail;
	/* the upsert is one statement: say that it runs (a log gets the line only for big files) */
	progress_clear(&im->pg);
	if (im->pg.tty || im->records >= 10000)
		fprintf(stderr, "lead import: %ld lines read in %.1f s, %ld bad; writing %ld leads…%s", im->records,
			(double)(cm_time_mono_us() - im->pg.started_us) / 1e6, im->bad, im->good,
			im->pg.tty ? "" : "\n");
	im->pg.drawn = im->pg.tty;
	r = cm_pg_query(im->c, UPSERT_SQL, 1, p, err, sizeof(err));
	if (!r)
		goto fail;
	im->inserted = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	im->updated = strtol(PQgetvalue(r, 0, 1), NULL, 10);
	im->repeated = strtol(PQgetvalue(r, 0, 2), NULL, 10);
	PQclear(r);
	if (cm_pg_exec(im->c, "COMMIT", err, sizeof(err)) == -1)
		goto fail;
	progress_clear(&im->pg);
	return 0;
fail:
	snprintf(im->err, sizeof(im->err), "%s", err);
	return -1;
}

int ctl_lead_import(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	struct import im = {.cfg = cfg, .file = argv[1]};
	int64_t bot;
	char err[600];
	int rc = 1;
	if (ctl_parse_id(argv[0], &bot) == -1) {
		fprintf(stderr, "botjobsctl: lead import: the bot id must be a positive integer, not '%s'\n", argv[0]);
		return 2;
	}
	snprintf(im.bot, sizeof(im.bot), "%" PRId64, bot);
	im.f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
	if (!im.f) {
		fprintf(stderr, "botjobsctl: lead import: %s: cannot be read\n", argv[1]);
		return 1;
	}
	struct stat st;
	im.pg.tty = isatty(STDERR_FILENO);
	im.pg.size = fstat(fileno(im.f), &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : 0;
	im.pg.started_us = im.pg.last_us = cm_time_mono_us();
	im.bad_lines = json_array();
	if (!(im.lf = ctl_leadfile_open(im.f, CTL_LEADS_AUTO, err, sizeof(err)))) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		goto out;
	}
	if (!(im.c = ctl_connect(cfg)))
		goto out;
	if (import_db(&im) == -1) {
		progress_clear(&im.pg);
		fprintf(stderr, "botjobsctl: lead import: %s; nothing was imported\n", im.err);
		cm_pg_exec_quiet(im.c, "ROLLBACK");
		goto out;
	}
	double secs = (double)(cm_time_mono_us() - im.pg.started_us) / 1e6;
	const char *format = ctl_leadfile_format(im.lf) == CTL_LEADS_CSV ? "csv" : "jsonl";
	if (cfg->json) {
		json_t *o =
			json_pack("{sI ss ss sI sI sI sI sI sI so sf}", "bot_id", (json_int_t)bot, "file", argv[1],
				  "format", format, "records", (json_int_t)im.records, "imported",
				  (json_int_t)im.inserted + (json_int_t)im.updated, "inserted", (json_int_t)im.inserted,
				  "updated", (json_int_t)im.updated, "repeated_ids", (json_int_t)im.repeated, "bad",
				  (json_int_t)im.bad, "bad_lines", json_incref(im.bad_lines), "seconds", secs);
		ctl_json_print(o);
		json_decref(o);
	} else {
		printf("lead import: %ld lead(s) into bot %s (%ld new, %ld updated) from %ld record(s) of %s (%s) in "
		       "%.2f s",
		       im.inserted + im.updated, im.bot, im.inserted, im.updated, im.records, argv[1], format, secs);
		if (im.repeated)
			printf("; %ld repeated id(s): the later line won", im.repeated);
		if (im.bad)
			printf("; %ld bad line(s) left out (listed above)", im.bad);
		putchar('\n');
	}
	rc = im.bad ? 1 : 0;
out:
	ctl_leadfile_close(im.lf);
	if (im.f && im.f != stdin)
		fclose(im.f);
	cm_pg_close(im.c);
	cm_buf_free(&im.copy);
	json_decref(im.bad_lines);
	return rc;
}

#define LEAD_JSON                                                                                 \
	"json_build_object('bot_id', l.bot_id, 'id', l.id, 'name', l.name, 'channel', l.channel," \
	" 'status_id', l.status_id, 'status', s.name, 'muted', l.muted, 'tags', l.tags,"          \
	" 'attributes', l.attributes, 'created_at', botjobs_ts(l.created_at), 'updated_at', botjobs_ts(l.updated_at)"

int ctl_lead_show(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	int64_t bot, lead;
	if (ctl_parse_id(argv[0], &bot) == -1 || ctl_parse_id(argv[1], &lead) == -1) {
		fprintf(stderr, "botjobsctl: lead show: BOT and LEAD are positive integers\n");
		return 2;
	}
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[0], argv[1]};
	json_t *o = ctl_query_json(
		c,
		"SELECT " LEAD_JSON ", 'pending_jobs', (SELECT count(*) FROM jobs j"
		"  WHERE j.bot_id = l.bot_id AND j.lead_id = l.id AND j.state IN ('scheduled', 'running')))"
		" FROM leads l LEFT JOIN lead_statuses s ON s.bot_id = l.bot_id AND s.id = l.status_id"
		" WHERE l.bot_id = $1::bigint AND l.id = $2::bigint",
		2, p, "lead show");
	cm_pg_close(c);
	int rc = 1;
	if (!o)
		return 1;
	if (json_is_null(o)) {
		fprintf(stderr, "botjobsctl: lead show: bot %s has no lead %s\n", argv[0], argv[1]);
	} else if (cfg->json) {
		ctl_json_print(o);
		rc = 0;
	} else {
		static const char *const skip[] = {"attributes", NULL};
		ctl_show_print(o, skip);
		json_t *attrs = json_object_get(o, "attributes");
		printf("attributes%s\n", json_object_size(attrs) ? ":" : "  (none)");
		const char *k;
		json_t *v;
		json_object_foreach(attrs, k, v)
		{
			char *t = ctl_value_text(v);
			printf("  %s = %s\n", k, t ? t : "");
			free(t);
		}
		rc = 0;
	}
	json_decref(o);
	return rc;
}

int ctl_lead_list(const struct ctl_cfg *cfg, int argc, char **argv)
{
	(void)argc;
	static const struct ctl_col cols[] = {
		{"id", "ID", 0},       {"name", "NAME", 30}, {"channel", "CHANNEL", 16},  {"status", "STATUS", 16},
		{"muted", "MUTED", 0}, {"tags", "TAGS", 40}, {"updated_at", "UPDATED", 0}};
	int64_t bot;
	if (ctl_parse_id(argv[0], &bot) == -1) {
		fprintf(stderr, "botjobsctl: lead list: the bot id must be a positive integer, not '%s'\n", argv[0]);
		return 2;
	}
	char limit[24];
	snprintf(limit, sizeof(limit), "%ld", cfg->limit);
	PGconn *c = ctl_connect(cfg);
	if (!c)
		return 1;
	const char *p[] = {argv[0], cfg->tag && *cfg->tag ? cfg->tag : NULL, limit};
	json_t *rows = ctl_query_json(
		c,
		"SELECT coalesce(json_agg(x.o ORDER BY x.id), '[]') FROM (SELECT l.id, " LEAD_JSON ") AS o"
		" FROM leads l LEFT JOIN lead_statuses s ON s.bot_id = l.bot_id AND s.id = l.status_id"
		" WHERE l.bot_id = $1::bigint AND ($2::text IS NULL OR $2 = ANY (l.tags))"
		" ORDER BY l.id LIMIT $3::integer) x",
		3, p, "lead list");
	cm_pg_close(c);
	if (!rows)
		return 1;
	if (cfg->json)
		ctl_json_print(rows);
	else
		ctl_table_print(rows, cols, CM_ARRAY_LEN(cols));
	json_decref(rows);
	return 0;
}
