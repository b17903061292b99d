// Versioned schema migrations. Append only: a released migration is never
// edited, a change is a new version. Each runs in its own transaction.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

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
];

/** The SQL expression of an instance's fleet health; parameters :now-free, :offline_before. */
export const HEALTH_SQL = `CASE
  WHEN enrolled_at IS NULL THEN 'expected'
  WHEN last_seen_at < @offline_before THEN 'offline'
  WHEN assignment IS NULL THEN 'unassigned'
  WHEN status_state IN ('failed', 'degraded') THEN 'degraded'
  WHEN applied_generation < generation THEN 'converging'
  WHEN status_state = 'ready' AND teleport_ready = 1 THEN 'ready'
  ELSE 'converging'
END`;
