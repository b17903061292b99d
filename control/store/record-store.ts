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
import { ConflictError } from '../errors';
import type { Sql, StorageEngine } from './engine';
import { Records } from './records';
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
  type InstanceRecord,
  type InstanceStatus,
  type JoinToken,
  type Lease,
  type LeaseOutcome,
  type ProxyCertificate,
  type Rule,
  type RuleInput,
  type Store,
} from './store';
import { RefusalCounter } from './refusal-counter';
import { RolloutRecords } from './rollout-records';
import type { ChangeWrite, InstanceConfig, RolloutQuery, StoredRollout } from './rollouts';

/** Settings as stored, over the defaults (a setting added by a newer release has its default until saved). */
export const mergedSettings = (stored: ClusterSettings | undefined): ClusterSettings => ({ ...DEFAULT_CLUSTER_SETTINGS, ...stored });

/** Agents hold leases by instance id; control replicas as "control:{host}:{pid}". */
const leaseActor = (holder: string): string => (holder.startsWith('control:') ? holder : `agent:${holder}`);

export class RecordStore implements Store {
  readonly kind: string;
  private readonly refusals: RefusalCounter;

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

  private writeSql<T>(fn: (sql: Sql, r: Records) => Promise<T>): Promise<T> {
    return this.engine.transaction((sql) => fn(sql, this.records(sql)));
  }

  private write<T>(fn: (r: Records) => Promise<T>, relaxed = false): Promise<T> {
    return this.engine.transaction((sql) => fn(this.records(sql)), { relaxed });
  }

  async getSettings(): Promise<ClusterSettings> {
    return mergedSettings(await this.read((r) => r.settings()));
  }

  updateSettings(settings: ClusterSettings, actor: string, now: number): Promise<string[]> {
    return this.write(async (r) => {
      const before = await r.settings();
      await r.saveSettings(settings, now);
      // Every assigned instance renders from the settings: each has something new to apply.
      const bumped = await r.bumpAssignedGenerations(now);
      await r.audit(actor, 'settings.update', 'settings', { before: before ?? null, after: settings }, now);
      return bumped;
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
    return this.write(async (r): Promise<EnrollOutcome> => {
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
          await r.audit(`rule:${matchedRule.id}`, 'assignment.set', id, { assignment, rule: matchedRule.name }, now);
        }
      }
      return { record: (await r.instance(id))!, matchedRule };
    });
  }

  getInstance(instanceId: string) {
    return this.read((r) => r.instance(instanceId));
  }

  listInstances(...args: Parameters<Records['instances']>) {
    return this.read((r) => r.instances(...args));
  }

  setAssignment(instanceId: string, assignment: Assignment | null, actor: string, now: number): Promise<InstanceRecord> {
    return this.write(async (r) => {
      const existing = await r.instance(instanceId);
      if (!existing) await r.insertInstance(instanceId, now);
      await r.saveAssignment(instanceId, assignment, now);
      const action = assignment ? 'assignment.set' : 'assignment.clear';
      await r.audit(actor, action, instanceId, { before: existing?.assignment ?? null, after: assignment }, now);
      return (await r.instance(instanceId))!;
    });
  }

