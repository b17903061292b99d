// The repositories: every statement the store runs, written once in the SQL
// that SQLite and PostgreSQL share, each returning records, not rows. No
// rules here: what may be written is decided in record-store.ts.
import type { Assignment, ClusterSettings, HealthState, HostFacts, InstanceIdentity, ServiceRole } from '../../contract/model';
import type { Sql, SqlDialect } from './engine';
import { HEALTH_SQL, STANDING_HEALTH_SQL, healthOf } from './health';
import {
  INSTANCE_COLUMNS,
  INSTANCE_VIEW_COLUMNS,
  inChunks,
  marks,
  rolesKey,
  rowToApiToken,
  rowToAudit,
  rowToCertificate,
  rowToInstance,
  rowToJoinToken,
  rowToLease,
  rowToProxyCertificate,
  rowToRule,
  type ApiTokenRow,
  type AuditRow,
  type CertificateRow,
  type InstanceRow,
  type InstanceViewRow,
  type JoinTokenRow,
  type ListedInstance,
  type LeaseRow,
  type ProxyCertificateRow,
  type RuleRow,
} from './rows';
import type {
  ApiScope,
  ApiToken,
  AuditEvent,
  HealthClock,
  InstanceQuery,
  InstanceRecord,
  InstanceStatus,
  IssuedCertificate,
  JoinToken,
  Lease,
  Page,
  ProxyCertificate,
  Rule,
  RuleInput,
  ServedCertificate,
} from './store';

const API_TOKEN_COLUMNS = 'id, name, scope, created_at, created_by, last_used_at, revoked_at';
const JOIN_TOKEN_COLUMNS = 'id, name, roles, expires_at, max_uses, uses, created_at, created_by, last_used_at, revoked_at';
/** The documents that carry a version (the versions table). */
export type VersionedDocument = 'settings' | 'rules';

const LEASE_COLUMNS = 'name, holder, fencing, acquired_at, expires_at';
/** Audit rows pruned per statement: a large first prune must not hold the write lock for long. */
const PRUNE_BATCH = 5000;

export type HealthCount = { roles: ServiceRole[] | null; health: HealthState; count: number };

const VIEW_COLUMNS = INSTANCE_VIEW_COLUMNS.join(', ');

/** A page of view rows as ListedInstances with their columns; `versioned`: each row's row_version follows its columns. */
function withColumns<T>(page: Page<InstanceViewRow>, versioned: boolean): Page<ListedInstance<T>> {
  const items = page.items.map((row) => ({ id: String(row[0]), version: versioned ? Number(row[row.length - 1]) : null, row }));
  return { items, next: page.next };
}

const json = (value: unknown): string | null => (value === null || value === undefined ? null : JSON.stringify(value));

export class Records {
  constructor(
    private readonly sql: Sql,
    private readonly dialect: SqlDialect,
  ) {}

  /** Writers that decide on the same name (an instance, a token, a lease) take turns until the transaction ends. */
  async lock(...names: string[]): Promise<void> {
    const statement = this.dialect.lockSql;
    if (statement) for (const name of names) await this.sql.run(statement, [name]);
  }

  // Settings

  async settings(): Promise<ClusterSettings | undefined> {
    const row = await this.sql.get<{ body: string }>('SELECT body FROM settings WHERE id = 1');
    return row && (JSON.parse(row.body) as ClusterSettings);
  }

  async saveSettings(settings: ClusterSettings, now: number): Promise<void> {
    await this.sql.run(
      'INSERT INTO settings (id, body, updated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at',
      [JSON.stringify(settings), now],
    );
  }

  // Instances

  async instance(instanceId: string): Promise<InstanceRecord | undefined> {
    const row = await this.sql.get<InstanceRow>(`SELECT ${INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?`, [instanceId]);
    return row && rowToInstance(row);
  }

  /** The instances of `instanceIds` that exist, in one statement per few hundred ids. */
  async instancesOf(instanceIds: readonly string[]): Promise<InstanceRecord[]> {
    const rows = await inChunks(instanceIds, (ids) =>
      this.sql.all<InstanceRow>(`SELECT ${INSTANCE_COLUMNS} FROM instances WHERE instance_id IN (${marks(ids)})`, ids),
    );
    return rows.map(rowToInstance);
  }

