/*
 * cm_pg.h - libpq helpers: connect with an application name, run statements with parameters
 * (SQL is always parameterized), and turn failures into one line with the SQLSTATE.
 */
#ifndef CM_PG_H
#define CM_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include "cm_compiler.h"

/* Connects (conninfo may be a URI or key=value). Returns NULL with errstr. */
PGconn *cm_pg_connect(const char *conninfo, const char *app_name, char *errstr, size_t errstr_size) CM_MUSTCHECK;
void cm_pg_close(PGconn *c); /* NULL-safe */

/* A statement without parameters or results (BEGIN, COMMIT, DDL). */
int cm_pg_exec(PGconn *c, const char *sql, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * A statement with text parameters (NULL = SQL NULL). Returns the result (caller PQclear()s it) when
 * it succeeded (COMMAND_OK or TUPLES_OK), else NULL with "message (SQLSTATE xxxxx)" in errstr.
 */
PGresult *cm_pg_query(PGconn *c, const char *sql, int nparams, const char *const *params, char *errstr,
		      size_t errstr_size) CM_MUSTCHECK;

/*
 * cm_pg_query for a statement run often (claims, completions): prepared once per connection and
 * thread under name (unique per sql), so PostgreSQL parses and plans it once, not per call. sql must
 * be a string that lives as long as the program (a static array): it is the cache key. A connection
 * that was reset (another backend) prepares it again.
 */
PGresult *cm_pg_query_prepared(PGconn *c, const char *name, const char *sql, int nparams, const char *const *params,
			       char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* The same, with no result wanted. */
int cm_pg_command(PGconn *c, const char *sql, int nparams, const char *const *params, char *errstr,
		  size_t errstr_size) CM_MUSTCHECK;

/* Runs sql and ignores the outcome: ROLLBACK after a failure, unlocking. */
void cm_pg_exec_quiet(PGconn *c, const char *sql);

/* 1 when the connection is broken (the caller should cm_pg_reset). */
int cm_pg_broken(PGconn *c);
/* Reconnects a broken connection. Returns 0 when it is usable again. */
int cm_pg_reset(PGconn *c, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/* The SQLSTATE of the last failure recorded by cm_pg_query/command in this thread ("" if none). */
const char *cm_pg_last_sqlstate(void);

/* Applies the embedded migrations (the files of schemas/sql) not applied yet, each once, in order, under an
 * advisory lock so that several processes starting together do not race. *applied gets the count. */
int cm_pg_migrate(PGconn *c, int *applied, char *errstr, size_t errstr_size) CM_MUSTCHECK;

struct cm_migration {
	const char *name;
	const char *sql;
};
extern const struct cm_migration cm_migrations[];
extern const size_t cm_migrations_count;

#endif
