/*
 * pr_error.c - the API's one error shape (pr_http.h: pr_error_body), apart from the HTTP server so
 * that tests and fuzz targets that stub the server build the very same answers.
 */
#include "cm_utf8.h"
#include "pr_http.h"

json_t *pr_error_body(const char *message, json_t *errors)
{
	/* The message may quote a client's bytes (a path, a header): never let that void the answer. */
	json_t *body = json_pack("{sb so}", "success", 0, "message", cm_json_text(message));
	if (body && errors && json_object_size(errors))
		json_object_set(body, "errors", errors);
	json_decref(errors);
	return body;
}