  async insertInstance(instanceId: string, now: number): Promise<void> {
    await this.sql.run('INSERT INTO instances (instance_id, created_at, updated_at) VALUES (?, ?, ?)', [instanceId, now, now]);
  }

  /** Creates or updates the instance as enrolled now. */
  async saveEnrollment(
    identity: InstanceIdentity,
    exists: boolean,
    via: string | null,
    allowedRoles: ServiceRole[] | null,
    now: number,
  ): Promise<void> {
    const params = [JSON.stringify(identity), now, now, now, via, json(allowedRoles), identity.instanceId];
    await this.sql.run(
      exists
        ? 'UPDATE instances SET identity = ?, enrolled_at = ?, last_seen_at = ?, updated_at = ?, enrolled_via = ?, allowed_roles = ? WHERE instance_id = ?'
        : 'INSERT INTO instances (identity, enrolled_at, last_seen_at, updated_at, enrolled_via, allowed_roles, instance_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      exists ? params : [...params, now],
    );
  }

  /** Sets the assignment and bumps the instance's generation. */
  async saveAssignment(instanceId: string, assignment: Assignment | null, now: number): Promise<void> {
    await this.sql.run(
      'UPDATE instances SET assignment = ?, roles_key = ?, generation = generation + 1, updated_at = ? WHERE instance_id = ?',
      [json(assignment), rolesKey(assignment), now, instanceId],
    );
  }

  /** Bumps the generation of every assigned instance; their ids. */
  async bumpAssignedGenerations(now: number): Promise<string[]> {
    const rows = await this.sql.all<{ instance_id: string }>(
      'UPDATE instances SET generation = generation + 1, updated_at = ? WHERE assignment IS NOT NULL RETURNING instance_id',
      [now],
    );
    return rows.map((r) => r.instance_id);
  }

  async deleteInstance(instanceId: string): Promise<boolean> {
    return (await this.sql.run('DELETE FROM instances WHERE instance_id = ?', [instanceId])) > 0;
  }

  async saveStatus(
    instanceId: string,
    appliedGeneration: number,
    status: InstanceStatus,
    facts: HostFacts | null,
  ): Promise<InstanceRecord | undefined> {
    const row = await this.sql.get<InstanceRow>(
      `UPDATE instances SET applied_generation = ?, status = ?, status_state = ?, teleport_ready = ?,
         teleport_version = ?,
         facts = COALESCE(?, facts), last_seen_at = ?, updated_at = ? WHERE instance_id = ? RETURNING *`,
      [
        appliedGeneration,
        JSON.stringify(status),
        status.state,
        status.teleportReady ? 1 : 0,
        status.teleportVersion ?? null,
        json(facts),
        status.reportedAt,
        status.reportedAt,
        instanceId,
      ],
    );
    return row && rowToInstance(row);
  }

  async instances(query: InstanceQuery, clock: HealthClock): Promise<Page<InstanceRecord & { health: HealthState }>> {
    const { text, params } = pageQuery(query, clock, INSTANCE_COLUMNS);
    const rows = await this.sql.all<InstanceRow>(text, params);
    // The health from the same rules in TypeScript (health.ts): cheaper per row than the SQL expression.
    const items = rows.slice(0, query.limit).map((row) => {
      const record = rowToInstance(row);
      return Object.assign(record, { health: healthOf(record, clock) });
    });
    return { items, next: rows.length > query.limit ? items[items.length - 1].instanceId : undefined };
  }

