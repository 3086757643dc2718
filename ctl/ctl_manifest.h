/*
 * ctl_manifest.h - a bot folder: reading and checking its manifest and code, and comparing it with
 * what the database holds. No database here (ctl_apply.c writes), so all of it is unit-tested.
 *
 * DIR/manifest.json:
 *   {"business": "Demo Inc" | 3,                  the tenant, by name (created if missing) or id
 *    "bot": {"id": 1, "name": "demo"},
 *    "triggers":   [{"id": 1, "code": "echo", "name": "…", "file": "triggers/echo.js" | "body": "…",
 *                    "condition_file": "…" | "condition": "…", "script_id": 7}],
 *    "scripts":    [{"id": 7, "code": "welcome", "name": "…", "file": "scripts/welcome.json" | "commands": [...]}],
 *    "broadcasts": [{"id": 4, "code": "promo", "name": "…", "script_id": 7, "file" | "body", "condition_file" | "condition"}],
 *    "lead_statuses": [{"id": 1, "name": "new"}],   upserted
 *    "leads": [{"id": 1, "name": "Ann", "channel": "telegram", "attributes": {}, "tags": [], "muted": false}],
 *                                                   seed leads: created when missing, never overwritten
 *    "bot_attributes": {"greeting": "Hello"}}       created when missing, never overwritten
 *
 * Every piece of JavaScript (trigger and broadcast bodies and conditions, the conditions and run_js
 * code of script commands) is compiled when the folder is read. Problems are printed one per line:
 * "DIR/triggers/echo.js:3: SyntaxError: … (let/const are ES2015; MuJS runs ES5: use var)" for code in
 * its own file, "DIR/manifest.json: trigger 1 'echo' condition, line 2: …" for code written inline.
 */
#ifndef CTL_MANIFEST_H
#define CTL_MANIFEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "cm_compiler.h"

enum ctl_kind { CTL_TRIGGER, CTL_SCRIPT, CTL_BROADCAST };
#define CTL_KINDS 3

/* One target of a bot, as the manifest wants it or as the database has it. Owns its strings and
 * commands. Empty strings and NULL mean the same ("none"). */
struct ctl_item {
	enum ctl_kind kind;
	int64_t id;
	char *code;
	char *name;
	char *body;	   /* triggers, broadcasts: a JavaScript function body */
	char *condition;   /* triggers, broadcasts: a function body returning true to run */
	json_t *commands;  /* scripts: the list of dialog commands */
	int64_t script_id; /* triggers: the script to launch; broadcasts: the script to run; 0 = none */
	int version;	   /* stored items: their version (0 in a manifest) */
};
void ctl_item_clear(struct ctl_item *it); /* frees what it owns; NULL-safe */

struct ctl_manifest {
	json_t *doc;	      /* the manifest as applied: every file's code inlined (owned) */
	char hash[65];	      /* hex SHA-256 of doc as compact JSON with sorted keys */
	json_t *business;     /* borrowed from doc: a string (name) or an integer (id) */
	int64_t bot_id;	      /* 0 when missing */
	const char *bot_name; /* borrowed from doc, may be NULL */
	struct ctl_item *items;
	size_t nitems;
};

/*
 * Reads DIR/manifest.json and the files it names and compiles every piece of JavaScript. Each problem
 * is printed to errs as one line. Returns the number of problems (0 = the folder is good); m is filled
 * as far as it could be either way, and must be freed with ctl_manifest_free.
 */
int ctl_manifest_load(const char *dir, struct ctl_manifest *m, FILE *errs) CM_MUSTCHECK;
void ctl_manifest_free(struct ctl_manifest *m); /* NULL-safe */

/* What applying does to one item. */
enum ctl_action {
	CTL_ADDED,     /* in the manifest, not stored */
	CTL_CHANGED,   /* stored, and the manifest differs: its version goes up by one */
	CTL_UNCHANGED, /* stored as the manifest has it */
	CTL_REMOVED,   /* stored, not in the manifest, and pruning: deleted */
	CTL_KEPT,      /* stored, not in the manifest, not pruning: left as it is */
};

/* Fields of an item that differ (a bit set). */
enum {
	CTL_F_CODE = 1 << 0,
	CTL_F_NAME = 1 << 1,
	CTL_F_BODY = 1 << 2,
	CTL_F_CONDITION = 1 << 3,
	CTL_F_COMMANDS = 1 << 4,
	CTL_F_SCRIPT = 1 << 5,
};

struct ctl_change {
	enum ctl_action action;
	enum ctl_kind kind;
	int64_t id;
	const char *code;	      /* the manifest's code, or the stored one for removed/kept (borrowed) */
	unsigned fields;	      /* CTL_F_* that differ (changed only) */
	int old_version, new_version; /* 0 when there is none */
	const struct ctl_item *want;  /* borrowed; NULL for removed/kept */
	const struct ctl_item *have;  /* borrowed; NULL for added */
};

/*
 * Compares the items a manifest wants with the stored ones of the same bot (both borrowed; they must
 * outlive the result). Returns the changes (malloc'd, *n of them): the manifest's items in its order,
 * then the stored items it does not list. Returns NULL with errstr when the manifest cannot be
 * applied as it is: a code it gives an item is held by a stored item of the same kind that stays
 * (not in the manifest, and not pruning).
 */
struct ctl_change *ctl_manifest_diff(const struct ctl_item *want, size_t nwant, const struct ctl_item *have,
				     size_t nhave, int prune, size_t *n, char *errstr, size_t errstr_size) CM_MUSTCHECK;

const char *ctl_kind_name(enum ctl_kind k);	/* "trigger", "script", "broadcast" */
const char *ctl_kind_table(enum ctl_kind k);	/* "triggers", "scripts", "broadcasts" */
const char *ctl_action_name(enum ctl_action a); /* "added", "changed", … */
/* The CTL_F_* bits as JSON strings ["body", "condition"] (a new reference). */
json_t *ctl_fields_json(unsigned fields);

#endif
