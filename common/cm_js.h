/*
 * cm_js.h - MuJS helpers every binary needs: compile checks of bot code with useful errors.
 *
 * Bot code (trigger bodies, conditions) is a *function body*: it is compiled with the Function
 * constructor, so `return` works at top level, braces cannot escape the function, and line
 * numbers count from the body's first line. MuJS is ES5: `let`, `const`, arrow functions and
 * classes do not parse, and the error says so.
 */
#ifndef CM_JS_H
#define CM_JS_H

#include <stddef.h>
#include "cm_compiler.h"

struct js_State;

/*
 * Compiles body as a function body without running it. Returns 0, or -1 with
 * "line N: SyntaxError: …" in errstr. Thread-safe (a scratch state per thread, renewed now and then).
 */
int cm_js_check_body(const char *body, char *errstr, size_t errstr_size) CM_MUSTCHECK;

/*
 * Formats the error value on top of J's stack as "line N: Name: message" (line from MuJS's
 * stackTrace or from a SyntaxError's "[string]:N:" prefix; "(line unknown)" otherwise), adds a hint
 * for ES2015+ syntax, and writes it to errstr. *line gets N or 0 (line may be NULL). Leaves the stack as is.
 */
void cm_js_error_describe(struct js_State *J, const char *body, char *errstr, size_t errstr_size, int *line);

#endif
