// Fleet health counts kept as the instances change, so that /v1/health reads
// a few rows, not every instance. Triggers on the instances table add rows to
// health_deltas (-1 for a row's old role set and standing health, +1 for its
// new ones) in the writing transaction itself: inserts only, so that
// concurrent writers never wait on a shared counter row. A read adds the
// deltas to health_totals; once they are many, a compaction folds them in.
// The triggers are built from health.ts: when their text differs from the one
// installed (the rules changed), the store replaces them and recounts, in one
// transaction that holds writers off the instances table.
import { createHash } from 'node:crypto';
import { STANDING_HEALTH_SQL, standingHealthSqlOf } from './health';

/** Migration SQL both stores run (SQLite 10, PostgreSQL 6). */
export const HEALTH_COUNT_TABLES = `
      -- Instances by role set ('' for none) and standing health (health.ts), as of the last compaction.
      CREATE TABLE health_totals (
        roles_key TEXT NOT NULL,
        health TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (roles_key, health)
      );
      -- Changes to those counts since, one row each, written by the instances triggers.
      CREATE TABLE health_deltas (
        roles_key TEXT NOT NULL,
        health TEXT NOT NULL,
        delta INTEGER NOT NULL
      );
      -- Which triggers are installed: a digest of their text.
      CREATE TABLE health_counting (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        definition TEXT NOT NULL
      );
      -- Counting no longer reads the instances; the offline range (instances_last_seen) stays.
      DROP INDEX instances_health;
`;

/** Deltas after which a read of the counts has them folded into the totals. */
export const COMPACT_AFTER_DELTAS = 500;

const delta = (row: 'NEW' | 'OLD', sign: 1 | -1) =>
  `INSERT INTO health_deltas (roles_key, health, delta) VALUES (COALESCE(${row}.roles_key, ''), ${standingHealthSqlOf(row)}, ${sign})`;

/** The row moved to another role set or standing health. */
const moved = `COALESCE(OLD.roles_key, '') <> COALESCE(NEW.roles_key, '') OR ${standingHealthSqlOf('OLD')} <> ${standingHealthSqlOf('NEW')}`;

const SQLITE_TRIGGERS = [
  'DROP TRIGGER IF EXISTS instances_health_insert',
  'DROP TRIGGER IF EXISTS instances_health_update',
  'DROP TRIGGER IF EXISTS instances_health_delete',
  `CREATE TRIGGER instances_health_insert AFTER INSERT ON instances BEGIN ${delta('NEW', 1)}; END`,
  `CREATE TRIGGER instances_health_update AFTER UPDATE ON instances WHEN ${moved} BEGIN ${delta('OLD', -1)}; ${delta('NEW', 1)}; END`,
  `CREATE TRIGGER instances_health_delete AFTER DELETE ON instances BEGIN ${delta('OLD', -1)}; END`,
];

const PG_TRIGGERS = [
  `CREATE OR REPLACE FUNCTION instances_health_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
   BEGIN
     IF TG_OP <> 'INSERT' THEN ${delta('OLD', -1)}; END IF;
     IF TG_OP <> 'DELETE' THEN ${delta('NEW', 1)}; END IF;
     RETURN NULL;
   END $fn$`,
  'DROP TRIGGER IF EXISTS instances_health_insert_delete ON instances',
  'DROP TRIGGER IF EXISTS instances_health_update ON instances',
  'CREATE TRIGGER instances_health_insert_delete AFTER INSERT OR DELETE ON instances FOR EACH ROW EXECUTE FUNCTION instances_health_count()',
  `CREATE TRIGGER instances_health_update AFTER UPDATE ON instances FOR EACH ROW WHEN (${moved}) EXECUTE FUNCTION instances_health_count()`,
];

export interface HealthCountingInstall {
  /** Names the triggers' text: what health_counting holds once they are installed. */
  definition: string;
  /** Run in one transaction (after holding writers off the instances table) when the installed definition differs. */
  statements: string[];
}

export function healthCountingInstall(database: 'sqlite' | 'postgres'): HealthCountingInstall {
  const triggers = database === 'sqlite' ? SQLITE_TRIGGERS : PG_TRIGGERS;
  const definition = createHash('sha256').update(triggers.join(';\n')).digest('hex');
  return {
    definition,
    statements: [
      ...triggers,
      'DELETE FROM health_deltas',
      'DELETE FROM health_totals',
      `INSERT INTO health_totals (roles_key, health, count)
       SELECT COALESCE(roles_key, ''), ${STANDING_HEALTH_SQL}, COUNT(*) FROM instances GROUP BY 1, 2`,
      `INSERT INTO health_counting (id, definition) VALUES (1, '${definition}')
       ON CONFLICT (id) DO UPDATE SET definition = excluded.definition`,
    ],
  };
}

export const INSTALLED_DEFINITION_SQL = 'SELECT definition FROM health_counting WHERE id = 1';