  deleteInstance(instanceId: string, actor: string, now: number): Promise<boolean> {
    return this.writeSql(async (sql, r) => {
      const existing = await r.instance(instanceId);
      if (!existing) return false;
      await r.deleteInstance(instanceId);
      await new RolloutRecords(sql).forget(instanceId);
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

  saveChange(change: ChangeWrite, actor: string, now: number): Promise<void> {
    return this.writeSql(async (sql, r) => {
      const rr = new RolloutRecords(sql);
      if (change.settings) await r.saveSettings(change.settings, now);
      if (change.assignment) await r.saveAssignment(change.assignment.instanceId, change.assignment.assignment, now);
      for (const g of change.generations ?? []) await rr.raiseGeneration(g.instanceId, g.generation, now);
      for (const c of change.configs ?? []) await rr.saveConfig(c, now);
      for (const w of change.rollouts ?? []) await rr.saveRollout(w.rollout, w.revision);
      for (const rel of change.releases ?? []) await rr.release(rel.instanceId, rel.generation, now);
      for (const a of change.audit ?? []) await r.audit(actor, a.action, a.target, a.details, now);
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
    return (await this.engine.read((sql) => new RolloutRecords(sql).releasedConfigs(instanceId)))[0];
  }

  releasedConfigs(): Promise<InstanceConfig[]> {
    return this.engine.read((sql) => new RolloutRecords(sql).releasedConfigs());
  }

  assignedInstances() {
    return this.engine.read((sql) => new RolloutRecords(sql).assignedInstances());
  }

  healthSummary(...args: Parameters<Records['healthCounts']>) {
    return this.read((r) => r.healthCounts(...args));
  }

  distinctAssignments() {
    return this.read((r) => r.distinctAssignments());
  }

  listRules() {
    return this.read((r) => r.rules());
  }

  addRule(input: RuleInput, position: number | undefined, actor: string, now: number): Promise<Rule> {
    return this.write(async (r) => {
      const ids = (await r.rules()).map((rule) => rule.id);
      const rule: Rule = { ...input, id: randomUUID(), createdAt: now };
      const at = position === undefined ? ids.length : Math.max(0, Math.min(position, ids.length));
      ids.splice(at, 0, rule.id);
      await r.insertRule(rule, at);
      await r.orderRules(ids);
      await r.audit(actor, 'rule.add', `rule:${rule.id}`, { rule, position: at }, now);
      return rule;
    });
  }

  deleteRule(id: string, actor: string, now: number): Promise<boolean> {
    return this.write(async (r) => {
      const rules = await r.rules();
      const rule = rules.find((x) => x.id === id);
      if (!rule) return false;
      await r.deleteRule(id);
      await r.orderRules(rules.filter((x) => x.id !== id).map((x) => x.id));
      await r.audit(actor, 'rule.delete', `rule:${id}`, { rule }, now);
      return true;
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
      const gone = await r.deleteBinding(instanceId);
      if (gone) await r.audit(actor, 'binding.reset', instanceId, {}, now);
      return gone;
    });
  }

  getCertificate(serial: string) {
    return this.read((r) => r.certificate(serial));
  }

  createApiToken(token: { id: string; name: string; scope: ApiScope; tokenHash: string }, actor: string, now: number): Promise<ApiToken> {
    return this.write(async (r) => {
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

  acquireLease(name: string, holder: string, now: number, periodMs: number): Promise<LeaseOutcome> {
    return this.write(async (r): Promise<LeaseOutcome> => {
      const current = await r.lease(name);
      if (current && current.expiresAt > now) {
        if (current.holder !== holder) return { lease: current, granted: false };
        const extended = { ...current, expiresAt: now + periodMs };
        await r.saveLease(extended);
        return { lease: extended, granted: true };
      }
      // Free or expired: a new holding, with a higher fencing number (even for the same holder).
      const lease: Lease = { name, holder, fencing: (current?.fencing ?? 0) + 1, acquiredAt: now, expiresAt: now + periodMs };
      await r.saveLease(lease);
      await r.audit(
        leaseActor(holder),
        'lease.acquire',
        `lease:${name}`,
        {
          holder,
          fencing: lease.fencing,
          previousHolder: current?.holder ?? null,
          previousExpiredAt: current ? new Date(current.expiresAt).toISOString() : null,
        },
        now,
      );
      return { lease, granted: true };
    });
  }

  /** The lease when `holder` holds it with `fencing` and it has not expired; otherwise the outcome refusing the call. */
  private async held(r: Records, name: string, holder: string, fencing: number, now: number): Promise<Lease | LeaseOutcome> {
    const current = await r.lease(name);
    if (!current || current.holder !== holder || current.fencing !== fencing || current.expiresAt <= now)
      return { lease: current, granted: false };
    return current;
  }

  renewLease(name: string, holder: string, fencing: number, now: number, periodMs: number): Promise<LeaseOutcome> {
    return this.write(async (r): Promise<LeaseOutcome> => {
      const held = await this.held(r, name, holder, fencing, now);
      if ('granted' in held) return held;
      const lease = { ...held, expiresAt: now + periodMs };
      await r.saveLease(lease);
      return { lease, granted: true };
    });
  }

  releaseLease(name: string, holder: string, fencing: number, now: number): Promise<LeaseOutcome> {
    return this.write(async (r): Promise<LeaseOutcome> => {
      const held = await this.held(r, name, holder, fencing, now);
      if ('granted' in held) return held;
      const lease = { ...held, expiresAt: now };
      await r.saveLease(lease);
      await r.audit(leaseActor(holder), 'lease.release', `lease:${name}`, { holder, fencing }, now);
      return { lease, granted: false };
    });
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

  /** Whether a server ever ran on this store: it made an API token or knows an instance. */
  hasRecords(): Promise<boolean> {
    return this.read((r) => r.anyRecords());
  }

  checkReadable(): Promise<void> {
    return this.engine.checkReadable();
  }

  async close(): Promise<void> {
    await this.refusals.flush();
    this.refusals.stop();
    await this.engine.close();
  }
}
