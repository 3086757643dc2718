/*
 * wk_sql.h - the SQL that applies a run's effects, shared by job completions (wk_apply.c) and broadcast
 * chunks (wk_bcast.c). Each macro is the body of a data-modifying CTE reading from the CTE named src,
 * whose rows have: bot_id, lead_id, outcome ('done' rows are applied), lead_set, lead_del, tags_add,
 * tags_del, status_name, bot_set, bot_del, outbox (messages: [{key, payload}]).
 */
#ifndef WK_SQL_H
#define WK_SQL_H

/* Lead attributes (set/delete), tags (remove, then append new ones in order), status by name. */
#define WK_SQL_LEAD_EFFECTS(src)                                                                                     \
	"  UPDATE leads l SET"                                                                                       \
	"    attributes = CASE WHEN " src ".lead_del IS NULL THEN l.attributes"                                      \
	"                 ELSE l.attributes - ARRAY(SELECT jsonb_array_elements_text(" src ".lead_del)) END"         \
	"                 || coalesce(" src ".lead_set, '{}'),"                                                      \
	"    tags = CASE WHEN " src ".tags_del IS NULL AND " src ".tags_add IS NULL THEN l.tags"                     \
	"      ELSE ARRAY(SELECT t FROM unnest(l.tags) WITH ORDINALITY AS x(t, o)"                                   \
	"                 WHERE t <> ALL(ARRAY(SELECT jsonb_array_elements_text(coalesce(" src ".tags_del, '[]'))))" \
	"                 ORDER BY o)"                                                                               \
	"        || ARRAY(SELECT t FROM jsonb_array_elements_text(coalesce(" src ".tags_add, '[]'))"                 \
	"                 WITH ORDINALITY AS y(t, o) WHERE t <> ALL(l.tags) ORDER BY o) END,"                        \
	"    status_id = CASE WHEN " src ".status_name IS NULL THEN l.status_id"                                     \
	"      ELSE coalesce((SELECT s.id FROM lead_statuses s WHERE s.bot_id = l.bot_id"                            \
	"                     AND s.name = " src ".status_name), l.status_id) END,"                                  \
	"    updated_at = now()"                                                                                     \
	"  FROM " src "  WHERE " src ".outcome = 'done' AND l.bot_id = " src ".bot_id AND l.id = " src ".lead_id"    \
	"    AND (" src ".lead_set IS NOT NULL OR " src ".lead_del IS NOT NULL OR " src ".tags_add IS NOT NULL"      \
	"         OR " src ".tags_del IS NOT NULL OR " src ".status_name IS NOT NULL)"

/* Bot attributes: set (one row per key and bot in src, or the statement fails), then delete. */
#define WK_SQL_BOT_SET(src)                                                                   \
	"  INSERT INTO bot_attributes (bot_id, key, value)"                                   \
	"  SELECT " src ".bot_id, e.key, e.value FROM " src ", jsonb_each(" src ".bot_set) e" \
	"  WHERE " src ".outcome = 'done' AND " src ".bot_set IS NOT NULL"                    \
	"  ON CONFLICT (bot_id, key) DO UPDATE SET value = EXCLUDED.value"
#define WK_SQL_BOT_DEL(src)                                                                     \
	"  DELETE FROM bot_attributes b USING " src "  WHERE " src ".outcome = 'done' AND " src \
	".bot_del IS NOT NULL AND b.bot_id = " src ".bot_id"                                    \
	"    AND b.key IN (SELECT jsonb_array_elements_text(" src ".bot_del))"

/* Outbound messages into the outbox. */
#define WK_SQL_OUTBOX_MESSAGES(src)                                                   \
	"  INSERT INTO outbox (topic, key, payload)"                                  \
	"  SELECT 'outbound', m.key, m.payload FROM " src ", jsonb_to_recordset(" src \
	".outbox) AS m(key text, payload jsonb)"                                      \
	"  WHERE " src ".outcome = 'done' AND " src ".outbox IS NOT NULL"

#endif
