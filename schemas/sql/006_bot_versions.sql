-- 006_bot_versions.sql - the history of `botjobsctl bot apply`: one row per applied manifest that changed
-- something. Additive: nothing else reads it yet; triggers/scripts/broadcasts keep their own version.
CREATE TABLE bot_versions (
	bot_id         bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	version        integer NOT NULL,                 -- 1, 2, … per bot
	manifest       jsonb NOT NULL,                   -- the manifest as applied, every file's code inlined
	manifest_hash  text NOT NULL,                    -- hex SHA-256 of it (compact JSON, sorted keys)
	changes        jsonb NOT NULL,                   -- {"items":[{"kind","id","code","action",…}],"counts":{…}}
	applied_by     text NOT NULL DEFAULT current_user,
	applied_at     timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bot_id, version)
);
