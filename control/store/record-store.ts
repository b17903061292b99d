// The store's rules, the same over every database: what an enrollment must
// prove (nonce binding, join token uses, role allow-lists) and what it gets
// (the first matching rule), settings merged over the defaults, lease
// holdings with fencing numbers, and an audit event with every change in
// the same transaction. The database is reached only through the storage
// port (engine.ts) and the repositories (records.ts).
import { randomUUID } from 'node:crypto';
import {
  DEFAULT_CLUSTER_SETTINGS,
  type Assignment,
  type ClusterSettings,
  type HostFacts,
  type InstanceIdentity,
} from '../../contract/model';
import { ConflictError, VersionConflictError } from '../errors';
import type { Sql, StorageEngine } from './engine';
import { COMPACT_AFTER_DELTAS } from './health-counting';
import { Records, type HealthCount, type VersionedDocument } from './records';
import {
  EnrollRefused,
  disallowedRoles,
  firstMatchingRule,
  joinTokenProblem,
  type ApiScope,
  type ApiToken,
  type AuditRetention,
  type EnrollOutcome,
  type EnrollTrust,
  type HealthClock,
  type InstanceQuery,
  type InstanceRecord,
  type InstanceStatus,
  type JoinToken,
  type LeaseOutcome,
  type ProxyCertificate,
  type Rule,
  type RuleInput,
  type Store,
  type Versioned,
} from './store';
import { RefusalCounter } from './refusal-counter';
import { RolloutRecords } from './rollout-records';
import { FINISHED_STATES } from '../rollout/model';
import type { ChangeWrite, InstanceConfig, RolloutQuery, StoredRollout } from './rollouts';

/** Settings as stored, over the defaults (a setting added by a newer release has its default until saved). */
export const mergedSettings = (stored: ClusterSettings | undefined): ClusterSettings => ({ ...DEFAULT_CLUSTER_SETTINGS, ...stored });

/** Agents hold leases by instance id; control replicas as "control:{host}:{pid}". */
const leaseActor = (holder: string): string => (holder.startsWith('control:') ? holder : `agent:${holder}`);

export class RecordStore implements Store {
  readonly kind: string;
  private readonly refusals: RefusalCounter;
  private compacting: Promise<void> | undefined;

  constructor(protected readonly engine: StorageEngine) {
    this.kind = engine.kind;
    this.refusals = new RefusalCounter(engine, (sql) => this.records(sql));
  }

  protected records(sql: Sql): Records {
    return new Records(sql, this.engine.dialect);
  }

  private read<T>(fn: (r: Records) => Promise<T>): Promise<T> {
    return this.engine.read((sql) => fn(this.records(sql)));
  }

  /** `changed` records, in the same transaction, a change other replicas' agents must hear of. */
  private writeSql<T>(
    fn: (sql: Sql, r: Records, changed: (ids: string[], now: number) => Promise<void>) => Promise<T>,
    relaxed = false,
  ): Promise<T> {
    return this.engine.transaction((sql) => fn(sql, this.records(sql), async (ids, now) => this.engine.changes?.record(sql, ids, now)), {
      relaxed,
    });
  }

  private write<T>(fn: (r: Records, changed: (ids: string[], now: number) => Promise<void>) => Promise<T>, relaxed = false): Promise<T> {
    return this.writeSql((_sql, r, changed) => fn(r, changed), relaxed);
  }

  /** Changes other replicas make to what instances should run: ids, or "*" for every assigned instance. */
  watchChanges(listener: (instanceIds: string[]) => void): () => void {
    return this.engine.changes?.subscribe(listener) ?? (() => undefined);
  }

  async getSettings(): Promise<ClusterSettings> {
    return mergedSettings(await this.read((r) => r.settings()));
  }

  async getVersionedSettings(): Promise<Versioned<ClusterSettings>> {
    const { settings, version } = await this.read((r) => r.versionedSettings());
    return { value: mergedSettings(settings), version };
  }

  /** The document's next version (in the caller's transaction); VersionConflictError when `basedOn` is not the current one. */
  private async nextVersion(r: Records, document: VersionedDocument, basedOn: number | undefined, readPath: string): Promise<number> {
    const version = await r.bumpVersion(document, basedOn);
    if (version === undefined) throw new VersionConflictError(document, basedOn!, await r.version(document), readPath);
    return version;
  }

