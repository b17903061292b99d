// The embedded store: one SQLite file in WAL mode. better-sqlite3 is
// synchronous; its calls are short, so the async interface just wraps them.
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  DEFAULT_CLUSTER_SETTINGS,
  type Assignment,
  type ClusterSettings,
  type HealthState,
  type HostFacts,
  type InstanceIdentity,
  type ServiceRole,
} from '../../contract/model';
import { restoreHint } from '../data-dir';
import { ConflictError } from '../errors';
import { IntegrityChecker } from './integrity-check';
import { HEALTH_SQL, MIGRATIONS, SCHEMA_VERSION } from './migrations';
import {
  EnrollRefused,
  disallowedRoles,
  firstMatchingRule,
  joinTokenProblem,
  type ApiScope,
  type ApiToken,
  type AuditEvent,
  type AuditRetention,
  type EnrollTrust,
  type IssuedCertificate,
  type JoinToken,
  type Lease,
  type LeaseOutcome,
  type EnrollOutcome,
  type HealthClock,
  type InstanceQuery,
  type InstanceRecord,
  type InstanceStatus,
  type Page,
  type ProxyCertificate,
  type ProxyCertificateState,
  type ServedCertificate,
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
  enrolled_via?: string | null;
  allowed_roles?: string | null;
  health?: HealthState;
}

interface ApiTokenRow {
  id: string;
  name: string;
  scope: string;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
}

interface JoinTokenRow {
  id: string;
  name: string;
  roles: string | null;
  expires_at: number;
  max_uses: number | null;
  uses: number;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
}

interface AuditRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  details: string;
  count: number;
  last_at: number | null;
}

/** Refusals are counted per actor, action and reason in windows of this length. */
export const REFUSAL_WINDOW_MS = 60_000;
/** How soon refusals counted in memory reach the store. */
const REFUSAL_FLUSH_MS = 1000;
/** Windows counted in memory at most; beyond, each refusal is written at once. */
const MAX_PENDING_REFUSALS = 10_000;

const num = (v: number | null) => (v === null ? null : Number(v));

export function rowToApiToken(r: ApiTokenRow): ApiToken {
  return {
    id: r.id,
    name: r.name,
    scope: r.scope as ApiScope,
    createdAt: Number(r.created_at),
    createdBy: r.created_by,
    lastUsedAt: num(r.last_used_at),
    revokedAt: num(r.revoked_at),
  };
}

export function rowToJoinToken(r: JoinTokenRow): JoinToken {
  return {
    id: r.id,
    name: r.name,
    roles: r.roles === null ? null : (JSON.parse(r.roles) as ServiceRole[]),
    expiresAt: Number(r.expires_at),
    maxUses: num(r.max_uses),
    uses: Number(r.uses),
    createdAt: Number(r.created_at),
    createdBy: r.created_by,
    lastUsedAt: num(r.last_used_at),
    revokedAt: num(r.revoked_at),
  };
}

const API_TOKEN_COLUMNS = 'id, name, scope, created_at, created_by, last_used_at, revoked_at';
const JOIN_TOKEN_COLUMNS = 'id, name, roles, expires_at, max_uses, uses, created_at, created_by, last_used_at, revoked_at';

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
    enrolledVia: row.enrolled_via ?? null,
    allowedRoles: parse<ServiceRole[]>(row.allowed_roles ?? null),
  };
}

export const rolesKey = (a: Assignment | null): string | null => (a ? `,${[...a.roles].sort().join(',')},` : null);

interface LeaseRow {
  name: string;
  holder: string;
  fencing: number;
  acquired_at: number;
  expires_at: number;
}

interface ProxyCertificateRow {
  domain: string;
  state: string;
  serial: string | null;
  not_before: number | null;
  not_after: number | null;
  etag: string | null;
  issued_at: number | null;
  checked_at: number | null;
  last_attempt_at: number | null;
  failures: number;
  last_error: string | null;
  next_attempt_at: number | null;
  renew_requested: number;
  updated_at: number;
}

const numOrNull = (v: number | bigint | null): number | null => (v === null ? null : Number(v));

const rowToProxyCertificate = (row: ProxyCertificateRow): ProxyCertificate => ({
  domain: row.domain,
  state: row.state as ProxyCertificateState,
  serial: row.serial,
  notBefore: numOrNull(row.not_before),
  notAfter: numOrNull(row.not_after),
  etag: row.etag,
  issuedAt: numOrNull(row.issued_at),
  checkedAt: numOrNull(row.checked_at),
  lastAttemptAt: numOrNull(row.last_attempt_at),
  failures: Number(row.failures),
  lastError: row.last_error,
  nextAttemptAt: numOrNull(row.next_attempt_at),
  renewRequested: !!row.renew_requested,
  updatedAt: Number(row.updated_at),
});

