/*
 * cm_pg.c - see cm_pg.h.
 */
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "cm_pg.h"

static __thread char last_state[6];

PGconn *cm_pg_connect(const char *conninfo, const char *app_name, char *errstr, size_t errstr_size)
{
	const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *vals[] = {conninfo, app_name, "5", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(errstr, errstr_size, "postgresql: %s", PQerrorMessage(c));
		size_t n = strlen(errstr);
		while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' '))
			errstr[--n] = '\0';
		PQfinish(c);
		return NULL;
	}
	return c;
}

void cm_pg_close(PGconn *c)
{
	if (c)
		PQfinish(c);
}

static void describe(PGconn *c, PGresult *r, char *errstr, size_t errstr_size)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
	if (!msg || !*msg)
		msg = PQerrorMessage(c);
	snprintf(last_state, sizeof(last_state), "%s", state ? state : "");
	snprintf(errstr, errstr_size, "%s%s%s%s", msg, state ? " (SQLSTATE " : "", state ? state : "",
		 state ? ")" : "");
	/* libpq messages end in a newline; keep log lines whole. */
	for (char *p = errstr; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

const char *cm_pg_last_sqlstate(void)
{
	return last_state;
}

PGresult *cm_pg_query(PGconn *c, const char *sql, int nparams, const char *const *params, char *errstr,
		      size_t errstr_size)
{
	PGresult *r = nparams ? PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		last_state[0] = '\0';
		return r;
	}
	describe(c, r, errstr, errstr_size);
	PQclear(r);
	return NULL;
}

/* Statements prepared by this thread: on which connection (and backend, since PQreset keeps the
 * PGconn), under which sql. A full table starts over: preparing again an existing name is harmless. */
#define PREPARED_MAX 32
static __thread struct prepared {
	const PGconn *c;
	int pid;
	const char *sql;
} prepared[PREPARED_MAX];
static __thread size_t prepared_n;

static struct prepared *prepared_find(const PGconn *c, int pid, const char *sql)
{
	for (size_t i = 0; i < prepared_n; i++)
		if (prepared[i].c == c && prepared[i].pid == pid && prepared[i].sql == sql)
			return &prepared[i];
	return NULL;
}

static int prepare(PGconn *c, int pid, const char *name, const char *sql, int nparams, char *errstr, size_t errstr_size)
{
	PGresult *r = PQprepare(c, name, sql, nparams, NULL);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	/* 42P05: prepared before, by an entry this thread forgot when its table was full. */
	if (st != PGRES_COMMAND_OK && !(state && strcmp(state, "42P05") == 0)) {
		describe(c, r, errstr, errstr_size);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	if (prepared_n == PREPARED_MAX)
		prepared_n = 0;
	prepared[prepared_n++] = (struct prepared){c, pid, sql};
	return 0;
}

PGresult *cm_pg_query_prepared(PGconn *c, const char *name, const char *sql, int nparams, const char *const *params,
			       char *errstr, size_t errstr_size)
{
	int pid = PQbackendPID(c);
	if (!prepared_find(c, pid, sql) && prepare(c, pid, name, sql, nparams, errstr, errstr_size) == -1)
		return NULL;
	PGresult *r = PQexecPrepared(c, name, nparams, params, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		last_state[0] = '\0';
		return r;
	}
	describe(c, r, errstr, errstr_size);
	if (strcmp(last_state, "26000") == 0) { /* gone (a new backend at a reused address): prepare next time */
		struct prepared *p = prepared_find(c, pid, sql);
		if (p)
			p->c = NULL;
	}
	PQclear(r);
	return NULL;
}

int cm_pg_command(PGconn *c, const char *sql, int nparams, const char *const *params, char *errstr, size_t errstr_size)
{
	PGresult *r = cm_pg_query(c, sql, nparams, params, errstr, errstr_size);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

int cm_pg_exec(PGconn *c, const char *sql, char *errstr, size_t errstr_size)
{
	return cm_pg_command(c, sql, 0, NULL, errstr, errstr_size);
}

void cm_pg_exec_quiet(PGconn *c, const char *sql)
{
	PQclear(PQexec(c, sql));
}

int cm_pg_broken(PGconn *c)
{
	return !c || PQstatus(c) != CONNECTION_OK;
}

int cm_pg_reset(PGconn *c, char *errstr, size_t errstr_size)
{
	PQreset(c);
	if (PQstatus(c) != CONNECTION_OK) {
		describe(c, NULL, errstr, errstr_size);
		return -1;
	}
	return 0;
}

#define MIGRATE_LOCK "7474420001" /* pg_advisory_lock key for migrations */

int cm_pg_migrate(PGconn *c, int *applied, char *errstr, size_t errstr_size)
{
	int n = 0, rc = -1;
	if (cm_pg_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", errstr, errstr_size) == -1)
		return -1;
	if (cm_pg_exec(c,
		       "CREATE TABLE IF NOT EXISTS schema_migrations ("
		       " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		       errstr, errstr_size) == -1)
		goto out;
	for (size_t i = 0; i < cm_migrations_count; i++) {
		const char *p[] = {cm_migrations[i].name};
		PGresult *r =
			cm_pg_query(c, "SELECT 1 FROM schema_migrations WHERE name = $1", 1, p, errstr, errstr_size);
		if (!r)
			goto out;
		int done = PQntuples(r) > 0;
		PQclear(r);
		if (done)
			continue;
		char err[512];
		if (cm_pg_exec(c, "BEGIN", errstr, errstr_size) == -1)
			goto out;
		if (cm_pg_exec(c, cm_migrations[i].sql, err, sizeof(err)) == -1 ||
		    cm_pg_command(c, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, p, err, sizeof(err)) ==
			    -1 ||
		    cm_pg_exec(c, "COMMIT", err, sizeof(err)) == -1) {
			snprintf(errstr, errstr_size, "migration %s: %s", cm_migrations[i].name, err);
			cm_pg_exec_quiet(c, "ROLLBACK");
			goto out;
		}
		cm_log_with(CM_LOG_INFO, "migration", cm_migrations[i].name, "applied migration");
		n++;
	}
	rc = 0;
out:
	if (applied)
		*applied = n;
	cm_pg_exec_quiet(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
	return rc;
}
