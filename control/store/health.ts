// Fleet health, declared once: each rule is the same condition in TypeScript
// (healthOf) and in SQL (HEALTH_SQL, so that lists filter and count by health
// in the database). The first rule that holds wins. A rule reads the
// instance's own row only: the counts by health are kept by triggers on the
// instances table (health-counting.ts), installed again whenever these rules change.
import type { HealthState } from '../../contract/model';
import type { HealthClock, InstanceRecord } from './store';

type HealthFacts = Pick<
  InstanceRecord,
  'enrolledAt' | 'lastSeenAt' | 'assignment' | 'status' | 'generation' | 'appliedGeneration' | 'releasedGeneration'
>;

interface HealthRule {
  health: HealthState;
  /** Over the instances table's columns; "?" is the instant before which an instance is offline. */
  sql: string;
  holds(r: HealthFacts, clock: HealthClock): boolean;
}

const stateOf = (r: HealthFacts): string | undefined => r.status?.state;

const HEALTH_RULES: HealthRule[] = [
  { health: 'expected', sql: 'enrolled_at IS NULL', holds: (r) => r.enrolledAt === null },
  {
    health: 'offline',
    sql: 'last_seen_at < ?',
    holds: (r, clock) => r.lastSeenAt !== null && r.lastSeenAt < clock.offlineBefore,
  },
  // The agent's last report as it stopped cleanly (the instance shut down): offline at once.
  { health: 'offline', sql: "status_state = 'stopped'", holds: (r) => stateOf(r) === 'stopped' },
  {
    health: 'orphaned',
    // roles_key is NULL exactly when assignment is (rows.ts rolesKey), and is in the counting index.
    sql: "roles_key IS NULL AND status_state = 'orphaned'",
    holds: (r) => r.assignment === null && stateOf(r) === 'orphaned',
  },
  { health: 'unassigned', sql: 'roles_key IS NULL', holds: (r) => r.assignment === null },
  {
    health: 'degraded',
    sql: "status_state IN ('failed', 'degraded')",
    holds: (r) => stateOf(r) === 'failed' || stateOf(r) === 'degraded',
  },
  {
    // Against the generation it is served: a host a rollout has not reached yet keeps its old one, and is not converging.
    health: 'converging',
    sql: 'applied_generation < COALESCE(released_generation, generation)',
    holds: (r) => r.appliedGeneration < (r.releasedGeneration ?? r.generation),
  },
  {
    health: 'ready',
    sql: "status_state = 'ready' AND teleport_ready = 1",
    holds: (r) => stateOf(r) === 'ready' && r.status?.teleportReady === true,
  },
];

const OTHERWISE: HealthState = 'converging';

/** An instance's fleet health. */
export function healthOf(record: HealthFacts, clock: HealthClock): HealthState {
  return HEALTH_RULES.find((rule) => rule.holds(record, clock))?.health ?? OTHERWISE;
}

/** The SQL expression of healthOf; its one parameter is clock.offlineBefore. */
export const HEALTH_SQL = `CASE ${HEALTH_RULES.map((r) => `WHEN ${r.sql} THEN '${r.health}'`).join(' ')} ELSE '${OTHERWISE}' END`;

/**
 * HEALTH_SQL without the offline rule that depends on the time (its "?"),
 * no parameter: the health the counting triggers keep counts of
 * (health-counting.ts); offline by time is read from the last_seen_at index.
 */
export const STANDING_HEALTH_SQL = `CASE ${HEALTH_RULES.filter((r) => !r.sql.includes('?'))
  .map((r) => `WHEN ${r.sql} THEN '${r.health}'`)
  .join(' ')} ELSE '${OTHERWISE}' END`;

/** The instances columns a rule may read. */
const INSTANCE_COLUMNS =
  /\b(instance_id|identity|enrolled_at|last_seen_at|assignment|roles_key|generation|applied_generation|status|status_state|teleport_ready|facts|created_at|updated_at|enrolled_via|allowed_roles|released_generation|teleport_version)\b/g;

/** STANDING_HEALTH_SQL over a row a trigger sees ("NEW" or "OLD"); quoted words are values, not columns. */
export const standingHealthSqlOf = (row: 'NEW' | 'OLD'): string =>
  STANDING_HEALTH_SQL.split("'")
    .map((part, i) => (i % 2 ? part : part.replace(INSTANCE_COLUMNS, `${row}.$1`)))
    .join("'");
