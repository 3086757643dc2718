/*
 * pr_docs.h - the API's own documentation: GET /api/openapi.json (the OpenAPI document from
 * schemas/) and GET /api/docs (a page that renders it, with its static assets under /api/docs/).
 * Files are read once at start-up from a docs directory (`make docs` assembles build/docs; the image
 * has /usr/share/botjobs/docs). A missing directory only makes these routes answer 404.
 */
#ifndef PR_DOCS_H
#define PR_DOCS_H

#include <stddef.h>
#include "cm_compiler.h"
#include "pr_http.h"

struct pr_docs;

/* Loads dir (NULL or missing = no docs). Never fails except for out of memory. */
struct pr_docs *pr_docs_load(const char *dir);
void pr_docs_free(struct pr_docs *d); /* NULL-safe */
/* Serves url when it is a docs route (GET/HEAD): returns 1 (answered), else 0. */
int pr_docs_serve(struct pr_docs *d, struct pr_req *req, const char *method, const char *url);

#endif
