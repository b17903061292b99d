// The embedded store: one SQLite file in WAL mode. better-sqlite3 is
// synchronous; its calls are short, so the async interface just wraps them.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DEFAULT_CLUSTER_SETTINGS, type Assignment, type ClusterSettings, type HealthState, type HostFacts, type InstanceIdentity, type ServiceRole } from '../../common/model';
import { HEALTH_SQL, MIGRATIONS } from './migrations';
import {
  firstMatchingRule,
  type AuditEvent,
  type EnrollOutcome,
  type HealthClock,
  type InstanceQuery,
  type InstanceRecord,
  type InstanceStatus,
  type Page,
  type Rule,
  type RuleInput,
  type Store,
} from './store';

interface InstanceRow {
  instance_id: string;
  identity: string | null;
  enrolled_at: number | null;
  last_seen_at: number | null;
  assignment: string | null;
  generation: number;
  applied_generation: number;
  status: string | null;
  facts: string | null;
  created_at: number;
  updated_at: number;
  health?: HealthState;
}

const parse = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

export function rowToInstance(row: InstanceRow): InstanceRecord {
  return {
    instanceId: row.instance_id,
    identity: parse<InstanceIdentity>(row.identity),
    enrolledAt: row.enrolled_at === null ? null : Number(row.enrolled_at),
    lastSeenAt: row.last_seen_at === null ? null : Number(row.last_seen_at),
    assignment: parse<Assignment>(row.assignment),
    generation: Number(row.generation),
    appliedGeneration: Number(row.applied_generation),
    status: parse<InstanceStatus>(row.status),
    facts: parse<HostFacts>(row.facts),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export const rolesKey = (a: Assignment | null): string | null => (a ? `,${[...a.roles].sort().join(',')},` : null);

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL syncs the WAL at every commit: an acknowledged change survives a
    // power loss, not only a crash of the process.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const applied = new Set(this.db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      })();
    }
  }

  schemaVersion(): number {
    return this.db.prepare('SELECT COALESCE(MAX(version), 0) FROM schema_migrations').pluck().get() as number;
  }

  private audit(actor: string, action: string, target: string, details: Record<string, unknown>, now: number): void {
    this.db
      .prepare('INSERT INTO audit_events (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)')
      .run(now, actor, action, target, JSON.stringify(details));
  }

  private row(instanceId: string): InstanceRow | undefined {
    return this.db.prepare('SELECT * FROM instances WHERE instance_id = ?').get(instanceId) as InstanceRow | undefined;
  }

  async getSettings(): Promise<ClusterSettings> {
    const body = this.db.prepare('SELECT body FROM settings WHERE id = 1').pluck().get() as string | undefined;
    return body ? { ...DEFAULT_CLUSTER_SETTINGS, ...(JSON.parse(body) as ClusterSettings) } : { ...DEFAULT_CLUSTER_SETTINGS };
  }

  async updateSettings(settings: ClusterSettings, actor: string, now: number): Promise<string[]> {
    return this.db.transaction(() => {
      const before = this.db.prepare('SELECT body FROM settings WHERE id = 1').pluck().get() as string | undefined;
      this.db
        .prepare('INSERT INTO settings (id, body, updated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at')
        .run(JSON.stringify(settings), now);
      const bumped = this.db
        .prepare('UPDATE instances SET generation = generation + 1, updated_at = ? WHERE assignment IS NOT NULL RETURNING instance_id')
        .pluck()
        .all(now) as string[];
      this.audit(actor, 'settings.update', 'settings', { before: before ? JSON.parse(before) : null, after: settings }, now);
      return bumped;
    })();
  }

  async enroll(identity: InstanceIdentity, actor: string, now: number): Promise<EnrollOutcome> {
    return this.db.transaction((): EnrollOutcome => {
      const existing = this.row(identity.instanceId);
      if (!existing) {
        this.db
          .prepare('INSERT INTO instances (instance_id, identity, enrolled_at, last_seen_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(identity.instanceId, JSON.stringify(identity), now, now, now, now);
      } else {
        this.db
          .prepare('UPDATE instances SET identity = ?, enrolled_at = ?, last_seen_at = ?, updated_at = ? WHERE instance_id = ?')
          .run(JSON.stringify(identity), now, now, now, identity.instanceId);
      }
      this.audit(actor, 'instance.enroll', identity.instanceId, { firstEnrollment: !existing?.enrolled_at, region: identity.region, privateIp: identity.privateIp }, now);
      let matchedRule: Rule | undefined;
      if (!existing?.assignment) {
        matchedRule = firstMatchingRule(this.rulesNow(), identity.tags);
        if (matchedRule) {
          const assignment: Assignment = { roles: matchedRule.roles, labels: matchedRule.labels };
          this.writeAssignment(identity.instanceId, assignment, now);
          this.audit(`rule:${matchedRule.id}`, 'assignment.set', identity.instanceId, { assignment, rule: matchedRule.name }, now);
        }
      }
      return { record: rowToInstance(this.row(identity.instanceId)!), matchedRule };
    })();
  }

  private writeAssignment(instanceId: string, assignment: Assignment | null, now: number): void {
    this.db
      .prepare('UPDATE instances SET assignment = ?, roles_key = ?, generation = generation + 1, updated_at = ? WHERE instance_id = ?')
      .run(assignment ? JSON.stringify(assignment) : null, rolesKey(assignment), now, instanceId);
  }

  async getInstance(instanceId: string): Promise<InstanceRecord | undefined> {
    const row = this.row(instanceId);
    return row ? rowToInstance(row) : undefined;
  }

  async listInstances(query: InstanceQuery, clock: HealthClock): Promise<Page<InstanceRecord & { health: HealthState }>> {
    const where: string[] = [];
    const params: Record<string, unknown> = { offline_before: clock.offlineBefore, limit: query.limit + 1 };
    if (query.role) {
      where.push('roles_key LIKE @role');
      params.role = `%,${query.role},%`;
    }
    if (query.instanceId) {
      where.push('instance_id = @instance_id');
      params.instance_id = query.instanceId;
    }
    if (query.after) {
      where.push('instance_id > @after');
      params.after = query.after;
    }
    const inner = `SELECT *, ${HEALTH_SQL} AS health FROM instances ${where.length ? 'WHERE ' + where.join(' AND ') : ''}`;
    const outer = `SELECT * FROM (${inner}) ${query.health ? 'WHERE health = @health' : ''} ORDER BY instance_id LIMIT @limit`;
    if (query.health) params.health = query.health;
    const rows = this.db.prepare(outer).all(params) as InstanceRow[];
    const items = rows.slice(0, query.limit).map((r) => ({ ...rowToInstance(r), health: r.health! }));
    return { items, next: rows.length > query.limit ? items[items.length - 1].instanceId : undefined };
  }

  async setAssignment(instanceId: string, assignment: Assignment | null, actor: string, now: number): Promise<InstanceRecord> {
    return this.db.transaction(() => {
      const existing = this.row(instanceId);
      if (!existing) {
        this.db.prepare('INSERT INTO instances (instance_id, created_at, updated_at) VALUES (?, ?, ?)').run(instanceId, now, now);
      }
      this.writeAssignment(instanceId, assignment, now);
      this.audit(actor, assignment ? 'assignment.set' : 'assignment.clear', instanceId, { before: parse(existing?.assignment ?? null), after: assignment }, now);
      return rowToInstance(this.row(instanceId)!);
    })();
  }

  async deleteInstance(instanceId: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const existing = this.row(instanceId);
      if (!existing) return false;
      this.db.prepare('DELETE FROM instances WHERE instance_id = ?').run(instanceId);
      this.audit(actor, 'instance.delete', instanceId, { assignment: parse(existing.assignment) }, now);
      return true;
    })();
  }

  async recordStatus(instanceId: string, appliedGeneration: number, status: InstanceStatus, facts: HostFacts | null): Promise<InstanceRecord | undefined> {
    const row = this.db
      .prepare(
        `UPDATE instances SET applied_generation = ?, status = ?, status_state = ?, teleport_ready = ?,
           facts = COALESCE(?, facts), last_seen_at = ?, updated_at = ? WHERE instance_id = ? RETURNING *`,
      )
      .get(
        appliedGeneration,
        JSON.stringify(status),
        status.state,
        status.teleportReady ? 1 : 0,
        facts ? JSON.stringify(facts) : null,
        status.reportedAt,
        status.reportedAt,
        instanceId,
      ) as InstanceRow | undefined;
    return row ? rowToInstance(row) : undefined;
  }

  async healthSummary(clock: HealthClock): Promise<Array<{ roles: ServiceRole[] | null; health: HealthState; count: number }>> {
    const rows = this.db
      .prepare(`SELECT roles_key, ${HEALTH_SQL} AS health, COUNT(*) AS count FROM instances GROUP BY roles_key, health ORDER BY roles_key, health`)
      .all({ offline_before: clock.offlineBefore }) as Array<{ roles_key: string | null; health: HealthState; count: number }>;
    return rows.map((r) => ({
      roles: r.roles_key ? (r.roles_key.split(',').filter(Boolean) as ServiceRole[]) : null,
      health: r.health,
      count: Number(r.count),
    }));
  }

  private rulesNow(): Rule[] {
    const rows = this.db.prepare('SELECT id, body, created_at FROM rules ORDER BY position').all() as Array<{ id: string; body: string; created_at: number }>;
    return rows.map((r) => ({ ...(JSON.parse(r.body) as RuleInput), id: r.id, createdAt: Number(r.created_at) }));
  }

  async listRules(): Promise<Rule[]> {
    return this.rulesNow();
  }

  async addRule(input: RuleInput, position: number | undefined, actor: string, now: number): Promise<Rule> {
    return this.db.transaction(() => {
      const ids = this.rulesNow().map((r) => r.id);
      const rule: Rule = { ...input, id: randomUUID(), createdAt: now };
      const at = position === undefined ? ids.length : Math.max(0, Math.min(position, ids.length));
      ids.splice(at, 0, rule.id);
      this.db.prepare('INSERT INTO rules (id, position, body, created_at) VALUES (?, ?, ?, ?)').run(rule.id, at, JSON.stringify(input), now);
      this.renumber(ids);
      this.audit(actor, 'rule.add', `rule:${rule.id}`, { rule, position: at }, now);
      return rule;
    })();
  }

  private renumber(ids: string[]): void {
    const update = this.db.prepare('UPDATE rules SET position = ? WHERE id = ?');
    ids.forEach((id, i) => update.run(i, id));
  }

  async deleteRule(id: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const rule = this.rulesNow().find((r) => r.id === id);
      if (!rule) return false;
      this.db.prepare('DELETE FROM rules WHERE id = ?').run(id);
      this.renumber(this.rulesNow().map((r) => r.id));
      this.audit(actor, 'rule.delete', `rule:${id}`, { rule }, now);
      return true;
    })();
  }

  async listAudit(query: { after?: number; limit: number; target?: string }): Promise<AuditEvent[]> {
    const where: string[] = ['id > @after'];
    if (query.target) where.push('target = @target');
    const rows = this.db
      .prepare(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY id LIMIT @limit`)
      .all({ after: query.after ?? 0, target: query.target, limit: query.limit }) as Array<AuditEvent & { details: string }>;
    return rows.map((r) => ({ ...r, at: Number(r.at), details: JSON.parse(r.details) as Record<string, unknown> }));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
