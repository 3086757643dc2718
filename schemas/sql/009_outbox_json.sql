-- 009_outbox_json.sql - outbox payloads are stored as json (the text as written), not jsonb. A payload is
-- written once and read once, by the relay, as text: jsonb parsed every event batch into its binary form on
-- insert and printed it back for the relay. json only checks the text on insert and hands it back as stored
-- (docs/benchmarks.md, "Event batches stored as json"). Writers of jsonb values keep working: jsonb -> json
-- is an assignment cast.
-- The table is rewritten under an exclusive lock. Rows live only until they are relayed, so it is small;
-- but every claim and completion writes to it, and they would all queue behind a lock wait: give up after
-- 10 s instead (the migration fails, nothing changed; run it again).
SET LOCAL lock_timeout = '10s';
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;
