// Versioned schema migrations. Append only: a released migration is never
// edited, a change is a new version. Each runs in its own transaction.
import { HEALTH_COUNT_TABLES } from './health-counting';
import { RELEASED_GENERATION_COLUMN, ROLLOUT_TABLES } from './rollout-tables';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Version 7 here and 2 on PostgreSQL: the same statements on both. */
export const VERSIONS_AND_REPLICAS_SQL = `
      -- One row per document an operator edits as a whole: every change
      -- bumps it, and a change made on an older version (REST If-Match) is
      -- refused, so that two operators never silently overwrite each other.
      CREATE TABLE versions (
        name TEXT PRIMARY KEY,
        version BIGINT NOT NULL
      );
      INSERT INTO versions (name, version) VALUES ('settings', 1), ('rules', 1);
      -- The replicas serving on this store, each with a heartbeat on the
      -- database's clock: each applies its share of the rate limits.
      CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        started_at BIGINT NOT NULL,
        seen_at BIGINT NOT NULL
      );
    `;

/** Migration SQL both stores run: the version from each status report, NULL until a host reports one. */
export const TELEPORT_VERSION_SQL = `
      ALTER TABLE instances ADD COLUMN teleport_version TEXT;
`;

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'instances, settings, rules, audit',
    sql: `
      CREATE TABLE settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        body TEXT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE instances (
        instance_id TEXT PRIMARY KEY,
        identity TEXT,
        enrolled_at BIGINT,
        last_seen_at BIGINT,
        assignment TEXT,
        -- ",auth,proxy," so that a role filter is a LIKE on one column
        roles_key TEXT,
        generation BIGINT NOT NULL DEFAULT 0,
        applied_generation BIGINT NOT NULL DEFAULT 0,
        status TEXT,
        status_state TEXT,
        teleport_ready INTEGER NOT NULL DEFAULT 0,
        facts TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE rules (
        id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
      CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL
      );
      CREATE INDEX audit_events_target ON audit_events (target, id);
    `,
  },
  {
    version: 2,
    name: 'trust: API tokens, join tokens, instance bindings, issued client certificates',
    sql: `
      -- How the instance proved itself at its last enrollment, and the roles
      -- its join token allows (JSON array; NULL = any).
      ALTER TABLE instances ADD COLUMN enrolled_via TEXT;
      ALTER TABLE instances ADD COLUMN allowed_roles TEXT;
      -- Trust on first use: the SHA-256 of the nonce the first enrollment presented.
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
      -- Secrets are stored as SHA-256 hashes only.
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
    `,
  },
  {
    version: 3,
    name: 'leases: the publisher lease with its fencing number',
    sql: `
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        -- Increases at every new holder, never decreases.
        fencing BIGINT NOT NULL,
        acquired_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'proxy certificates from ACME, and pending HTTP-01 challenges',
    sql: `
      -- What the control server knows of each proxy certificate it manages;
      -- the certificate and key themselves live in S3 only.
      CREATE TABLE proxy_certificates (
        domain TEXT PRIMARY KEY,
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
        renew_requested BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at BIGINT NOT NULL
      );
      -- Key authorizations are public by design (served over plain HTTP); kept
      -- here so that whichever replica the ACME server reaches can answer.
      CREATE TABLE acme_challenges (
        token TEXT PRIMARY KEY,
        key_authorization TEXT NOT NULL,
        domain TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'audit: refusals counted per actor, action, reason and minute; an index for retention',
    sql: `
      -- A refusal is recorded once per window (window_key: actor, action,
      -- reason, minute); later ones in the window add to count and last_at.
      ALTER TABLE audit_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE audit_events ADD COLUMN last_at BIGINT;
      ALTER TABLE audit_events ADD COLUMN window_key TEXT;
      CREATE UNIQUE INDEX audit_events_window ON audit_events (window_key) WHERE window_key IS NOT NULL;
      CREATE INDEX audit_events_at ON audit_events (at);
    `,
  },
  {
    version: 6,
    name: 'cluster identity: the id made at first start, also kept in <data_dir>/cluster-id',
    sql: `
      -- One row. The server refuses to start when this and the data
      -- directory's cluster-id file disagree, or when one is missing.
      CREATE TABLE cluster_identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cluster_id TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: 'versions of the settings and the rules (REST ETag / If-Match); the replicas serving (rate limits shared out)',
    sql: VERSIONS_AND_REPLICAS_SQL,
  },
  {
    version: 8,
    name: "rollouts, and per instance the generation a rollout released to it with each generation's config",
    sql: ROLLOUT_TABLES,
  },
  {
    version: 9,
    name: 'health from indexes: counts by role set and health, last seen, served certificates',
    sql: `
${healthIndexesSql("json_extract(status, '$.certificateExpiresAt')")}
    `,
  },
  {
    version: 10,
    name: 'the generation released to each instance beside its others (health compares what it applied with it)',
    sql: RELEASED_GENERATION_COLUMN,
  },
  {
    version: 11,
    name: 'the Teleport version each host runs, as its agent reports it (the release rules judge it)',
    sql: TELEPORT_VERSION_SQL,
  },
  {
    version: 12,
    name: 'health counts kept by triggers on the instances (health-counting.ts), not counted at each read',
    sql: HEALTH_COUNT_TABLES,
  },
];

/**
 * Migration SQL both stores run. `certificateExpiry` is the dialect's jsonNumber(status, certificateExpiresAt),
 * written out: a migration's text never changes.
 */
export function healthIndexesSql(certificateExpiry: string): string {
  return `
      -- Counting by role set and health (health.ts STANDING_HEALTH_SQL) reads
      -- this index, not the rows; the instances last seen before the offline
      -- instant are a range of the second, moved to "offline".
      CREATE INDEX instances_health ON instances (roles_key, enrolled_at, status_state, teleport_ready, applied_generation, generation);
      CREATE INDEX instances_last_seen ON instances (last_seen_at);
      -- The certificates proxies serve (in /v1/health): the few instances reporting one.
      CREATE INDEX instances_certificate_expiry ON instances ((${certificateExpiry}), instance_id)
        WHERE ${certificateExpiry} IS NOT NULL;
  `;
}

/** The newest schema version this program knows. */
export const SCHEMA_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));
