-- 001_init.sql - the botjobs data model (SPEC §5).
-- Applied once by `botjobsctl migrate` (or `botjobs-worker --migrate`), recorded in schema_migrations.

-- Tenants and their API users.
CREATE TABLE businesses (
	id          bigserial PRIMARY KEY,
	name        text NOT NULL UNIQUE,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are random (256 bits) and shown once; only their SHA-256 is kept.
CREATE TABLE api_tokens (
	id           bigserial PRIMARY KEY,
	business_id  bigint NOT NULL REFERENCES businesses (id) ON DELETE CASCADE,
	name         text NOT NULL,
	token_hash   text NOT NULL UNIQUE,           -- lowercase hex SHA-256 of the whole token
	token_prefix text NOT NULL,                  -- the first characters, so people can tell tokens apart
	created_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz,
	revoked_at   timestamptz
);

CREATE TABLE bots (
	id           bigint PRIMARY KEY,
	business_id  bigint NOT NULL REFERENCES businesses (id) ON DELETE CASCADE,
	name         text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now()
);

-- Bot code. A dialog script is a list of commands (jsonb); a trigger is a JS function body plus an
-- optional condition and a script to launch; a broadcast is a script (or JS) plus a per-lead condition.
CREATE TABLE scripts (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	id          bigint NOT NULL,
	code        text NOT NULL,
	name        text,
	body        jsonb NOT NULL DEFAULT '[]',
	version     integer NOT NULL DEFAULT 1,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bot_id, id),
	UNIQUE (bot_id, code)
);

CREATE TABLE triggers (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	id          bigint NOT NULL,
	code        text NOT NULL,
	name        text,
	body        text NOT NULL DEFAULT '',
	condition   text,
	script_id   bigint,
	version     integer NOT NULL DEFAULT 1,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bot_id, id),
	UNIQUE (bot_id, code)
);

CREATE TABLE broadcasts (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	id          bigint NOT NULL,
	code        text NOT NULL,
	name        text,
	script_id   bigint,
	body        text,
	condition   text,
	version     integer NOT NULL DEFAULT 1,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bot_id, id),
	UNIQUE (bot_id, code)
);

-- End users of a bot.
CREATE TABLE leads (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	id          bigint NOT NULL,
	channel     text NOT NULL DEFAULT 'api',
	name        text,
	attributes  jsonb NOT NULL DEFAULT '{}',
	tags        text[] NOT NULL DEFAULT '{}',
	status_id   bigint,
	muted       boolean NOT NULL DEFAULT false,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bot_id, id)
);

CREATE TABLE lead_statuses (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	id          bigint NOT NULL,
	name        text NOT NULL,
	PRIMARY KEY (bot_id, id),
	UNIQUE (bot_id, name)
);

CREATE TABLE bot_attributes (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	key         text NOT NULL,
	value       jsonb NOT NULL,
	PRIMARY KEY (bot_id, key)
);

CREATE TABLE tickets (
	bot_id      bigint NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
	id          bigint NOT NULL,
	lead_id     bigint,
	data        jsonb NOT NULL DEFAULT '{}',
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bot_id, id)
);

-- Jobs. No foreign key to bots: a job published straight to Kafka for an unknown bot is stored and
-- then fails its run with a clear reason, rather than blocking the consumer.
CREATE TABLE jobs (
	job_id           uuid PRIMARY KEY,
	bot_id           bigint NOT NULL,
	lead_id          bigint,
	ticket_id        bigint,
	target_kind      text CHECK (target_kind IN ('script', 'trigger', 'broadcast')),
	target_id        bigint,
	target_code      text,
	due_at           timestamptz NOT NULL,
	period_sec       integer,                     -- NULL = one-shot
	condition        text,
	params           jsonb NOT NULL DEFAULT '{}',
	add_tags         text[] NOT NULL DEFAULT '{}',
	remove_tags      text[] NOT NULL DEFAULT '{}',
	state            text NOT NULL DEFAULT 'scheduled'
	                 CHECK (state IN ('scheduled', 'running', 'done', 'failed', 'cancelled', 'skipped')),
	cancel_requested boolean NOT NULL DEFAULT false,
	lease_owner      text,
	lease_until      timestamptz,
	attempts         integer NOT NULL DEFAULT 0,  -- claims of the current run (infrastructure retries)
	runs             integer NOT NULL DEFAULT 0,  -- finished runs
	accepted_at      timestamptz,                 -- when the producer accepted it (202)
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	last_run_at      timestamptz,
	last_error       text,
	result           jsonb,
	request_hash     text
);
-- The wake-up and claim scan: only scheduled jobs, in due order.
CREATE INDEX jobs_due ON jobs (due_at) WHERE state = 'scheduled';
-- Leases to reap.
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
-- Per-lead order: is there an earlier pending job for this lead?
CREATE INDEX jobs_lead_pending ON jobs (bot_id, lead_id, due_at) WHERE state IN ('scheduled', 'running');
-- Listing a bot's jobs.
CREATE INDEX jobs_bot ON jobs (bot_id, lead_id);

CREATE TABLE job_runs (
	id           bigserial PRIMARY KEY,
	job_id       uuid NOT NULL,
	bot_id       bigint NOT NULL,
	lead_id      bigint,
	run_no       integer NOT NULL,
	due_at       timestamptz NOT NULL,
	started_at   timestamptz NOT NULL,
	finished_at  timestamptz NOT NULL,
	outcome      text NOT NULL CHECK (outcome IN ('done', 'failed', 'skipped', 'cancelled')),
	error        text,
	error_line   integer,
	result       jsonb,
	worker       text NOT NULL
);
CREATE INDEX job_runs_job ON job_runs (job_id, id);

-- Transactional outbox: rows are written in the run's transaction and relayed to Kafka afterwards.
-- topic is logical ('outbound' or 'events'); the relay maps it to the configured topic name.
CREATE TABLE outbox (
	id          bigserial PRIMARY KEY,
	topic       text NOT NULL CHECK (topic IN ('outbound', 'events')),
	key         text,
	payload     jsonb NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- Wake the outbox relay on commit.
CREATE FUNCTION botjobs_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('botjobs_outbox', '');
	RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION botjobs_outbox_notify();

-- Tell producers that the catalog (tokens, bots, targets) changed, so they refresh their cache.
CREATE FUNCTION botjobs_catalog_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('botjobs_catalog', TG_TABLE_NAME);
	RETURN NULL;
END $$;
CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON businesses
	FOR EACH STATEMENT EXECUTE FUNCTION botjobs_catalog_notify();
CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_tokens
	FOR EACH STATEMENT EXECUTE FUNCTION botjobs_catalog_notify();
CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON bots
	FOR EACH STATEMENT EXECUTE FUNCTION botjobs_catalog_notify();
CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON scripts
	FOR EACH STATEMENT EXECUTE FUNCTION botjobs_catalog_notify();
CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON triggers
	FOR EACH STATEMENT EXECUTE FUNCTION botjobs_catalog_notify();
CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON broadcasts
	FOR EACH STATEMENT EXECUTE FUNCTION botjobs_catalog_notify();