  /**
   * A page of instances for the REST list, which renders most from a cache:
   * `cachedView` gives what the caller keeps of an instance at a row version.
   * On SQLite every row comes with its columns. On PostgreSQL the page's
   * versions are read first, then the columns of the rows the caller keeps
   * nothing of at their version: a page of unchanged rows is a few bytes
   * a row, not its documents.
   */
  async instanceViews<T>(
    query: InstanceQuery,
    clock: HealthClock,
    cachedView: (id: string, version: number) => T | undefined,
  ): Promise<Page<ListedInstance<T>>> {
    if (!this.dialect.instanceRowVersions) return withColumns(await this.arrayPage(query, clock, VIEW_COLUMNS), false);
    const { items: versions, next } = await this.arrayPage(query, clock, 'instance_id, row_version');
    const items: Array<ListedInstance<T>> = [];
    const missing: Array<ListedInstance<T>> = [];
    for (const [rawId, rawVersion] of versions) {
      const item: ListedInstance<T> = { id: String(rawId), version: Number(rawVersion) };
      item.cached = cachedView(item.id, item.version!);
      items.push(item);
      if (item.cached === undefined) missing.push(item);
    }
    if (missing.length === 0) return { items, next };
    // PostgreSQL only (instanceRowVersions): one statement text for any number of ids.
    const rows = await this.sql.arrays(`SELECT ${VIEW_COLUMNS}, row_version FROM instances WHERE instance_id = ANY(?)`, [
      missing.map((i) => i.id),
    ]);
    const byId = new Map(rows.map((row) => [String(row[0]), row]));
    for (const item of missing) {
      const row = byId.get(item.id);
      // Changed or deleted since the versions were read: the whole page again in one statement, so that every row
      // is of one moment and still matches the filter.
      if (!row || Number(row[row.length - 1]) !== item.version)
        return withColumns(await this.arrayPage(query, clock, `${VIEW_COLUMNS}, row_version`), true);
      item.row = row;
    }
    return { items, next };
  }

  /** A page of `columns` as arrays (the first column the instance id), and the next page's cursor. */
  private async arrayPage(query: InstanceQuery, clock: HealthClock, columns: string): Promise<Page<unknown[]>> {
    const { text, params } = pageQuery(query, clock, columns);
    const rows = await this.sql.arrays(text, params);
    const items = rows.length > query.limit ? rows.slice(0, query.limit) : rows;
    return { items, next: rows.length > query.limit ? String(items[items.length - 1][0]) : undefined };
  }

