// PostgreSQL schema migrations. Append only, like migrations.ts for SQLite:
// a released migration is never edited. Version 1 is SQLite's schema 6 in
// PostgreSQL's types; the column names are the same, so that the
// repositories (records.ts) run on both. Text keys that lists are ordered
// or paged by compare bytewise (COLLATE "C"), as in SQLite.
import { TELEPORT_VERSION_SQL, VERSIONS_AND_REPLICAS_SQL, healthIndexesSql, type Migration } from './migrations';
import { HEALTH_COUNT_TABLES } from './health-counting';
import { RELEASED_GENERATION_COLUMN, ROLLOUT_TABLES } from './rollout-tables';

export const PG_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'instances, settings, rules, audit, trust, leases, proxy certificates, cluster identity',
    sql: `
      CREATE TABLE settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        body TEXT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE instances (
        instance_id TEXT COLLATE "C" PRIMARY KEY,
        identity TEXT,
        enrolled_at BIGINT,
        last_seen_at BIGINT,
        assignment TEXT,
        -- ",auth,proxy," so that a role filter is a LIKE on one column
        roles_key TEXT COLLATE "C",
        generation BIGINT NOT NULL DEFAULT 0,
        applied_generation BIGINT NOT NULL DEFAULT 0,
        status TEXT,
        status_state TEXT,
        teleport_ready INTEGER NOT NULL DEFAULT 0,
        facts TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        enrolled_via TEXT,
        allowed_roles TEXT
      );
      CREATE TABLE rules (
        id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
      CREATE TABLE audit_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 1,
        last_at BIGINT,
        window_key TEXT
      );
      CREATE INDEX audit_events_target ON audit_events (target, id);
      CREATE UNIQUE INDEX audit_events_window ON audit_events (window_key) WHERE window_key IS NOT NULL;
      CREATE INDEX audit_events_at ON audit_events (at);
      CREATE TABLE instance_bindings (
        instance_id TEXT PRIMARY KEY,
        nonce_hash TEXT NOT NULL,
        method TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL
      );
      CREATE TABLE client_certificates (
        serial TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE INDEX client_certificates_instance ON client_certificates (instance_id);
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT
      );
      CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
      CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        roles TEXT,
        expires_at BIGINT NOT NULL,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT
      );
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        fencing BIGINT NOT NULL,
        acquired_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE TABLE proxy_certificates (
        domain TEXT COLLATE "C" PRIMARY KEY,
        state TEXT NOT NULL,
        serial TEXT,
        not_before BIGINT,
        not_after BIGINT,
        etag TEXT,
        issued_at BIGINT,
        checked_at BIGINT,
        last_attempt_at BIGINT,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at BIGINT,
        renew_requested INTEGER NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE acme_challenges (
        token TEXT PRIMARY KEY,
        key_authorization TEXT NOT NULL,
        domain TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE TABLE cluster_identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cluster_id TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'changes: the feed between replicas (postgres-changes.ts)',
    sql: `
      -- One row per change to what an instance should run ("*": every
      -- assigned instance), by the replica that made it; read by sequence.
      CREATE TABLE changes (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        origin TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        at BIGINT NOT NULL
      );
      CREATE INDEX changes_at ON changes (at);
    `,
  },
  {
    version: 3,
    name: 'versions of the settings and the rules (REST ETag / If-Match); the replicas serving (rate limits shared out)',
    sql: VERSIONS_AND_REPLICAS_SQL,
  },
  {
    version: 4,
    name: "rollouts, and per instance the generation a rollout released to it with each generation's config",
    sql: ROLLOUT_TABLES,
  },
  {
    version: 5,
    name: 'health from indexes: counts by role set and health, last seen, served certificates',
    sql: `
${healthIndexesSql("((status::json ->> 'certificateExpiresAt')::double precision)")}
    `,
  },
  {
    version: 6,
    name: 'the generation released to each instance beside its others (health compares what it applied with it)',
    sql: RELEASED_GENERATION_COLUMN,
  },
  {
    version: 7,
    name: 'the Teleport version each host runs, as its agent reports it (the release rules judge it)',
    sql: TELEPORT_VERSION_SQL,
  },
  {
    version: 8,
    name: 'health counts kept by triggers on the instances (health-counting.ts), not counted at each read; certificate expiry statistics',
    sql: `
${HEALTH_COUNT_TABLES}
      -- Without statistics on the expression the planner takes nearly every row to report a certificate and scans
      -- the table for the served certificates (/v1/health), not the partial index of the few that do. Expression
      -- statistics came with PostgreSQL 14; before it the scan stays.
      DO $$ BEGIN
        IF current_setting('server_version_num')::int >= 140000 THEN
          CREATE STATISTICS instances_certificate_expiry_stats
            ON (((status::json ->> 'certificateExpiresAt')::double precision)) FROM instances;
        END IF;
      END $$;
    `,
  },
  {
    version: 9,
    name: 'a version of each instance row, new at every insert and update (the REST list reads the columns of the rows it holds no view of)',
    sql: `
      -- One sequence for all rows: a version is never given twice, not even to an instance deleted and enrolled again.
      CREATE SEQUENCE instance_row_versions AS BIGINT;
      ALTER TABLE instances ADD COLUMN row_version BIGINT NOT NULL DEFAULT nextval('instance_row_versions');
      CREATE FUNCTION instances_row_version() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        NEW.row_version := nextval('instance_row_versions');
        RETURN NEW;
      END $fn$;
      -- Whichever statement writes a row: none can change it and keep its version.
      CREATE TRIGGER instances_row_version BEFORE INSERT OR UPDATE ON instances FOR EACH ROW EXECUTE FUNCTION instances_row_version();
    `,
  },
];

/** The newest PostgreSQL schema version this program knows. */
export const PG_SCHEMA_VERSION = Math.max(...PG_MIGRATIONS.map((m) => m.version));