  updateSettings(settings: ClusterSettings, actor: string, now: number, basedOn?: number): Promise<{ bumped: string[]; version: number }> {
    return this.write(async (r, changed) => {
      await r.lock('settings');
      const version = await this.nextVersion(r, 'settings', basedOn, '/v1/settings');
      const before = await r.settings();
      await r.saveSettings(settings, now);
      // Every assigned instance renders from the settings: each has something new to apply.
      const bumped = await r.bumpAssignedGenerations(now);
      await changed(['*'], now);
      await r.audit(actor, 'settings.update', 'settings', { before: before ?? null, after: settings, version }, now);
      return { bumped, version };
    });
  }

  /** The trust checks of an enrollment; throws EnrollRefused (the transaction then writes nothing). */
  private async applyTrust(r: Records, instanceId: string, existing: InstanceRecord | undefined, trust: EnrollTrust, now: number) {
    const binding = await r.bindingOf(instanceId);
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
      await r.touchBinding(instanceId, now);
    } else if (trust.nonceHash) {
      await r.bind(instanceId, trust.nonceHash, trust.enrolledVia ?? 'unknown', now);
    }
    const outside = existing?.assignment ? disallowedRoles(existing.assignment.roles, trust.allowedRoles) : [];
    if (outside.length) {
      throw new EnrollRefused(
        'role-not-allowed',
        `instance ${instanceId} is assigned ${outside.join(', ')}, which its join token does not allow (it allows ${trust.allowedRoles!.join(', ')})`,
      );
    }
    if (trust.joinTokenId) {
      const token = await r.joinToken('id', trust.joinTokenId);
      const problem = token ? joinTokenProblem(token, now) : 'join token not recognised';
      if (problem) throw new EnrollRefused('token-unusable', problem);
      await r.useJoinToken(trust.joinTokenId, now);
    }
    if (trust.certificate) await r.insertCertificate(trust.certificate.serial, instanceId, now, trust.certificate.expiresAt);
  }

  enroll(identity: InstanceIdentity, actor: string, now: number, trust: EnrollTrust = {}): Promise<EnrollOutcome> {
    const id = identity.instanceId;
    return this.write(async (r, changed): Promise<EnrollOutcome> => {
      await r.lock(`instance:${id}`, ...(trust.joinTokenId ? [`join-token:${trust.joinTokenId}`] : []));
      const existing = await r.instance(id);
      await this.applyTrust(r, id, existing, trust, now);
      const via = trust.enrolledVia ?? null;
      await r.saveEnrollment(identity, !!existing, via, trust.allowedRoles ?? null, now);
      await r.audit(
        actor,
        'instance.enroll',
        id,
        {
          firstEnrollment: !existing?.enrolledAt,
          region: identity.region,
          privateIp: identity.privateIp,
          via,
          ...(trust.allowedRoles ? { allowedRoles: trust.allowedRoles } : {}),
        },
        now,
      );
      let matchedRule: Rule | undefined;
      // An explicit assignment always wins over rules.
      if (!existing?.assignment) {
        matchedRule = firstMatchingRule(await r.rules(), identity.tags);
        if (matchedRule && disallowedRoles(matchedRule.roles, trust.allowedRoles).length) {
          await r.audit(
            `rule:${matchedRule.id}`,
            'assignment.refused',
            id,
            { rule: matchedRule.name, roles: matchedRule.roles, allowedRoles: trust.allowedRoles, via },
            now,
          );
          matchedRule = undefined;
        }
        if (matchedRule) {
          const assignment: Assignment = { roles: matchedRule.roles, labels: matchedRule.labels };
          await r.saveAssignment(id, assignment, now);
          await changed([id], now);
          await r.audit(`rule:${matchedRule.id}`, 'assignment.set', id, { assignment, rule: matchedRule.name }, now);
        }
      }
      return { record: (await r.instance(id))!, matchedRule };
    });
  }

  getInstance(instanceId: string) {
    return this.read((r) => r.instance(instanceId));
  }

  getInstances(instanceIds: readonly string[]): Promise<InstanceRecord[]> {
    return instanceIds.length === 0 ? Promise.resolve([]) : this.read((r) => r.instancesOf(instanceIds));
  }

  listInstances(...args: Parameters<Records['instances']>) {
    return this.read((r) => r.instances(...args));
  }

  listInstanceViews<T>(query: InstanceQuery, clock: HealthClock, cachedView: (id: string, version: number) => T | undefined) {
    return this.read((r) => r.instanceViews(query, clock, cachedView));
  }

  setAssignment(instanceId: string, assignment: Assignment | null, actor: string, now: number): Promise<InstanceRecord> {
    return this.write(async (r, changed) => {
      await r.lock(`instance:${instanceId}`);
      const existing = await r.instance(instanceId);
      if (!existing) await r.insertInstance(instanceId, now);
      await r.saveAssignment(instanceId, assignment, now);
      await changed([instanceId], now);
      const action = assignment ? 'assignment.set' : 'assignment.clear';
      await r.audit(actor, action, instanceId, { before: existing?.assignment ?? null, after: assignment }, now);
      return (await r.instance(instanceId))!;
    });
  }

  deleteInstance(instanceId: string, actor: string, now: number): Promise<boolean> {
    return this.writeSql(async (sql, r, changed) => {
      await r.lock(`instance:${instanceId}`);
      const existing = await r.instance(instanceId);
      if (!existing) return false;
      await r.deleteInstance(instanceId);
      await new RolloutRecords(sql).forget(instanceId);
      await changed([instanceId], now);
      // Its client certificates stop working at once; the binding stays, so
      // only the same machine (its nonce) can enroll under this id again.
      const revoked = await r.revokeCertificatesOf(instanceId, now);
      await r.audit(actor, 'instance.delete', instanceId, { assignment: existing.assignment, revokedCertificates: revoked }, now);
      return true;
    });
  }

  /** Status reports are heartbeats: the next one replaces this one, so their commits are relaxed. */
  recordStatus(instanceId: string, appliedGeneration: number, status: InstanceStatus, facts: HostFacts | null) {
    return this.write((r) => r.saveStatus(instanceId, appliedGeneration, status, facts), true);
  }

  // Rollouts (rollouts.ts): a change and its rollout steps commit together.

  saveChange(change: ChangeWrite, actor: string, now: number): Promise<{ settingsVersion?: number }> {
    return this.writeSql(async (sql, r, changed) => {
      const rr = new RolloutRecords(sql);
      let settingsVersion: number | undefined;
      if (change.settings) {
        await r.lock('settings');
        settingsVersion = await this.nextVersion(r, 'settings', change.settingsBasedOn, '/v1/settings');
        await r.saveSettings(change.settings, now);
      }
      for (const a of change.assignments ?? []) {
        await r.lock(`instance:${a.instanceId}`);
        await r.saveAssignment(a.instanceId, a.assignment, now);
      }
      for (const g of change.generations ?? []) await rr.raiseGeneration(g.instanceId, g.generation, now);
      for (const c of change.configs ?? []) await rr.saveConfig(c, now);
      for (const w of change.rollouts ?? []) await rr.saveRollout(w.rollout, w.revision);
      for (const rel of change.releases ?? []) await rr.release(rel.instanceId, rel.generation, now);
      // Configs no rollout, release or applied generation can need any more go when a rollout ends or configs are added.
      if (change.configs?.length || change.rollouts?.some((w) => FINISHED_STATES.includes(w.rollout.state))) await rr.pruneConfigs();
      for (const a of change.audit ?? []) {
        // The settings' own events name the version saved (what an ETag names).
        const details = a.target === 'settings' && settingsVersion !== undefined ? { ...a.details, version: settingsVersion } : a.details;
        await r.audit(actor, a.action, a.target, details, now);
      }
      // Agents on other replicas hear of what they are now served: every host on a settings change (the unpinned
      // take the newest), else the hosts this change moved.
      const moved = [...(change.generations ?? []), ...(change.releases ?? [])].map((g) => g.instanceId);
      for (const a of change.assignments ?? []) moved.push(a.instanceId);
      if (change.settings) await changed(['*'], now);
      else if (moved.length > 0) await changed([...new Set(moved)], now);
      return settingsVersion === undefined ? {} : { settingsVersion };
    });
  }

  getRollout(id: string): Promise<StoredRollout | undefined> {
    return this.engine.read((sql) => new RolloutRecords(sql).rollout(id));
  }

  listRollouts(query: RolloutQuery) {
    return this.engine.read((sql) => new RolloutRecords(sql).rollouts(query));
  }

  activeRollout(): Promise<StoredRollout | undefined> {
    return this.engine.read((sql) => new RolloutRecords(sql).activeRollout());
  }

  async releasedConfig(instanceId: string): Promise<InstanceConfig | undefined> {
    return (await this.engine.read((sql) => new RolloutRecords(sql).releasedConfigs([instanceId])))[0];
  }

  configGenerations(instanceId: string): Promise<number[]> {
    return this.engine.read((sql) => new RolloutRecords(sql).configGenerations(instanceId));
  }

  releasedConfigs(instanceIds?: readonly string[]): Promise<InstanceConfig[]> {
    if (instanceIds?.length === 0) return Promise.resolve([]);
    return this.engine.read((sql) => new RolloutRecords(sql).releasedConfigs(instanceIds));
  }

  assignedInstances() {
    return this.engine.read((sql) => new RolloutRecords(sql).assignedInstances());
  }

  async healthSummary(...args: Parameters<Records['healthCounts']>): Promise<HealthCount[]> {
    const { counts, deltas } = await this.read((r) => r.healthCounts(...args));
    // Folded in after this read, so that the next reads add up few deltas; one compaction at a time.
    if (deltas > COMPACT_AFTER_DELTAS && !this.compacting)
      this.compacting = this.write(async (r) => {
        await r.lock('health-counts');
        await r.compactHealthCounts();
      })
        // Every count read adds up health_deltas whole: the rows deleted must not stay to be scanned (PostgreSQL).
        .then(() => this.engine.reclaim?.('health_deltas'))
        // A compaction that fails leaves the deltas for the next one: the counts stay right.
        .catch(() => undefined)
        .finally(() => (this.compacting = undefined));
    return counts;
  }

  distinctAssignments() {
    return this.read((r) => r.distinctAssignments());
  }

  teleportVersions() {
    return this.read((r) => r.teleportVersions());
  }

  listRules() {
    return this.read((r) => r.rules());
  }

  async listVersionedRules(): Promise<Versioned<Rule[]>> {
    const { rules, version } = await this.read((r) => r.versionedRules());
    return { value: rules, version };
  }

  addRule(input: RuleInput, position: number | undefined, actor: string, now: number, basedOn?: number): Promise<Versioned<Rule>> {
    return this.write(async (r) => {
      await r.lock('rules');
      const version = await this.nextVersion(r, 'rules', basedOn, '/v1/rules');
      const ids = (await r.rules()).map((rule) => rule.id);
      const rule: Rule = { ...input, id: randomUUID(), createdAt: now };
      const at = position === undefined ? ids.length : Math.max(0, Math.min(position, ids.length));
      ids.splice(at, 0, rule.id);
      await r.insertRule(rule, at);
      await r.orderRules(ids);
      await r.audit(actor, 'rule.add', `rule:${rule.id}`, { rule, position: at, version }, now);
      return { value: rule, version };
    });
  }

  deleteRule(id: string, actor: string, now: number, basedOn?: number): Promise<number | undefined> {
    return this.write(async (r) => {
      await r.lock('rules');
      const rules = await r.rules();
      const rule = rules.find((x) => x.id === id);
      if (!rule) return undefined;
      const version = await this.nextVersion(r, 'rules', basedOn, '/v1/rules');
      await r.deleteRule(id);
      await r.orderRules(rules.filter((x) => x.id !== id).map((x) => x.id));
      await r.audit(actor, 'rule.delete', `rule:${id}`, { rule, version }, now);
      return version;
    });
  }

  async listAudit(query: { after?: number; limit: number; target?: string }) {
    await this.refusals.flush();
    return this.read((r) => r.auditEvents(query));
  }

  recordAudit(actor: string, action: string, target: string, details: Record<string, unknown>, now: number): Promise<void> {
    return this.write((r) => r.audit(actor, action, target, details, now));
  }

  recordRefusal(actor: string, action: string, target: string, details: Record<string, unknown> & { reason: string }, now: number) {
    return this.refusals.record(actor, action, target, details, now);
  }

  async pruneAudit(retention: AuditRetention, now: number): Promise<number> {
    await this.refusals.flush();
    return this.write(async (r) => {
      await r.lock('audit-prune');
      const deleted = await r.pruneAudit(now - retention.maxAgeMs, retention.maxRows);
      if (deleted > 0)
        await r.audit('control', 'audit.pruned', 'audit', { deleted, maxAgeMs: retention.maxAgeMs, maxRows: retention.maxRows }, now);
      return deleted;
    });
  }

  storeBytes(): Promise<number> {
    return this.engine.bytes();
  }

  resetBinding(instanceId: string, actor: string, now: number): Promise<boolean> {
    return this.write(async (r) => {
      await r.lock(`instance:${instanceId}`);
      const gone = await r.deleteBinding(instanceId);
      if (gone) await r.audit(actor, 'binding.reset', instanceId, {}, now);
      return gone;
    });
  }

  getCertificate(serial: string) {
    return this.read((r) => r.certificate(serial));
  }

  getCertificates(serials: readonly string[]) {
    return serials.length === 0 ? Promise.resolve([]) : this.read((r) => r.certificatesOf(serials));
  }

  createApiToken(token: { id: string; name: string; scope: ApiScope; tokenHash: string }, actor: string, now: number): Promise<ApiToken> {
    return this.write(async (r) => {
      await r.lock('api-tokens');
      if (await r.apiTokenNamed(token.name))
        throw new ConflictError(`an active API token named "${token.name}" exists; revoke it first or choose another name`);
      const created = await r.insertApiToken(token, actor, now);
      await r.audit(actor, 'api_token.create', `api-token:${token.id}`, { name: token.name, scope: token.scope }, now);
      return created;
    });
  }

  listApiTokens() {
    return this.read((r) => r.apiTokens());
  }

  findApiToken(tokenHash: string) {
    return this.read((r) => r.activeApiToken('hash', tokenHash));
  }

  touchApiToken(id: string, now: number): Promise<void> {
    return this.write((r) => r.touchApiToken(id, now), true);
  }

  revokeApiToken(idOrName: string, actor: string, now: number): Promise<ApiToken | undefined> {
    return this.write(async (r) => {
      await r.lock('api-tokens');
      const token = await r.activeApiToken('id-or-name', idOrName);
      if (!token) return undefined;
      await r.revokeApiToken(token.id, now);
      await r.audit(actor, 'api_token.revoke', `api-token:${token.id}`, { name: token.name, scope: token.scope }, now);
      return { ...token, revokedAt: now };
    });
  }

  countApiTokens() {
    return this.read((r) => r.countApiTokens());
  }

  createJoinToken(
    token: Omit<JoinToken, 'uses' | 'lastUsedAt' | 'revokedAt' | 'createdAt' | 'createdBy'> & { tokenHash: string },
    actor: string,
    now: number,
  ): Promise<JoinToken> {
    return this.write(async (r) => {
      const created = await r.insertJoinToken(token, actor, now);
      const details = { name: token.name, roles: token.roles, expiresAt: new Date(token.expiresAt).toISOString(), maxUses: token.maxUses };
      await r.audit(actor, 'join_token.create', `join-token:${token.id}`, details, now);
      return created;
    });
  }

  listJoinTokens() {
    return this.read((r) => r.joinTokens());
  }

  findJoinToken(tokenHash: string) {
    return this.read((r) => r.joinToken('hash', tokenHash));
  }

  revokeJoinToken(id: string, actor: string, now: number): Promise<JoinToken | undefined> {
    return this.write(async (r) => {
      await r.lock(`join-token:${id}`);
      const token = await r.joinToken('id', id);
      if (!token || token.revokedAt !== null) return undefined;
      await r.revokeJoinToken(id, now);
      await r.audit(actor, 'join_token.revoke', `join-token:${id}`, { name: token.name }, now);
      return { ...token, revokedAt: now };
    });
  }

  getLease(name: string) {
    return this.read((r) => r.lease(name));
  }

  // Every lease decision is one conditional statement on the database's
  // clock (records.ts): replicas never decide on a read and their own clocks.

  acquireLease(name: string, holder: string, periodMs: number): Promise<LeaseOutcome> {
    return this.write(async (r): Promise<LeaseOutcome> => {
      await r.lock(`lease:${name}`);
      // Read for the audit's "previous holder" only; the statement below decides.
      const before = await r.lease(name);
      const lease = await r.takeLease(name, holder, periodMs);
      if (!lease) return { lease: before, granted: false };
      if (lease.fencing !== before?.fencing)
        await r.audit(
          leaseActor(holder),
          'lease.acquire',
          `lease:${name}`,
          {
            holder,
            fencing: lease.fencing,
            previousHolder: before?.holder ?? null,
            previousExpiredAt: before ? new Date(before.expiresAt).toISOString() : null,
          },
          lease.acquiredAt,
        );
      return { lease, granted: true };
    });
  }

  renewLease(name: string, holder: string, fencing: number, periodMs: number): Promise<LeaseOutcome> {
    return this.write(async (r): Promise<LeaseOutcome> => {
      await r.lock(`lease:${name}`);
      const lease = await r.extendLease(name, holder, fencing, periodMs);
      return lease ? { lease, granted: true } : { lease: await r.lease(name), granted: false };
    });
  }

  releaseLease(name: string, holder: string, fencing: number): Promise<LeaseOutcome> {
    return this.write(async (r): Promise<LeaseOutcome> => {
      await r.lock(`lease:${name}`);
      const lease = await r.extendLease(name, holder, fencing, 0);
      if (!lease) return { lease: await r.lease(name), granted: false };
      await r.audit(leaseActor(holder), 'lease.release', `lease:${name}`, { holder, fencing }, lease.expiresAt);
      return { lease, granted: false };
    });
  }

  replicaHeartbeat(id: string, staleAfterMs: number): Promise<number> {
    return this.write((r) => r.replicaHeartbeat(id, staleAfterMs), true);
  }

  removeReplica(id: string): Promise<void> {
    return this.write((r) => r.removeReplica(id));
  }

  listProxyCertificates() {
    return this.read((r) => r.proxyCertificates());
  }

  async getProxyCertificate(domain: string): Promise<ProxyCertificate | undefined> {
    return (await this.read((r) => r.proxyCertificates(domain)))[0];
  }

  saveProxyCertificate(cert: ProxyCertificate, audit?: { actor: string; action: string; details: Record<string, unknown> }): Promise<void> {
    return this.write(async (r) => {
      await r.saveProxyCertificate(cert);
      if (audit) await r.audit(audit.actor, audit.action, `certificate:${cert.domain}`, audit.details, cert.updatedAt);
    });
  }

  requestRenewal(domain: string, actor: string, now: number): Promise<boolean> {
    return this.write(async (r) => {
      const changed = await r.requestRenewal(domain, now);
      if (changed) await r.audit(actor, 'certificate.renew_requested', `certificate:${domain}`, {}, now);
      return changed;
    });
  }

  listServedCertificates() {
    return this.read((r) => r.servedCertificates());
  }

  putAcmeChallenge(token: string, keyAuthorization: string, domain: string, expiresAt: number): Promise<void> {
    return this.write((r) => r.putAcmeChallenge(token, keyAuthorization, domain, expiresAt));
  }

  getAcmeChallenge(token: string, now: number) {
    return this.read((r) => r.acmeChallenge(token, now));
  }

  deleteAcmeChallenge(token: string): Promise<void> {
    return this.write((r) => r.deleteAcmeChallenge(token));
  }

  /** The cluster this store belongs to: made at first start; undefined before. */
  clusterId(): Promise<string | undefined> {
    return this.read((r) => r.clusterId());
  }

  /** Records (or, for a new cluster started on purpose, replaces) the cluster's identity. */
  recordClusterId(clusterId: string, now: number): Promise<void> {
    return this.write((r) => r.saveClusterId(clusterId, now));
  }

  /** Records the cluster's identity unless the store has one (the first of replicas starting together wins); the one it holds. */
  claimClusterId(clusterId: string, now: number): Promise<string> {
    return this.write((r) => r.claimClusterId(clusterId, now));
  }

  /** Whether a server ever ran on this store: it made an API token or knows an instance. */
  hasRecords(): Promise<boolean> {
    return this.read((r) => r.anyRecords());
  }

  checkReadable(): Promise<void> {
    return this.engine.checkReadable();
  }

  async close(): Promise<void> {
    await this.compacting;
    await this.refusals.flush();
    this.refusals.stop();
    await this.engine.close();
  }
}