  /**
   * Counts by role set and health: the standing health from the counts the
   * instances triggers keep (health-counting.ts), then the instances last
   * seen before the offline instant moved to "offline" (a range of the
   * last_seen_at index: few rows in a sound fleet). `deltas`: the changes
   * not yet folded into the totals.
   */
  async healthCounts(clock: HealthClock): Promise<{ counts: HealthCount[]; deltas: number }> {
    type Row = { kind: 'standing' | 'offline'; roles_key: string; health: HealthState; count: number | string; deltas: number | string };
    // One statement, one round trip. The offline rows: one per instance, no GROUP BY, so that the planner takes the
    // last_seen_at range.
    const rows = await this.sql.all<Row>(
      `SELECT 'standing' AS kind, roles_key, health, SUM(n) AS count, SUM(d) AS deltas FROM (
         SELECT roles_key, health, count AS n, 0 AS d FROM health_totals
         UNION ALL SELECT roles_key, health, delta AS n, 1 AS d FROM health_deltas
       ) AS c GROUP BY roles_key, health
       UNION ALL
       SELECT 'offline', COALESCE(roles_key, ''), ${STANDING_HEALTH_SQL}, 1, 0 FROM instances WHERE last_seen_at < ?`,
      [clock.offlineBefore],
    );
    const counts = new Map<string, { roles_key: string; health: HealthState; count: number }>();
    const add = (roles_key: string, health: HealthState, count: number) => {
      const key = `${roles_key}\n${health}`;
      const entry = counts.get(key) ?? counts.set(key, { roles_key, health, count: 0 }).get(key)!;
      entry.count += count;
    };
    let deltas = 0;
    for (const r of rows) {
      if (r.kind === 'standing') {
        add(r.roles_key, r.health, Number(r.count));
        deltas += Number(r.deltas);
      } else if (r.health !== 'expected') {
        add(r.roles_key, r.health, -1);
        add(r.roles_key, 'offline', 1);
      }
    }
    const order = (r: { roles_key: string; health: string }) => `${r.roles_key === '' ? 0 : 1}${r.roles_key}\n${r.health}`;
    const sorted = [...counts.values()]
      .filter((r) => r.count > 0)
      .sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))
      .map((r) => ({
        roles: r.roles_key ? (r.roles_key.split(',').filter(Boolean) as ServiceRole[]) : null,
        health: r.health,
        count: r.count,
      }));
    return { counts: sorted, deltas };
  }

  /** Folds the health count changes into the totals; the rows it removes are exactly those it adds. */
  async compactHealthCounts(): Promise<void> {
    const moved = await this.sql.all<{ roles_key: string; health: string; delta: number | string }>(
      'DELETE FROM health_deltas RETURNING roles_key, health, delta',
    );
    const sums = new Map<string, { roles_key: string; health: string; sum: number }>();
    for (const m of moved) {
      const key = `${m.roles_key}\n${m.health}`;
      const entry = sums.get(key) ?? sums.set(key, { roles_key: m.roles_key, health: m.health, sum: 0 }).get(key)!;
      entry.sum += Number(m.delta);
    }
    for (const s of sums.values())
      if (s.sum !== 0)
        await this.sql.run(
          `INSERT INTO health_totals (roles_key, health, count) VALUES (?, ?, ?)
           ON CONFLICT (roles_key, health) DO UPDATE SET count = health_totals.count + excluded.count`,
          [s.roles_key, s.health, s.sum],
        );
    await this.sql.run('DELETE FROM health_totals WHERE count = 0');
  }

  async teleportVersions(): Promise<Map<string, string>> {
    const rows = await this.sql.all<{ instance_id: string; teleport_version: string }>(
      'SELECT instance_id, teleport_version FROM instances WHERE teleport_version IS NOT NULL',
    );
    return new Map(rows.map((r) => [r.instance_id, r.teleport_version]));
  }

  async distinctAssignments(): Promise<Assignment[]> {
    const rows = await this.sql.all<{ assignment: string }>('SELECT DISTINCT assignment FROM instances WHERE assignment IS NOT NULL');
    return rows.map((r) => JSON.parse(r.assignment) as Assignment);
  }

  async servedCertificates(): Promise<ServedCertificate[]> {
    const expires = this.dialect.jsonNumber('status', 'certificateExpiresAt');
    const rows = await this.sql.all<{ instance_id: string; expires_at: number; reported_at: number }>(
      `SELECT instance_id, ${expires} AS expires_at, ${this.dialect.jsonNumber('status', 'reportedAt')} AS reported_at
       FROM instances WHERE ${expires} IS NOT NULL ORDER BY expires_at, instance_id`,
    );
    return rows.map((r) => ({ instanceId: r.instance_id, expiresAt: Number(r.expires_at), reportedAt: Number(r.reported_at) }));
  }

  /** Whether a server ever ran on this store: it made an API token or knows an instance. */
  async anyRecords(): Promise<boolean> {
    const row = await this.sql.get<{ found: number | boolean }>(
      'SELECT (EXISTS (SELECT 1 FROM api_tokens) OR EXISTS (SELECT 1 FROM instances)) AS found',
    );
    return !!row?.found;
  }

  async clusterId(): Promise<string | undefined> {
    return (await this.sql.get<{ cluster_id: string }>('SELECT cluster_id FROM cluster_identity WHERE id = 1'))?.cluster_id;
  }

  async saveClusterId(clusterId: string, now: number): Promise<void> {
    await this.sql.run(
      'INSERT INTO cluster_identity (id, cluster_id, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET cluster_id = excluded.cluster_id, created_at = excluded.created_at',
      [clusterId, now],
    );
  }

  /** Records `clusterId` unless the store holds one already (replicas starting together: the first wins); returns the one held. */
  async claimClusterId(clusterId: string, now: number): Promise<string> {
    await this.sql.run('INSERT INTO cluster_identity (id, cluster_id, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING', [
      clusterId,
      now,
    ]);
    return (await this.clusterId())!;
  }

  // Bindings and client certificates

  async bindingOf(instanceId: string): Promise<string | undefined> {
    return (await this.sql.get<{ nonce_hash: string }>('SELECT nonce_hash FROM instance_bindings WHERE instance_id = ?', [instanceId]))
      ?.nonce_hash;
  }

  async bind(instanceId: string, nonceHash: string, method: string, now: number): Promise<void> {
    await this.sql.run('INSERT INTO instance_bindings (instance_id, nonce_hash, method, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)', [
      instanceId,
      nonceHash,
      method,
      now,
      now,
    ]);
  }

  async touchBinding(instanceId: string, now: number): Promise<void> {
    await this.sql.run('UPDATE instance_bindings SET last_used_at = ? WHERE instance_id = ?', [now, instanceId]);
  }

  async deleteBinding(instanceId: string): Promise<boolean> {
    return (await this.sql.run('DELETE FROM instance_bindings WHERE instance_id = ?', [instanceId])) > 0;
  }

  async insertCertificate(serial: string, instanceId: string, issuedAt: number, expiresAt: number): Promise<void> {
    await this.sql.run('INSERT INTO client_certificates (serial, instance_id, issued_at, expires_at) VALUES (?, ?, ?, ?)', [
      serial,
      instanceId,
      issuedAt,
      expiresAt,
    ]);
  }

  async certificate(serial: string): Promise<IssuedCertificate | undefined> {
    const row = await this.sql.get<CertificateRow>('SELECT * FROM client_certificates WHERE serial = ?', [serial]);
    return row && rowToCertificate(row);
  }

  /** The issued certificates among `serials`, in one statement per few hundred. */
  async certificatesOf(serials: readonly string[]): Promise<IssuedCertificate[]> {
    const rows = await inChunks(serials, (chunk) =>
      this.sql.all<CertificateRow>(`SELECT * FROM client_certificates WHERE serial IN (${marks(chunk)})`, chunk),
    );
    return rows.map(rowToCertificate);
  }

  /** Revokes the instance's certificates not revoked yet; how many. */
  async revokeCertificatesOf(instanceId: string, now: number): Promise<number> {
    return this.sql.run('UPDATE client_certificates SET revoked_at = ? WHERE instance_id = ? AND revoked_at IS NULL', [now, instanceId]);
  }

  // Versions of the documents operators edit as a whole

  /** The settings as stored (undefined: never saved) with their version, read in one statement. */
  async versionedSettings(): Promise<{ settings: ClusterSettings | undefined; version: number }> {
    const row = await this.sql.get<{ body: string | null; version: number }>(
      "SELECT (SELECT body FROM settings WHERE id = 1) AS body, version FROM versions WHERE name = 'settings'",
    );
    return { settings: row?.body ? (JSON.parse(row.body) as ClusterSettings) : undefined, version: Number(row?.version ?? 0) };
  }

  /** The rules in order with their version, read in one statement. */
  async versionedRules(): Promise<{ rules: Rule[]; version: number }> {
    const rows = await this.sql.all<Omit<RuleRow, 'id'> & { id: string | null; version: number }>(
      `SELECT v.version, r.id, r.body, r.created_at FROM versions v LEFT JOIN rules r ON 1 = 1
       WHERE v.name = 'rules' ORDER BY r.position`,
    );
    return {
      rules: rows.filter((r): r is typeof r & { id: string } => r.id !== null).map(rowToRule),
      version: Number(rows[0]?.version ?? 0),
    };
  }

  async version(name: VersionedDocument): Promise<number> {
    return Number((await this.sql.get<{ version: number }>('SELECT version FROM versions WHERE name = ?', [name]))?.version ?? 0);
  }

  /**
   * The next version of a document, in one statement; undefined when
   * `basedOn` is given and is no longer the current version.
   */
  async bumpVersion(name: VersionedDocument, basedOn?: number): Promise<number | undefined> {
    const row =
      basedOn === undefined
        ? await this.sql.get<{ version: number }>('UPDATE versions SET version = version + 1 WHERE name = ? RETURNING version', [name])
        : await this.sql.get<{ version: number }>(
            'UPDATE versions SET version = version + 1 WHERE name = ? AND version = ? RETURNING version',
            [name, basedOn],
          );
    return row && Number(row.version);
  }

  // Replicas serving on this store

  /**
   * Records that replica `id` is serving (on the database's clock), forgets
   * those not seen for `staleAfterMs`, and counts those left.
   */
  async replicaHeartbeat(id: string, staleAfterMs: number): Promise<number> {
    const now = this.dialect.nowMs;
    await this.sql.run(
      `INSERT INTO replicas (id, started_at, seen_at) VALUES (?, ${now}, ${now}) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`,
      [id],
    );
    await this.sql.run(`DELETE FROM replicas WHERE seen_at < ${now} - ?`, [staleAfterMs]);
    return Number((await this.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM replicas'))?.n ?? 1);
  }

  async removeReplica(id: string): Promise<void> {
    await this.sql.run('DELETE FROM replicas WHERE id = ?', [id]);
  }

  // Rules

  async rules(): Promise<Rule[]> {
    return (await this.sql.all<RuleRow>('SELECT id, body, created_at FROM rules ORDER BY position')).map(rowToRule);
  }

  async insertRule(rule: Rule, position: number): Promise<void> {
    const input: RuleInput = { name: rule.name, selector: rule.selector, roles: rule.roles, labels: rule.labels };
    await this.sql.run('INSERT INTO rules (id, position, body, created_at) VALUES (?, ?, ?, ?)', [
      rule.id,
      position,
      JSON.stringify(input),
      rule.createdAt,
    ]);
  }

  async deleteRule(id: string): Promise<void> {
    await this.sql.run('DELETE FROM rules WHERE id = ?', [id]);
  }

  /** Gives the rules their positions in this order. */
  async orderRules(ids: string[]): Promise<void> {
    for (const [i, id] of ids.entries()) await this.sql.run('UPDATE rules SET position = ? WHERE id = ?', [i, id]);
  }

  // Audit

  async audit(actor: string, action: string, target: string, details: Record<string, unknown>, now: number): Promise<void> {
    await this.sql.run('INSERT INTO audit_events (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)', [
      now,
      actor,
      action,
      target,
      JSON.stringify(details),
    ]);
  }

  async auditEvents(query: { after?: number; limit: number; target?: string }): Promise<AuditEvent[]> {
    const rows = await this.sql.all<AuditRow>(
      `SELECT * FROM audit_events WHERE id > ? ${query.target ? 'AND target = ?' : ''} ORDER BY id LIMIT ?`,
      query.target ? [query.after ?? 0, query.target, query.limit] : [query.after ?? 0, query.limit],
    );
    return rows.map(rowToAudit);
  }

  /** The first event of a counting window, or one more in it when another replica recorded it already. */
  async auditWindow(
    key: string,
    actor: string,
    action: string,
    target: string,
    details: Record<string, unknown>,
    now: number,
  ): Promise<void> {
    await this.sql.run(
      `INSERT INTO audit_events (at, actor, action, target, details, count, last_at, window_key) VALUES (?, ?, ?, ?, ?, 1, NULL, ?)
       ON CONFLICT (window_key) WHERE window_key IS NOT NULL DO UPDATE SET count = audit_events.count + 1, last_at = excluded.at`,
      [now, actor, action, target, JSON.stringify(details), key],
    );
  }

  async addToWindow(key: string, count: number, lastAt: number): Promise<void> {
    await this.sql.run(
      `UPDATE audit_events SET count = count + ?,
         last_at = CASE WHEN COALESCE(last_at, at) > ? THEN COALESCE(last_at, at) ELSE ? END WHERE window_key = ?`,
      [count, lastAt, lastAt, key],
    );
  }

  /** Deletes events before `cutoff` and the oldest beyond `maxRows`; how many. */
  async pruneAudit(cutoff: number, maxRows: number): Promise<number> {
    const cap = await this.sql.get<{ id: number }>('SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET ?', [
      Math.max(0, maxRows - 1),
    ]);
    let deleted = 0;
    for (;;) {
      const batch = await this.sql.run(
        `DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < ? OR id < ? ORDER BY id LIMIT ${PRUNE_BATCH})`,
        [cutoff, cap ? Number(cap.id) : 0],
      );
      deleted += batch;
      if (batch < PRUNE_BATCH) return deleted;
    }
  }

  // API and join tokens

  async apiTokenNamed(name: string): Promise<boolean> {
    return !!(await this.sql.get('SELECT 1 AS taken FROM api_tokens WHERE name = ? AND revoked_at IS NULL', [name]));
  }

  async insertApiToken(
    token: { id: string; name: string; scope: ApiScope; tokenHash: string },
    actor: string,
    now: number,
  ): Promise<ApiToken> {
    const row = await this.sql.get<ApiTokenRow>(
      `INSERT INTO api_tokens (id, name, scope, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING ${API_TOKEN_COLUMNS}`,
      [token.id, token.name, token.scope, token.tokenHash, now, actor],
    );
    return rowToApiToken(row!);
  }

  async apiTokens(): Promise<ApiToken[]> {
    return (await this.sql.all<ApiTokenRow>(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id`)).map(rowToApiToken);
  }

  async activeApiToken(where: 'hash' | 'id-or-name', value: string): Promise<ApiToken | undefined> {
    const row = await this.sql.get<ApiTokenRow>(
      `SELECT ${API_TOKEN_COLUMNS} FROM api_tokens WHERE ${where === 'hash' ? 'token_hash = ?' : '(id = ? OR name = ?)'} AND revoked_at IS NULL`,
      where === 'hash' ? [value] : [value, value],
    );
    return row && rowToApiToken(row);
  }

  async touchApiToken(id: string, now: number): Promise<void> {
    await this.sql.run('UPDATE api_tokens SET last_used_at = ? WHERE id = ?', [now, id]);
  }

  async revokeApiToken(id: string, now: number): Promise<void> {
    await this.sql.run('UPDATE api_tokens SET revoked_at = ? WHERE id = ?', [now, id]);
  }

  async countApiTokens(): Promise<number> {
    return Number((await this.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM api_tokens'))?.n ?? 0);
  }

  async insertJoinToken(
    token: Pick<JoinToken, 'id' | 'name' | 'roles' | 'expiresAt' | 'maxUses'> & { tokenHash: string },
    actor: string,
    now: number,
  ): Promise<JoinToken> {
    const row = await this.sql.get<JoinTokenRow>(
      `INSERT INTO join_tokens (id, name, token_hash, roles, expires_at, max_uses, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       RETURNING ${JOIN_TOKEN_COLUMNS}`,
      [token.id, token.name, token.tokenHash, json(token.roles), token.expiresAt, token.maxUses, now, actor],
    );
    return rowToJoinToken(row!);
  }

  async joinTokens(): Promise<JoinToken[]> {
    return (await this.sql.all<JoinTokenRow>(`SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens ORDER BY created_at, id`)).map(rowToJoinToken);
  }

  async joinToken(where: 'id' | 'hash', value: string): Promise<JoinToken | undefined> {
    const row = await this.sql.get<JoinTokenRow>(
      `SELECT ${JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE ${where === 'id' ? 'id' : 'token_hash'} = ?`,
      [value],
    );
    return row && rowToJoinToken(row);
  }

  async useJoinToken(id: string, now: number): Promise<void> {
    await this.sql.run('UPDATE join_tokens SET uses = uses + 1, last_used_at = ? WHERE id = ?', [now, id]);
  }

  async revokeJoinToken(id: string, now: number): Promise<void> {
    await this.sql.run('UPDATE join_tokens SET revoked_at = ? WHERE id = ?', [now, id]);
  }

  // Leases

  async lease(name: string): Promise<Lease | undefined> {
    const row = await this.sql.get<LeaseRow>(`SELECT ${LEASE_COLUMNS} FROM leases WHERE name = ?`, [name]);
    return row && rowToLease(row);
  }

  /**
   * Takes the lease, in one statement on the database's clock: granted
   * (the lease as it now is) when it is free, expired or already the
   * holder's; undefined when another holds it. A new holding gets the next
   * fencing number; the holder asking again keeps its number, with a new expiry.
   */
  async takeLease(name: string, holder: string, periodMs: number): Promise<Lease | undefined> {
    const now = this.dialect.nowMs;
    // excluded.acquired_at is the statement's "now"; SET sees the row as it was.
    const kept = 'leases.holder = excluded.holder AND leases.expires_at > excluded.acquired_at';
    const row = await this.sql.get<LeaseRow>(
      `INSERT INTO leases (name, holder, fencing, acquired_at, expires_at) VALUES (?, ?, 1, ${now}, ${now} + ?)
       ON CONFLICT (name) DO UPDATE SET
         fencing = CASE WHEN ${kept} THEN leases.fencing ELSE leases.fencing + 1 END,
         acquired_at = CASE WHEN ${kept} THEN leases.acquired_at ELSE excluded.acquired_at END,
         holder = excluded.holder,
         expires_at = excluded.expires_at
       WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at
       RETURNING ${LEASE_COLUMNS}`,
      [name, holder, periodMs],
    );
    return row && rowToLease(row);
  }

  /**
   * Sets a held lease's expiry to the database's now plus `periodMs` (0: it
   * ends now), in one statement; undefined unless `holder` holds it with
   * `fencing` and it has not expired.
   */
  async extendLease(name: string, holder: string, fencing: number, periodMs: number): Promise<Lease | undefined> {
    const now = this.dialect.nowMs;
    const row = await this.sql.get<LeaseRow>(
      `UPDATE leases SET expires_at = ${now} + ? WHERE name = ? AND holder = ? AND fencing = ? AND expires_at > ${now}
       RETURNING ${LEASE_COLUMNS}`,
      [periodMs, name, holder, fencing],
    );
    return row && rowToLease(row);
  }

  // Proxy certificates and ACME challenges

  async proxyCertificates(domain?: string): Promise<ProxyCertificate[]> {
    const rows = await this.sql.all<ProxyCertificateRow>(
      `SELECT * FROM proxy_certificates ${domain === undefined ? '' : 'WHERE domain = ?'} ORDER BY domain`,
      domain === undefined ? [] : [domain],
    );
    return rows.map(rowToProxyCertificate);
  }

  async saveProxyCertificate(c: ProxyCertificate): Promise<void> {
    await this.sql.run(
      `INSERT INTO proxy_certificates (domain, state, serial, not_before, not_after, etag, issued_at, checked_at, last_attempt_at, failures, last_error, next_attempt_at, renew_requested, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (domain) DO UPDATE SET state = excluded.state, serial = excluded.serial, not_before = excluded.not_before, not_after = excluded.not_after,
         etag = excluded.etag, issued_at = excluded.issued_at, checked_at = excluded.checked_at, last_attempt_at = excluded.last_attempt_at,
         failures = excluded.failures, last_error = excluded.last_error, next_attempt_at = excluded.next_attempt_at,
         renew_requested = excluded.renew_requested, updated_at = excluded.updated_at`,
      [
        c.domain,
        c.state,
        c.serial,
        c.notBefore,
        c.notAfter,
        c.etag,
        c.issuedAt,
        c.checkedAt,
        c.lastAttemptAt,
        c.failures,
        c.lastError,
        c.nextAttemptAt,
        c.renewRequested ? 1 : 0,
        c.updatedAt,
      ],
    );
  }

  async requestRenewal(domain: string, now: number): Promise<boolean> {
    const changed = await this.sql.run(
      'UPDATE proxy_certificates SET renew_requested = 1, next_attempt_at = NULL, updated_at = ? WHERE domain = ?',
      [now, domain],
    );
    return changed > 0;
  }

  async putAcmeChallenge(token: string, keyAuthorization: string, domain: string, expiresAt: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO acme_challenges (token, key_authorization, domain, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization, domain = excluded.domain, expires_at = excluded.expires_at`,
      [token, keyAuthorization, domain, expiresAt],
    );
  }

  async acmeChallenge(token: string, now: number): Promise<string | undefined> {
    const row = await this.sql.get<{ key_authorization: string }>(
      'SELECT key_authorization FROM acme_challenges WHERE token = ? AND expires_at > ?',
      [token, now],
    );
    return row?.key_authorization;
  }

  async deleteAcmeChallenge(token: string): Promise<void> {
    await this.sql.run('DELETE FROM acme_challenges WHERE token = ?', [token]);
  }
}

/** The select of one page of instances in id order, one row more than the page to tell whether there is a next. */
function pageQuery(query: InstanceQuery, clock: HealthClock, columns: string): { text: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.role) {
    where.push('roles_key LIKE ?');
    params.push(`%,${query.role},%`);
  }
  if (query.instanceId) {
    where.push('instance_id = ?');
    params.push(query.instanceId);
  }
  if (query.after) {
    where.push('instance_id > ?');
    params.push(query.after);
  }
  if (query.health) {
    where.push(`${HEALTH_SQL} = ?`);
    params.push(clock.offlineBefore, query.health);
  }
  params.push(query.limit + 1);
  const text = `SELECT ${columns} FROM instances ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY instance_id LIMIT ?`;
  return { text, params };
}