/** Agents hold leases by instance id; control replicas as "control:{host}:{pid}". */
const leaseActor = (holder: string): string => (holder.startsWith('control:') ? holder : `agent:${holder}`);

const rowToLease = (row: LeaseRow): Lease => ({
  name: row.name,
  holder: row.holder,
  fencing: row.fencing,
  acquiredAt: row.acquired_at,
  expiresAt: row.expires_at,
});

/** The database file cannot be used as it is: names the file, the cause and what to do. */
export class StoreDamagedError extends Error {
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`${path}: ${(cause as Error).message}. teleboot-control will not start on this database: ${restoreHint(dirname(path))}`);
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  /** quick_check on a connection of its own in a worker thread (none for :memory:). */
  private readonly checker: IntegrityChecker | undefined;

  constructor(path: string) {
    this.checker = path === ':memory:' ? undefined : new IntegrityChecker(path);
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Created here with its final mode: SQLite gives the -wal and -shm files the mode of the database.
      closeSync(openSync(path, 'a', 0o600));
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      // FULL syncs the WAL at every commit: an acknowledged change survives a
      // power loss, not only a crash of the process.
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      this.db = db;
      const problem = this.integrityProblem();
      if (problem) throw new Error(`the integrity check (PRAGMA quick_check) failed: ${problem}`);
      this.refuseNewerSchema();
      this.migrate();
    } catch (err) {
      db?.close();
      throw new StoreDamagedError(path, err);
    }
  }

  /**
   * What SQLite's quick check finds wrong with the file (the first lines), or
   * undefined when nothing; a page it cannot read at all is reported too.
   */
  integrityProblem(): string | undefined {
    try {
      const rows = this.db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>;
      const found = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
      return found.length ? found.join('; ') : undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  async checkReadable(): Promise<void> {
    const problem = this.checker ? await this.checker.check() : this.integrityProblem();
    if (problem) throw new Error(`the store cannot be read: ${problem}`);
  }

  private refuseNewerSchema(): void {
    const hasTable = this.sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
    if (!hasTable) return;
    const version = this.schemaVersion();
    if (version > SCHEMA_VERSION)
      throw new Error(
        `its schema version is ${version}, newer than this teleboot-control knows (${SCHEMA_VERSION}): a newer release wrote it. ` +
          'Run that release again, or restore a backup taken with this one',
      );
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, compiled once per SQL text: compiling costs more than running. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  private migrate(): void {
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
    );
    const applied = new Set(this.sql('SELECT version FROM schema_migrations').pluck().all() as number[]);
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.sql('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      })();
    }
  }

  /** The cluster this store belongs to: made at first start; undefined before. */
  clusterId(): string | undefined {
    return this.sql('SELECT cluster_id FROM cluster_identity WHERE id = 1').pluck().get() as string | undefined;
  }

  /** Records (or, for a new cluster started on purpose, replaces) the cluster's identity. */
  recordClusterId(clusterId: string, now: number): void {
    this.sql(
      'INSERT INTO cluster_identity (id, cluster_id, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET cluster_id = excluded.cluster_id, created_at = excluded.created_at',
    ).run(clusterId, now);
  }

  /** Whether a server ever ran on this store: it made an API token or knows an instance. */
  hasRecords(): boolean {
    return !!this.sql('SELECT EXISTS (SELECT 1 FROM api_tokens) OR EXISTS (SELECT 1 FROM instances)').pluck().get();
  }

  schemaVersion(): number {
    return this.sql('SELECT COALESCE(MAX(version), 0) FROM schema_migrations').pluck().get() as number;
  }

  private audit(actor: string, action: string, target: string, details: Record<string, unknown>, now: number): void {
    this.sql('INSERT INTO audit_events (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)').run(
      now,
      actor,
      action,
      target,
      JSON.stringify(details),
    );
  }

  private row(instanceId: string): InstanceRow | undefined {
    return this.sql('SELECT * FROM instances WHERE instance_id = ?').get(instanceId) as InstanceRow | undefined;
  }

  async getSettings(): Promise<ClusterSettings> {
    const body = this.sql('SELECT body FROM settings WHERE id = 1').pluck().get() as string | undefined;
    return body ? { ...DEFAULT_CLUSTER_SETTINGS, ...(JSON.parse(body) as ClusterSettings) } : { ...DEFAULT_CLUSTER_SETTINGS };
  }

  async updateSettings(settings: ClusterSettings, actor: string, now: number): Promise<string[]> {
    return this.db.transaction(() => {
      const before = this.sql('SELECT body FROM settings WHERE id = 1').pluck().get() as string | undefined;
      this.sql(
        'INSERT INTO settings (id, body, updated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at',
      ).run(JSON.stringify(settings), now);
      const bumped = this.sql(
        'UPDATE instances SET generation = generation + 1, updated_at = ? WHERE assignment IS NOT NULL RETURNING instance_id',
      )
        .pluck()
        .all(now) as string[];
      this.audit(actor, 'settings.update', 'settings', { before: before ? JSON.parse(before) : null, after: settings }, now);
      return bumped;
    })();
  }

  /** The trust checks of an enrollment; throws EnrollRefused (the transaction then writes nothing). */
  private applyTrust(instanceId: string, existing: InstanceRow | undefined, trust: EnrollTrust, now: number): void {
    const binding = this.sql('SELECT nonce_hash FROM instance_bindings WHERE instance_id = ?').pluck().get(instanceId) as
      string | undefined;
    if (binding !== undefined) {
      if (!trust.nonceHash)
        throw new EnrollRefused(
          'nonce-required',
          `instance ${instanceId} is bound to the nonce of its first enrollment; this request has none`,
        );
      if (trust.nonceHash !== binding)
        throw new EnrollRefused(
          'nonce-mismatch',
          `instance ${instanceId} is bound to another nonce: an identity presented by a different machine is refused (an operator can reset the binding)`,
        );
      this.sql('UPDATE instance_bindings SET last_used_at = ? WHERE instance_id = ?').run(now, instanceId);
    } else if (trust.nonceHash) {
      this.sql('INSERT INTO instance_bindings (instance_id, nonce_hash, method, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)').run(
        instanceId,
        trust.nonceHash,
        trust.enrolledVia ?? 'unknown',
        now,
        now,
      );
    }
    const assigned = parse<Assignment>(existing?.assignment ?? null);
    const outside = assigned ? disallowedRoles(assigned.roles, trust.allowedRoles) : [];
    if (outside.length) {
      throw new EnrollRefused(
        'role-not-allowed',
        `instance ${instanceId} is assigned ${outside.join(', ')}, which its join token does not allow (it allows ${trust.allowedRoles!.join(', ')})`,
      );
    }
    if (trust.joinTokenId) {
      const row = this.sql(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE id = ?`).get(trust.joinTokenId) as JoinTokenRow | undefined;
      const problem = row ? joinTokenProblem(rowToJoinToken(row), now) : 'join token not recognised';
      if (problem) throw new EnrollRefused('token-unusable', problem);
      this.sql('UPDATE join_tokens SET uses = uses + 1, last_used_at = ? WHERE id = ?').run(now, trust.joinTokenId);
    }
    if (trust.certificate) {
      this.sql('INSERT INTO client_certificates (serial, instance_id, issued_at, expires_at) VALUES (?, ?, ?, ?)').run(
        trust.certificate.serial,
        instanceId,
        now,
        trust.certificate.expiresAt,
      );
    }
  }

  async enroll(identity: InstanceIdentity, actor: string, now: number, trust: EnrollTrust = {}): Promise<EnrollOutcome> {
    return this.db.transaction((): EnrollOutcome => {
      const existing = this.row(identity.instanceId);
      this.applyTrust(identity.instanceId, existing, trust, now);
      const via = trust.enrolledVia ?? null;
      const allowed = trust.allowedRoles ? JSON.stringify(trust.allowedRoles) : null;
      if (!existing) {
        this.sql(
          'INSERT INTO instances (instance_id, identity, enrolled_at, last_seen_at, created_at, updated_at, enrolled_via, allowed_roles) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        ).run(identity.instanceId, JSON.stringify(identity), now, now, now, now, via, allowed);
      } else {
        this.sql(
          'UPDATE instances SET identity = ?, enrolled_at = ?, last_seen_at = ?, updated_at = ?, enrolled_via = ?, allowed_roles = ? WHERE instance_id = ?',
        ).run(JSON.stringify(identity), now, now, now, via, allowed, identity.instanceId);
      }
      this.audit(
        actor,
        'instance.enroll',
        identity.instanceId,
        {
          firstEnrollment: !existing?.enrolled_at,
          region: identity.region,
          privateIp: identity.privateIp,
          via,
          ...(trust.allowedRoles ? { allowedRoles: trust.allowedRoles } : {}),
        },
        now,
      );
      let matchedRule: Rule | undefined;
      if (!existing?.assignment) {
        matchedRule = firstMatchingRule(this.rulesNow(), identity.tags);
        const outside = matchedRule ? disallowedRoles(matchedRule.roles, trust.allowedRoles) : [];
        if (matchedRule && outside.length) {
          this.audit(
            `rule:${matchedRule.id}`,
            'assignment.refused',
            identity.instanceId,
            { rule: matchedRule.name, roles: matchedRule.roles, allowedRoles: trust.allowedRoles, via },
            now,
          );
          matchedRule = undefined;
        }
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
    this.sql('UPDATE instances SET assignment = ?, roles_key = ?, generation = generation + 1, updated_at = ? WHERE instance_id = ?').run(
      assignment ? JSON.stringify(assignment) : null,
      rolesKey(assignment),
      now,
      instanceId,
    );
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
    const rows = this.sql(outer).all(params) as InstanceRow[];
    const items = rows.slice(0, query.limit).map((r) => ({ ...rowToInstance(r), health: r.health! }));
    return { items, next: rows.length > query.limit ? items[items.length - 1].instanceId : undefined };
  }

  async setAssignment(instanceId: string, assignment: Assignment | null, actor: string, now: number): Promise<InstanceRecord> {
    return this.db.transaction(() => {
      const existing = this.row(instanceId);
      if (!existing) {
        this.sql('INSERT INTO instances (instance_id, created_at, updated_at) VALUES (?, ?, ?)').run(instanceId, now, now);
      }
      this.writeAssignment(instanceId, assignment, now);
      this.audit(
        actor,
        assignment ? 'assignment.set' : 'assignment.clear',
        instanceId,
        { before: parse(existing?.assignment ?? null), after: assignment },
        now,
      );
      return rowToInstance(this.row(instanceId)!);
    })();
  }

  async deleteInstance(instanceId: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const existing = this.row(instanceId);
      if (!existing) return false;
      this.sql('DELETE FROM instances WHERE instance_id = ?').run(instanceId);
      // Its client certificates stop working at once; the binding stays, so
      // only the same machine (its nonce) can enroll under this id again.
      const revoked = this.sql('UPDATE client_certificates SET revoked_at = ? WHERE instance_id = ? AND revoked_at IS NULL').run(
        now,
        instanceId,
      ).changes;
      this.audit(actor, 'instance.delete', instanceId, { assignment: parse(existing.assignment), revokedCertificates: revoked }, now);
      return true;
    })();
  }

  /**
   * Status reports are heartbeats: the next one replaces this one. They skip
   * the fsync (WAL, synchronous=NORMAL), so a power loss can cost at most the
   * latest reports, never an assignment, rule, setting or audit event, whose
   * commits keep synchronous=FULL (and sync everything written before them).
   */
  private relaxed<T>(write: () => T): T {
    this.sql('PRAGMA synchronous = NORMAL').run();
    try {
      return write();
    } finally {
      this.sql('PRAGMA synchronous = FULL').run();
    }
  }

  async recordStatus(
    instanceId: string,
    appliedGeneration: number,
    status: InstanceStatus,
    facts: HostFacts | null,
  ): Promise<InstanceRecord | undefined> {
    const update = this.sql(
      `UPDATE instances SET applied_generation = ?, status = ?, status_state = ?, teleport_ready = ?,
         facts = COALESCE(?, facts), last_seen_at = ?, updated_at = ? WHERE instance_id = ? RETURNING *`,
    );
    const row = this.relaxed(
      () =>
        update.get(
          appliedGeneration,
          JSON.stringify(status),
          status.state,
          status.teleportReady ? 1 : 0,
          facts ? JSON.stringify(facts) : null,
          status.reportedAt,
          status.reportedAt,
          instanceId,
        ) as InstanceRow | undefined,
    );
    return row ? rowToInstance(row) : undefined;
  }

  async healthSummary(clock: HealthClock): Promise<Array<{ roles: ServiceRole[] | null; health: HealthState; count: number }>> {
    const rows = this.sql(
      `SELECT roles_key, ${HEALTH_SQL} AS health, COUNT(*) AS count FROM instances GROUP BY roles_key, health ORDER BY roles_key, health`,
    ).all({ offline_before: clock.offlineBefore }) as Array<{ roles_key: string | null; health: HealthState; count: number }>;
    return rows.map((r) => ({
      roles: r.roles_key ? (r.roles_key.split(',').filter(Boolean) as ServiceRole[]) : null,
      health: r.health,
      count: Number(r.count),
    }));
  }

  async distinctAssignments(): Promise<Assignment[]> {
    const bodies = this.sql('SELECT DISTINCT assignment FROM instances WHERE assignment IS NOT NULL').pluck().all() as string[];
    return bodies.map((b) => JSON.parse(b) as Assignment);
  }

  private rulesNow(): Rule[] {
    const rows = this.sql('SELECT id, body, created_at FROM rules ORDER BY position').all() as Array<{
      id: string;
      body: string;
      created_at: number;
    }>;
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
      this.sql('INSERT INTO rules (id, position, body, created_at) VALUES (?, ?, ?, ?)').run(rule.id, at, JSON.stringify(input), now);
      this.renumber(ids);
      this.audit(actor, 'rule.add', `rule:${rule.id}`, { rule, position: at }, now);
      return rule;
    })();
  }

  private renumber(ids: string[]): void {
    const update = this.sql('UPDATE rules SET position = ? WHERE id = ?');
    ids.forEach((id, i) => update.run(i, id));
  }

  async deleteRule(id: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const rule = this.rulesNow().find((r) => r.id === id);
      if (!rule) return false;
      this.sql('DELETE FROM rules WHERE id = ?').run(id);
      this.renumber(this.rulesNow().map((r) => r.id));
      this.audit(actor, 'rule.delete', `rule:${id}`, { rule }, now);
      return true;
    })();
  }

  async listAudit(query: { after?: number; limit: number; target?: string }): Promise<AuditEvent[]> {
    this.flushRefusals();
    const where: string[] = ['id > @after'];
    if (query.target) where.push('target = @target');
    const rows = this.sql(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY id LIMIT @limit`).all({
      after: query.after ?? 0,
      target: query.target,
      limit: query.limit,
    }) as AuditRow[];
    return rows.map((r) => ({
      id: r.id,
      at: Number(r.at),
      actor: r.actor,
      action: r.action,
      target: r.target,
      details: JSON.parse(r.details) as Record<string, unknown>,
      count: Number(r.count),
      lastAt: numOrNull(r.last_at),
    }));
  }

  async recordAudit(actor: string, action: string, target: string, details: Record<string, unknown>, now: number): Promise<void> {
    this.audit(actor, action, target, details, now);
  }

  async recordRefusal(
    actor: string,
    action: string,
    target: string,
    details: Record<string, unknown> & { reason: string },
    now: number,
  ): Promise<void> {
    const window = Math.floor(now / REFUSAL_WINDOW_MS);
    const key = JSON.stringify([actor, action, details.reason, window]);
    const pending = this.pendingRefusals.get(key);
    // Later refusals of a window this process already recorded are counted
    // in memory and added to the row within a second: a flood costs no write each.
    if (pending) {
      pending.count++;
      pending.lastAt = now;
      this.refusalFlush ??= setTimeout(() => this.flushRefusals(), REFUSAL_FLUSH_MS).unref();
      return;
    }
    // The first one is written at once (another replica may have written it already).
    this.sql(
      `INSERT INTO audit_events (at, actor, action, target, details, count, last_at, window_key) VALUES (?, ?, ?, ?, ?, 1, NULL, ?)
       ON CONFLICT (window_key) WHERE window_key IS NOT NULL DO UPDATE SET count = count + 1, last_at = excluded.at`,
    ).run(now, actor, action, target, JSON.stringify(details), key);
    if (this.pendingRefusals.size < MAX_PENDING_REFUSALS) this.pendingRefusals.set(key, { window, count: 0, lastAt: now });
  }

  private readonly pendingRefusals = new Map<string, { window: number; count: number; lastAt: number }>();
  private refusalFlush: NodeJS.Timeout | undefined;

  /** Adds the refusals counted in memory to their rows; forgets the windows that have passed. */
  private flushRefusals(): void {
    clearTimeout(this.refusalFlush);
    this.refusalFlush = undefined;
    if (!this.pendingRefusals.size || !this.db.open) return;
    const current = Math.floor(Date.now() / REFUSAL_WINDOW_MS);
    this.db.transaction(() => {
      for (const [key, p] of this.pendingRefusals) {
        if (p.count > 0)
          this.sql('UPDATE audit_events SET count = count + ?, last_at = MAX(COALESCE(last_at, at), ?) WHERE window_key = ?').run(
            p.count,
            p.lastAt,
            key,
          );
        p.count = 0;
        if (p.window < current) this.pendingRefusals.delete(key);
      }
    })();
  }

  async pruneAudit(retention: AuditRetention, now: number): Promise<number> {
    const cutoff = now - retention.maxAgeMs;
    // The id below which rows are beyond the cap: the maxRows-th newest.
    const capId = this.sql('SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET ?')
      .pluck()
      .get(Math.max(0, retention.maxRows - 1)) as number | undefined;
    let deleted = 0;
    // In batches: a large first prune must not hold the write lock for long.
    for (;;) {
      const batch = this.sql(
        'DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < @cutoff OR id < @capId ORDER BY id LIMIT 5000)',
      ).run({ cutoff, capId: capId ?? 0 }).changes;
      deleted += batch;
      if (batch < 5000) break;
    }
    if (deleted > 0)
      this.audit('control', 'audit.pruned', 'audit', { deleted, maxAgeMs: retention.maxAgeMs, maxRows: retention.maxRows }, now);
    return deleted;
  }

  async storeBytes(): Promise<number> {
    const pages = (this.db.pragma('page_count', { simple: true }) as number) * (this.db.pragma('page_size', { simple: true }) as number);
    let wal = 0;
    try {
      wal = statSync(`${this.db.name}-wal`).size;
    } catch {
      // No write-ahead log (in memory, or checkpointed and removed).
    }
    return pages + wal;
  }

  async resetBinding(instanceId: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const gone = this.sql('DELETE FROM instance_bindings WHERE instance_id = ?').run(instanceId).changes > 0;
      if (gone) this.audit(actor, 'binding.reset', instanceId, {}, now);
      return gone;
    })();
  }

  async getCertificate(serial: string): Promise<IssuedCertificate | undefined> {
    const r = this.sql('SELECT * FROM client_certificates WHERE serial = ?').get(serial) as
      { serial: string; instance_id: string; issued_at: number; expires_at: number; revoked_at: number | null } | undefined;
    return (
      r && {
        serial: r.serial,
        instanceId: r.instance_id,
        issuedAt: Number(r.issued_at),
        expiresAt: Number(r.expires_at),
        revokedAt: num(r.revoked_at),
      }
    );
  }

  async createApiToken(
    token: { id: string; name: string; scope: ApiScope; tokenHash: string },
    actor: string,
    now: number,
  ): Promise<ApiToken> {
    return this.db.transaction(() => {
      const taken = this.sql('SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL').get(token.name);
      if (taken) throw new ConflictError(`an active API token named "${token.name}" exists; revoke it first or choose another name`);
      this.sql('INSERT INTO api_tokens (id, name, scope, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)').run(
        token.id,
        token.name,
        token.scope,
        token.tokenHash,
        now,
        actor,
      );
      this.audit(actor, 'api_token.create', `api-token:${token.id}`, { name: token.name, scope: token.scope }, now);
      return rowToApiToken(this.sql(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?`).get(token.id) as ApiTokenRow);
    })();
  }

  async listApiTokens(): Promise<ApiToken[]> {
    return (this.sql(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id`).all() as ApiTokenRow[]).map(rowToApiToken);
  }

  async findApiToken(tokenHash: string): Promise<ApiToken | undefined> {
    const r = this.sql(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL`).get(tokenHash) as
      ApiTokenRow | undefined;
    return r && rowToApiToken(r);
  }

  async touchApiToken(id: string, now: number): Promise<void> {
    this.sql('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(now, id);
  }

  async revokeApiToken(idOrName: string, actor: string, now: number): Promise<ApiToken | undefined> {
    return this.db.transaction(() => {
      const r = this.sql(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens WHERE (id = ? OR name = ?) AND revoked_at IS NULL`).get(
        idOrName,
        idOrName,
      ) as ApiTokenRow | undefined;
      if (!r) return undefined;
      this.sql('UPDATE api_tokens SET revoked_at = ? WHERE id = ?').run(now, r.id);
      this.audit(actor, 'api_token.revoke', `api-token:${r.id}`, { name: r.name, scope: r.scope }, now);
      return { ...rowToApiToken(r), revokedAt: now };
    })();
  }

  async countApiTokens(): Promise<number> {
    return Number(this.sql('SELECT COUNT(*) FROM api_tokens').pluck().get());
  }

  async createJoinToken(
    token: Omit<JoinToken, 'uses' | 'lastUsedAt' | 'revokedAt' | 'createdAt' | 'createdBy'> & { tokenHash: string },
    actor: string,
    now: number,
  ): Promise<JoinToken> {
    return this.db.transaction(() => {
      this.sql(
        'INSERT INTO join_tokens (id, name, token_hash, roles, expires_at, max_uses, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(
        token.id,
        token.name,
        token.tokenHash,
        token.roles ? JSON.stringify(token.roles) : null,
        token.expiresAt,
        token.maxUses,
        now,
        actor,
      );
      const created = rowToJoinToken(this.sql(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE id = ?`).get(token.id) as JoinTokenRow);
      this.audit(
        actor,
        'join_token.create',
        `join-token:${token.id}`,
        { name: token.name, roles: token.roles, expiresAt: new Date(token.expiresAt).toISOString(), maxUses: token.maxUses },
        now,
      );
      return created;
    })();
  }

  async listJoinTokens(): Promise<JoinToken[]> {
    return (this.sql(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens ORDER BY created_at, id`).all() as JoinTokenRow[]).map(rowToJoinToken);
  }

  async findJoinToken(tokenHash: string): Promise<JoinToken | undefined> {
    const r = this.sql(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE token_hash = ?`).get(tokenHash) as JoinTokenRow | undefined;
    return r && rowToJoinToken(r);
  }

  async revokeJoinToken(id: string, actor: string, now: number): Promise<JoinToken | undefined> {
    return this.db.transaction(() => {
      const r = this.sql(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE id = ? AND revoked_at IS NULL`).get(id) as
        JoinTokenRow | undefined;
      if (!r) return undefined;
      this.sql('UPDATE join_tokens SET revoked_at = ? WHERE id = ?').run(now, id);
      this.audit(actor, 'join_token.revoke', `join-token:${id}`, { name: r.name }, now);
      return { ...rowToJoinToken(r), revokedAt: now };
    })();
  }

  async listProxyCertificates(): Promise<ProxyCertificate[]> {
    return (this.sql('SELECT * FROM proxy_certificates ORDER BY domain').all() as ProxyCertificateRow[]).map(rowToProxyCertificate);
  }

  async getProxyCertificate(domain: string): Promise<ProxyCertificate | undefined> {
    const row = this.sql('SELECT * FROM proxy_certificates WHERE domain = ?').get(domain) as ProxyCertificateRow | undefined;
    return row && rowToProxyCertificate(row);
  }

  async saveProxyCertificate(
    cert: ProxyCertificate,
    audit?: { actor: string; action: string; details: Record<string, unknown> },
  ): Promise<void> {
    this.db.transaction(() => {
      this.sql(
        `INSERT INTO proxy_certificates (domain, state, serial, not_before, not_after, etag, issued_at, checked_at, last_attempt_at, failures, last_error, next_attempt_at, renew_requested, updated_at)
         VALUES (@domain, @state, @serial, @notBefore, @notAfter, @etag, @issuedAt, @checkedAt, @lastAttemptAt, @failures, @lastError, @nextAttemptAt, @renewRequested, @updatedAt)
         ON CONFLICT (domain) DO UPDATE SET state = excluded.state, serial = excluded.serial, not_before = excluded.not_before, not_after = excluded.not_after,
           etag = excluded.etag, issued_at = excluded.issued_at, checked_at = excluded.checked_at, last_attempt_at = excluded.last_attempt_at,
           failures = excluded.failures, last_error = excluded.last_error, next_attempt_at = excluded.next_attempt_at,
           renew_requested = excluded.renew_requested, updated_at = excluded.updated_at`,
      ).run({ ...cert, renewRequested: cert.renewRequested ? 1 : 0 });
      if (audit) this.audit(audit.actor, audit.action, `certificate:${cert.domain}`, audit.details, cert.updatedAt);
    })();
  }

  async requestRenewal(domain: string, actor: string, now: number): Promise<boolean> {
    return this.db.transaction(() => {
      const changed =
        this.sql('UPDATE proxy_certificates SET renew_requested = 1, next_attempt_at = NULL, updated_at = ? WHERE domain = ?').run(
          now,
          domain,
        ).changes > 0;
      if (changed) this.audit(actor, 'certificate.renew_requested', `certificate:${domain}`, {}, now);
      return changed;
    })();
  }

  async listServedCertificates(): Promise<ServedCertificate[]> {
    const rows = this.sql(
      `SELECT instance_id, json_extract(status, '$.certificateExpiresAt') AS expires_at, json_extract(status, '$.reportedAt') AS reported_at
       FROM instances WHERE json_extract(status, '$.certificateExpiresAt') IS NOT NULL ORDER BY expires_at, instance_id`,
    ).all() as Array<{ instance_id: string; expires_at: number; reported_at: number }>;
    return rows.map((r) => ({ instanceId: r.instance_id, expiresAt: Number(r.expires_at), reportedAt: Number(r.reported_at) }));
  }

  async putAcmeChallenge(token: string, keyAuthorization: string, domain: string, expiresAt: number): Promise<void> {
    this.sql(
      `INSERT INTO acme_challenges (token, key_authorization, domain, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization, domain = excluded.domain, expires_at = excluded.expires_at`,
    ).run(token, keyAuthorization, domain, expiresAt);
  }

  async getAcmeChallenge(token: string, now: number): Promise<string | undefined> {
    return this.sql('SELECT key_authorization FROM acme_challenges WHERE token = ? AND expires_at > ?').pluck().get(token, now) as
      string | undefined;
  }

  async deleteAcmeChallenge(token: string): Promise<void> {
    this.sql('DELETE FROM acme_challenges WHERE token = ?').run(token);
  }

  async getLease(name: string): Promise<Lease | undefined> {
    const row = this.sql('SELECT * FROM leases WHERE name = ?').get(name) as LeaseRow | undefined;
    return row && rowToLease(row);
  }

  async acquireLease(name: string, holder: string, now: number, periodMs: number): Promise<LeaseOutcome> {
    return this.db.transaction((): LeaseOutcome => {
      const row = this.sql('SELECT * FROM leases WHERE name = ?').get(name) as LeaseRow | undefined;
      if (row && row.expires_at > now) {
        if (row.holder !== holder) return { lease: rowToLease(row), granted: false };
        this.sql('UPDATE leases SET expires_at = ? WHERE name = ?').run(now + periodMs, name);
        return { lease: { ...rowToLease(row), expiresAt: now + periodMs }, granted: true };
      }
      // Free or expired: a new holding, with a higher fencing number (even for the same holder).
      const fencing = (row?.fencing ?? 0) + 1;
      this.sql(
        `INSERT INTO leases (name, holder, fencing, acquired_at, expires_at) VALUES (@name, @holder, @fencing, @now, @expires)
         ON CONFLICT (name) DO UPDATE SET holder = @holder, fencing = @fencing, acquired_at = @now, expires_at = @expires`,
      ).run({ name, holder, fencing, now, expires: now + periodMs });
      this.audit(
        leaseActor(holder),
        'lease.acquire',
        `lease:${name}`,
        { holder, fencing, previousHolder: row?.holder ?? null, previousExpiredAt: row ? new Date(row.expires_at).toISOString() : null },
        now,
      );
      return { lease: { name, holder, fencing, acquiredAt: now, expiresAt: now + periodMs }, granted: true };
    })();
  }

  async renewLease(name: string, holder: string, fencing: number, now: number, periodMs: number): Promise<LeaseOutcome> {
    return this.db.transaction((): LeaseOutcome => {
      const row = this.sql('SELECT * FROM leases WHERE name = ?').get(name) as LeaseRow | undefined;
      if (!row || row.holder !== holder || row.fencing !== fencing || row.expires_at <= now)
        return { lease: row && rowToLease(row), granted: false };
      this.sql('UPDATE leases SET expires_at = ? WHERE name = ?').run(now + periodMs, name);
      return { lease: { ...rowToLease(row), expiresAt: now + periodMs }, granted: true };
    })();
  }

  async releaseLease(name: string, holder: string, fencing: number, now: number): Promise<LeaseOutcome> {
    return this.db.transaction((): LeaseOutcome => {
      const row = this.sql('SELECT * FROM leases WHERE name = ?').get(name) as LeaseRow | undefined;
      if (!row || row.holder !== holder || row.fencing !== fencing || row.expires_at <= now)
        return { lease: row && rowToLease(row), granted: false };
      this.sql('UPDATE leases SET expires_at = ? WHERE name = ?').run(now, name);
      this.audit(leaseActor(holder), 'lease.release', `lease:${name}`, { holder, fencing }, now);
      return { lease: { ...rowToLease(row), expiresAt: now }, granted: false };
    })();
  }

  async close(): Promise<void> {
    this.flushRefusals();
    await this.checker?.close();
    this.db.close();
  }
}
