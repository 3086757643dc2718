/*
 * pr_docs.c - see pr_docs.h. Only plain file names are served (no '/', no "..").
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "pr_docs.h"

struct file {
	char *name, *data;
	size_t len;
};

struct pr_docs {
	struct file *files;
	size_t n;
};

static const char *content_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	static const struct {
		const char *ext, *type;
	} types[] = {{".html", "text/html; charset=utf-8"},
		     {".js", "application/javascript"},
		     {".css", "text/css"},
		     {".json", "application/json"},
		     {".png", "image/png"},
		     {".svg", "image/svg+xml"},
		     {".map", "application/json"},
		     {".yaml", "application/yaml"}};
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static int plain_name(const char *s)
{
	if (!*s || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
		      *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
			*len = fread(buf, 1, (size_t)n, f);
			buf[*len] = '\0';
		}
	}
	fclose(f);
	return buf;
}

struct pr_docs *pr_docs_load(const char *dir)
{
	struct pr_docs *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	DIR *dh = dir && *dir ? opendir(dir) : NULL;
	if (!dh) {
		cm_log_warn("docs: no documentation directory (%s): /api/docs and /api/openapi.json answer 404",
			    dir && *dir ? dir : "none given");
		return d;
	}
	struct dirent *e;
	while ((e = readdir(dh))) {
		if (!plain_name(e->d_name))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		size_t len = 0;
		char *data = slurp(path, &len);
		if (!data)
			continue;
		struct file *nf = realloc(d->files, (d->n + 1) * sizeof(*nf));
		if (!nf) {
			free(data);
			break;
		}
		d->files = nf;
		d->files[d->n++] = (struct file){strdup(e->d_name), data, len};
	}
	closedir(dh);
	cm_log_with(CM_LOG_INFO, "dir", dir, "docs: %zu file(s) loaded", d->n);
	return d;
}

void pr_docs_free(struct pr_docs *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->files[i].name);
		free(d->files[i].data);
	}
	free(d->files);
	free(d);
}

static const struct file *find(const struct pr_docs *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->files[i].name, name) == 0)
			return &d->files[i];
	return NULL;
}

int pr_docs_serve(struct pr_docs *d, struct pr_req *req, const char *method, const char *url)
{
	const char *name = NULL;
	if (strcmp(url, "/api/openapi.json") == 0)
		name = "openapi.json";
	else if (strcmp(url, "/api/docs") == 0 || strcmp(url, "/api/docs/") == 0)
		name = "index.html";
	else if (strncmp(url, "/api/docs/", 10) == 0)
		name = url + 10;
	else if (strncmp(url, "/api/", 5) == 0 && strlen(url) > 17 && !strcmp(url + strlen(url) - 12, ".schema.json"))
		name = url + 5; /* the schemas /api/openapi.json refers to, relative to it */
	else
		return 0;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		pr_req_error(req, 405, "use GET", json_pack("{s[s]}", "method", "use GET"), 0);
		return 1;
	}
	const struct file *f = d && plain_name(name) ? find(d, name) : NULL;
	if (!f) {
		char msg[300];
		snprintf(msg, sizeof(msg), "no such document: %.200s (is the docs directory installed? make docs)",
			 url);
		pr_req_error(req, 404, msg, json_pack("{s[s]}", "path", "no such document"), 0);
		return 1;
	}
	pr_req_answer_text(req, 200, content_type(name), f->data, f->len);
	return 1;
}
