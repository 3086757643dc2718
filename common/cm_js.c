/*
 * cm_js.c - compile checks and error formatting for bot JavaScript. See cm_js.h.
 */
#include <mujs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_js.h"

#define SCRATCH_USES 1000 /* a state interns every name it sees: start a new one now and then */

/* One scratch state per thread, freed when the thread exits (a pthread key destructor). */
struct scratch {
	js_State *J;
	int uses;
};
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *s = p;
	if (s && s->J)
		js_freestate(s->J);
	free(s);
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

/* The line of the first "at [string]:N" frame or of a "[string]:N:" syntax error prefix. */
static int find_line(const char *s)
{
	const char *p = s ? strstr(s, "[string]:") : NULL;
	return p ? atoi(p + 9) : 0;
}

/* Strips MuJS's "[string]:N: " from a syntax error message. */
static const char *strip_location(const char *msg)
{
	const char *p = strstr(msg, "[string]:");
	if (!p)
		return msg;
	const char *q = strchr(p + 9, ':');
	if (!q)
		return msg;
	q++;
	while (*q == ' ')
		q++;
	return q;
}

/* Does the body use syntax that ES5 lacks? Gives a hint for the error message. */
static const char *es6_hint(const char *body, const char *msg)
{
	if (!body || !strstr(msg, "SyntaxError"))
		return "";
	if (strstr(body, "=>"))
		return " (arrow functions are ES2015; MuJS runs ES5: use function (x) { ... })";
	if (strstr(body, "let ") || strstr(body, "const "))
		return " (let/const are ES2015; MuJS runs ES5: use var)";
	if (strchr(body, '`'))
		return " (template literals are ES2015; MuJS runs ES5: use string concatenation)";
	if (strstr(body, "class "))
		return " (classes are ES2015; MuJS runs ES5: use functions and prototypes)";
	return "";
}

void cm_js_error_describe(struct js_State *J, const char *body, char *errstr, size_t errstr_size, int *line)
{
	const char *msg = "error";
	int ln = 0;
	/* js_isobject() is false for Error objects in MuJS 1.3; js_type() tells. */
	if (js_type(J, -1) == JS_ISOBJECT) {
		/* Read stackTrace first: MuJS converts a value to a string in place on its stack slot. */
		js_getproperty(J, -1, "stackTrace");
		if (js_isstring(J, -1))
			ln = find_line(js_tostring(J, -1));
		js_pop(J, 1);
		msg = js_trystring(J, -1, "error");
	} else if (js_isstring(J, -1)) {
		msg = js_tostring(J, -1);
	} else {
		msg = js_tryrepr(J, -1, "error"); /* note: replaces the value on the stack with its text */
	}
	if (!ln)
		ln = find_line(msg);
	char clean[1024];
	snprintf(clean, sizeof(clean), "%s", msg);
	if (strstr(clean, "[string]:")) {
		/* "SyntaxError: [string]:3: unexpected token" -> "SyntaxError: unexpected token" */
		char *p = strstr(clean, "[string]:");
		const char *rest = strip_location(p);
		memmove(p, rest, strlen(rest) + 1);
	}
	if (ln > 0)
		snprintf(errstr, errstr_size, "line %d: %s%s", ln, clean, es6_hint(body, clean));
	else
		snprintf(errstr, errstr_size, "%s%s", clean, es6_hint(body, clean));
	if (line)
		*line = ln;
}

int cm_js_check_body(const char *body, char *errstr, size_t errstr_size)
{
	pthread_once(&scratch_once, scratch_key_init);
	struct scratch *s = pthread_getspecific(scratch_key);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || pthread_setspecific(scratch_key, s) != 0) {
			free(s);
			snprintf(errstr, errstr_size, "out of memory");
			return -1;
		}
	}
	if (s->J && s->uses >= SCRATCH_USES) {
		js_freestate(s->J);
		s->J = NULL;
	}
	if (!s->J) {
		s->J = js_newstate(NULL, NULL, 0);
		s->uses = 0;
		if (!s->J) {
			snprintf(errstr, errstr_size, "out of memory");
			return -1;
		}
	}
	s->uses++;
	js_State *J = s->J;
	int rc = 0;
	js_getglobal(J, "Function");
	js_pushundefined(J);
	js_pushstring(J, body);
	if (js_pcall(J, 1)) {
		cm_js_error_describe(J, body, errstr, errstr_size, NULL);
		rc = -1;
	}
	js_pop(J, 1);
	return rc;
}
