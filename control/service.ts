// The control server's domain logic, shared by the gRPC and REST faces:
// enrollment, assignments, settings, rules, status, and change notification.
import { EventEmitter } from 'node:events';
import {
  ROLE_NAMES,
  TRUSTED_CLUSTER_TOKEN,
  certDomainOf,
  servicesOf,
  type Assignment,
  type ClusterSettings,
  type HealthState,
  type HostFacts,
  type InstanceIdentity,
  type ServiceRole,
} from '../contract/model';
import type { CertificateAuthority } from './pki';
import { importClientPublicKey, issueClientCertificate } from './pki';
import { EnrollmentDenied, sha256Hex, type EnrollmentProof, type EnrollmentVerifier } from './enrollment';
import {
  disallowedRoles,
  EnrollRefused,
  type HealthClock,
  type InstanceQuery,
  type LeaseOutcome,
  type InstanceRecord,
  type InstanceStatus,
  type Rule,
  type RuleInput,
  type Store,
  type Versioned,
} from './store/store';
import { Trust } from './trust';
import { CallLimits } from './call-limits';
import { ForbiddenError } from './errors';
import {
  applySettingsPatch,
  checkAssignmentRenders,
  checkSettingsAgainst,
  storedAssignments,
  validateClusterSettings,
  validateAssignment,
  type SettingsPatch,
} from './validation';
import { InputError, NotFoundError, VersionConflictError } from './errors';
import { checkAssignmentRelease } from './release-rules';
import { requirementsOf } from '../contract/render/render';
import { assignmentOptions } from '../contract/assignment';
import type { RolloutStrategy } from '../contract/settings';
import type { Logger } from '../contract/log';
import { RolloutWiring, type Served } from './rollout-wiring';
import { applyRule, type RuleApplyOptions } from './rule-apply';
import { summaryOf, metricSamples, type Rollout } from './rollout';
import { batched, coalesced } from './coalesce';

export { InputError, NotFoundError };

/** How a settings change is saved: only over the version read (REST If-Match), and its rollout strategy. */
export interface SettingsChangeOptions {
  basedOn?: number;
  strategy?: RolloutStrategy;
}

/** The rollout under way that holds an instance, and the instance's state in it (the instance views show it). */
export type RolloutHold = { id: string; state: Rollout['hosts'][number]['state'] };

/** Input an operator gives: a role name (preset) or a list of services, and the options of those roles. */
export interface AssignmentInput extends Partial<Omit<Assignment, 'roles' | 'labels' | 'nodename'>> {
  role?: string;
  roles?: string[];
  labels?: Record<string, string>;
  nodename?: string;
}

/** Per-role options copied from the input as given (the renderer judges them): every option the assignment declares. */
const ASSIGNMENT_OPTIONS = Object.keys(assignmentOptions) as Array<keyof typeof assignmentOptions>;

export interface AssignmentStateView {
  instanceId: string;
  generation: number;
  assigned: boolean;
  assignment: Assignment | null;
  cluster: ClusterSettings & { certDomain: string };
}

/** What an agent is to run: the generation a rollout released to it (rollout-wiring.ts), its assignment and settings. */
function assignmentStateOf(instanceId: string, served: Served): AssignmentStateView {
  return {
    instanceId,
    generation: served.generation,
    assigned: served.assignment !== null,
    assignment: served.assignment,
    cluster: { ...served.settings, certDomain: certDomainOf(served.settings) },
  };
}

export interface ServiceOptions {
  store: Store;
  ca: CertificateAuthority;
  verifier: EnrollmentVerifier;
  clientCertificateLifetimeMs: number;
  heartbeatIntervalMs: number;
  /** How long a publisher lease lasts without renewal (default 30 s). */
  publisherLeaseMs?: number;
  /** A certificate closer than this to its expiry is an alert in the fleet health (default 14 days). */
  certificateAlertMs?: number;
  now?: () => number;
  /** An applying host not ready on its new generation after this long fails in its rollout; absent: the agent's own readiness timeout decides. */
  rolloutReadyMs?: number;
  /** How often the active rollout is advanced without a report (silent hosts, time limits); default 2 s. */
  rolloutTickMs?: number;
  log?: Logger;
}

export const DEFAULT_CERTIFICATE_ALERT_MS = 14 * 24 * 3_600_000;

/** Leases agents may take: the publisher of join tokens and the CA pin. */
export const LEASE_NAMES = ['publisher'] as const;
export const DEFAULT_PUBLISHER_LEASE_MS = 30_000;

/** A lease call's outcome, and with the publisher lease granted, the join token names to publish. */
export interface LeaseGrant extends LeaseOutcome {
  joinTokenNames: string[];
}

/**
 * The SSM token names ({prefix}/{cluster}/tokens/{name}) a fleet needs: the
 * join token of every assignment, by the renderer's own requirementsOf (so
 * that the publisher and the hosts never disagree on a name: "node",
 * "discovery-kube"; none for auth hosts or IAM joining), and
 * "trusted_cluster" when the cluster is a root. Sorted, each once.
 */
export function joinTokenNamesOf(cluster: ClusterSettings, assignments: Iterable<Assignment>): string[] {
  const names = new Set<string>();
  for (const assignment of assignments) {
    let name: string | undefined;
    try {
      name = requirementsOf(assignment, cluster).joinTokenRole;
    } catch {
      // An assignment the renderer refuses reads no token either; the agent reports why.
    }
    if (name) names.add(name);
  }
  if (cluster.trustRole === 'root') names.add(TRUSTED_CLUSTER_TOKEN);
  return [...names].sort();
}

export function assignmentFromInput(input: AssignmentInput): Assignment {
  if ((input.role === undefined) === (input.roles === undefined)) {
    throw new InputError('role', `give either "role" (one of ${ROLE_NAMES.join(', ')}) or "roles" (a list of services)`);
  }
  const names = input.role !== undefined ? [input.role] : input.roles!;
  const services = new Set<ServiceRole>();
  names.forEach((name, i) => {
    const expanded = servicesOf(name);
    if (!expanded)
      throw new InputError(
        input.role !== undefined ? 'role' : `roles[${i}]`,
        `unknown role "${name}"; known roles: ${ROLE_NAMES.join(', ')}`,
      );
    expanded.forEach((s) => services.add(s));
  });
  const assignment: Assignment = { roles: [...services].sort(), labels: input.labels ?? {} };
  if (input.nodename) assignment.nodename = input.nodename;
  for (const key of ASSIGNMENT_OPTIONS) {
    // Safe: the request's options are declared by the same schema as the assignment's (contract/assignment.ts), key for key.
    if (input[key] !== undefined) (assignment as unknown as Record<string, unknown>)[key] = input[key];
  }
  validateAssignment(assignment);
  return assignment;
}

/** Who is enrolling, for the nonce binding and the audit log. */
export interface EnrollContext {
  /** The client nonce bound on first enrollment (trust on first use). */
  nonce?: string;
  /** The peer address, recorded with a refusal. */
  peer?: string;
}

/** A rule as an operator adds it: one role or several, at a position (the end when absent). */
export interface RuleCreation {
  name: string;
  selector: Record<string, string>;
  role?: string;
  roles?: string[];
  labels?: Record<string, string>;
  position?: number;
}

export class ControlService {
  readonly store: Store;
  /** API tokens, join tokens, bindings and the mutual-TLS check. */
  readonly trust: Trust;
  /** Rate limits per API token and per instance; none until the server sets them from its config. */
  callLimits = new CallLimits();
  private readonly events = new EventEmitter();
  private readonly now: () => number;

  constructor(private readonly opts: ServiceOptions) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    this.trust = new Trust(opts.store, this.now);
    // One listener per watching agent: thousands are expected.
    this.events.setMaxListeners(0);
    // Changes made through other replicas on the same database reach this one's agents.
    opts.store.watchChanges?.((ids) => {
      for (const id of ids.includes('*') ? this.events.eventNames() : ids) this.events.emit(id);
    });
    this.rollouts = new RolloutWiring({
      store: opts.store,
      now: this.now,
      notify: (id) => this.notify(id),
      // Three missed heartbeats while applying: the agent went offline.
      timeouts: { silentMs: 3 * opts.heartbeatIntervalMs + 5_000, ...(opts.rolloutReadyMs ? { readyMs: opts.rolloutReadyMs } : {}) },
      // As the fleet health counts it offline (clock()).
      offlineAfterMs: 3 * opts.heartbeatIntervalMs,
      log: opts.log,
    });
  }

  /** The rollout engine wired to the store and the agents (docs/ROLLOUTS.md). */
  readonly rollouts: RolloutWiring;

  /** Starts advancing rollouts on a timer (the server does; tests of the service alone need not). */
  startRollouts(): void {
    this.rollouts.start(this.opts.rolloutTickMs ?? 2_000);
  }

  stopRollouts(): void {
    this.rollouts.stop();
  }

  get heartbeatIntervalMs(): number {
    return this.opts.heartbeatIntervalMs;
  }

  /** An instance is offline after missing three heartbeats. */
  clock(): HealthClock {
    const now = this.now();
    return { now, offlineBefore: now - 3 * this.opts.heartbeatIntervalMs };
  }

  /**
   * Verifies the proof, then records the enrollment with its trust checks
   * (nonce binding, join token use, allowed roles) in one transaction and
   * returns a client certificate. A refusal is recorded in the audit log.
   */
  async enroll(identity: InstanceIdentity, proof: EnrollmentProof, publicKeyPem: string, ctx: EnrollContext = {}) {
    // A malformed key is refused before anything is checked, used up or recorded.
    const publicKey = await importClientPublicKey(publicKeyPem);
    let verified;
    try {
      verified = await this.opts.verifier.verify(identity, proof);
      const id = verified.identity.instanceId;
      const cert = await issueClientCertificate(this.opts.ca, id, publicKey, this.opts.clientCertificateLifetimeMs);
      const outcome = await this.store.enroll(verified.identity, `agent:${id}`, this.now(), {
        enrolledVia: verified.via,
        allowedRoles: verified.allowedRoles,
        nonceHash: ctx.nonce ? sha256Hex(ctx.nonce) : undefined,
        joinTokenId: verified.joinTokenId,
        certificate: { serial: cert.serial, expiresAt: cert.expiresAt.getTime() },
      });
      if (outcome.matchedRule) this.notify(id);
      await this.rollouts.admitBooted(outcome.record);
      const assignment = await this.servedState(outcome.record);
      return {
        record: outcome.record,
        assignment,
        matchedRule: outcome.matchedRule,
        certPem: cert.certPem,
        expiresAt: cert.expiresAt,
        serial: cert.serial,
        spkiDer: publicKey.spkiDer,
        caPem: this.opts.ca.certPem,
        via: verified.via,
      };
    } catch (err) {
      const denied = err instanceof EnrollRefused ? new EnrollmentDenied(err.message, err.reason) : err;
      if (denied instanceof EnrollmentDenied) {
        const method = proof.ec2Identity ? 'ec2' : proof.joinToken !== undefined ? 'join-token' : 'none';
        await this.store.recordRefusal(
          `grpc:${ctx.peer ?? 'unknown'}`,
          'enroll.refused',
          identity.instanceId,
          {
            reason: denied.reason,
            message: denied.message,
            method,
            ...(verified?.details ?? {}),
            ...denied.details,
          },
          this.now(),
        );
      }
      throw denied;
    }
  }

  async assignmentState(instanceId: string): Promise<AssignmentStateView> {
    const record = await this.instanceRecord(instanceId);
    if (!record) throw new NotFoundError(`instance ${instanceId} is not enrolled`);
    return this.servedState(record);
  }

  private async servedState(record: InstanceRecord): Promise<AssignmentStateView> {
    return assignmentStateOf(record.instanceId, await this.rollouts.served(record, await this.servedSettings()));
  }

  /**
   * The settings every served state and status answer is made from: a change
   * reaching a thousand watching agents, or their thousand reports, share a
   * few reads (coalesced) instead of one each.
   */
  private readonly servedSettings = coalesced(() => this.store.getSettings());

  /** Instance records asked for together (watchers told of one change, concurrent status reports) are read together. */
  private readonly instanceRecord = batched(
    async (ids: string[]) => new Map((await this.store.getInstances(ids)).map((r) => [r.instanceId, r])),
  );

  /** Calls `listener` after every change that concerns the instance; returns the unsubscribe function. */
  watch(instanceId: string, listener: () => void): () => void {
    this.events.on(instanceId, listener);
    return () => this.events.off(instanceId, listener);
  }

  private notify(instanceId: string): void {
    this.events.emit(instanceId);
  }

  async reportStatus(instanceId: string, appliedGeneration: number, status: Omit<InstanceStatus, 'reportedAt'>, facts: HostFacts | null) {
    // Generations only grow, so one read before the write is enough: an agent cannot have applied what it was never given.
    const current = await this.instanceRecord(instanceId);
    if (current && appliedGeneration > current.generation)
      throw new InputError(
        'applied_generation',
        `${appliedGeneration} is above the desired generation ${current.generation}: report the generation of the assignment state applied`,
      );
    const record = await this.store.recordStatus(instanceId, appliedGeneration, { ...status, reportedAt: this.now() }, facts);
    if (!record) throw new NotFoundError(`instance ${instanceId} is not enrolled; enroll again`);
    this.rollouts.reported(instanceId);
    // The generation the agent is to have is the one released to it, not the newest.
    return { ...record, generation: (await this.rollouts.served(record, await this.servedSettings())).generation };
  }

  /** The ACME certificate manager of this replica, when ACME is configured (told of renewal requests). */
  certificates: { poke(): void } | undefined;

  get certificateAlertMs(): number {
    return this.opts.certificateAlertMs ?? DEFAULT_CERTIFICATE_ALERT_MS;
  }

  get publisherLeaseMs(): number {
    return this.opts.publisherLeaseMs ?? DEFAULT_PUBLISHER_LEASE_MS;
  }

  /** Only an enrolled instance assigned the auth role may hold a lease. */
  private async leaseHolder(instanceId: string, name: string): Promise<string> {
    const leaseName = name || 'publisher';
    if (!(LEASE_NAMES as readonly string[]).includes(leaseName))
      throw new InputError('name', `unknown lease "${leaseName}"; known leases: ${LEASE_NAMES.join(', ')}`);
    const record = await this.store.getInstance(instanceId);
    if (!record || record.enrolledAt === null) throw new NotFoundError(`instance ${instanceId} is not enrolled; enroll again`);
    if (!record.assignment?.roles.includes('auth'))
      throw new ForbiddenError(`instance ${instanceId} is not assigned the auth role; only auth servers may hold the ${leaseName} lease`);
    return leaseName;
  }

  async acquireLease(instanceId: string, name: string): Promise<LeaseGrant> {
    const leaseName = await this.leaseHolder(instanceId, name);
    return this.withTokenNames(leaseName, await this.store.acquireLease(leaseName, instanceId, this.publisherLeaseMs));
  }

  async renewLease(instanceId: string, name: string, fencing: number): Promise<LeaseGrant> {
    const leaseName = await this.leaseHolder(instanceId, name);
    return this.withTokenNames(leaseName, await this.store.renewLease(leaseName, instanceId, fencing, this.publisherLeaseMs));
  }

  /** The join token names the fleet needs now: every assignment of an instance or a rule, and the cluster's trust role. */
  async joinTokenNames(): Promise<string[]> {
    const [settings, assignments, rules] = await Promise.all([
      this.store.getSettings(),
      this.store.distinctAssignments(),
      this.store.listRules(),
    ]);
    return joinTokenNamesOf(settings, [...assignments, ...rules.map((r): Assignment => ({ roles: r.roles, labels: r.labels }))]);
  }

  /** Only the holder of the publisher lease is told the names: every renewal carries the current ones. */
  private async withTokenNames(leaseName: string, outcome: LeaseOutcome): Promise<LeaseGrant> {
    return { ...outcome, joinTokenNames: outcome.granted && leaseName === 'publisher' ? await this.joinTokenNames() : [] };
  }

  /** Released by its holder (also after it lost the auth role). */
  async releaseLease(instanceId: string, name: string, fencing: number): Promise<LeaseOutcome> {
    const leaseName = name || 'publisher';
    if (!(LEASE_NAMES as readonly string[]).includes(leaseName))
      throw new InputError('name', `unknown lease "${leaseName}"; known leases: ${LEASE_NAMES.join(', ')}`);
    return this.store.releaseLease(leaseName, instanceId, fencing);
  }

  async assign(instanceId: string, input: AssignmentInput, actor: string, strategy?: RolloutStrategy): Promise<InstanceRecord> {
    const assignment = assignmentFromInput(input);
    // An instance enrolled with a join token that restricts roles gets no other role.
    const current = await this.store.getInstance(instanceId);
    const outside = disallowedRoles(assignment.roles, current?.allowedRoles);
    if (outside.length) {
      await this.store.recordRefusal(
        actor,
        'assignment.refused',
        instanceId,
        { reason: 'role-not-allowed', roles: assignment.roles, allowedRoles: current?.allowedRoles, via: current?.enrolledVia },
        this.now(),
      );
      throw new ForbiddenError(
        `instance ${instanceId} enrolled with a join token that allows ${current!.allowedRoles!.join(', ')}; it may not run ${outside.join(', ')}`,
      );
    }
    // The agent's renderer, on the current settings: an impossible layout is refused here, not at boot.
    const settings = await this.store.getSettings();
    checkAssignmentRenders(assignment, settings);
    // Teleport's version rule against the rest of the fleet (read only when a release is named).
    await checkAssignmentRelease(
      instanceId,
      assignment,
      current?.assignment ?? undefined,
      settings,
      () => storedAssignments(this.store),
      () => this.store.teleportVersions(),
    );
    return this.changeAssignment(instanceId, assignment, actor, strategy);
  }

  async unassign(instanceId: string, actor: string): Promise<InstanceRecord> {
    if (!(await this.store.getInstance(instanceId))) throw new NotFoundError(`instance ${instanceId} not found`);
    return this.changeAssignment(instanceId, null, actor);
  }

  /** An assignment change: of an enrolled host, a rollout of that host (or the active rollout's successor); otherwise at once. */
  private async changeAssignment(instanceId: string, assignment: Assignment | null, actor: string, strategy?: RolloutStrategy) {
    const existing = await this.store.getInstance(instanceId);
    if (!existing) {
      const record = await this.store.setAssignment(instanceId, assignment, actor, this.now());
      this.notify(instanceId);
      return record;
    }
    await this.rollouts.applyChange(
      { assignments: [{ instanceId, assignment }] },
      { actor, reason: `${assignment ? 'PUT' : 'DELETE'} /v1/instances/${instanceId}/assignment`, ...(strategy ? { strategy } : {}) },
      [
        {
          action: assignment ? 'assignment.set' : 'assignment.clear',
          target: instanceId,
          details: { before: existing.assignment, after: assignment },
        },
      ],
    );
    this.notify(instanceId);
    return (await this.store.getInstance(instanceId))!;
  }

  async deleteInstance(instanceId: string, actor: string): Promise<void> {
    if (!(await this.store.deleteInstance(instanceId, actor, this.now()))) throw new NotFoundError(`instance ${instanceId} not found`);
    await this.rollouts.forget(instanceId);
    this.notify(instanceId);
  }

  async getInstance(instanceId: string): Promise<InstanceRecord & { health: HealthState }> {
    const page = await this.store.listInstances({ instanceId, limit: 1 }, this.clock());
    if (!page.items[0]) throw new NotFoundError(`instance ${instanceId} not found`);
    return page.items[0];
  }

  async updateSettings(patch: SettingsPatch, actor: string, options: SettingsChangeOptions = {}): Promise<ClusterSettings> {
    return (await this.updateVersionedSettings(patch, actor, options)).value;
  }

  /** The settings with their version (the REST ETag). */
  getVersionedSettings(): Promise<Versioned<ClusterSettings>> {
    return this.store.getVersionedSettings();
  }

  /**
   * Applies a patch to the settings. With `basedOn` (REST If-Match) it is
   * refused (VersionConflictError) unless the settings are still at that
   * version; without, a change saved meanwhile (another replica, another
   * operator) is never lost: the patch is applied again over it.
   */
  async updateVersionedSettings(
    patch: SettingsPatch,
    actor: string,
    { basedOn, strategy }: SettingsChangeOptions = {},
  ): Promise<Versioned<ClusterSettings>> {
    for (let attempt = 1; ; attempt++) {
      const { value: current, version } = await this.store.getVersionedSettings();
      if (basedOn !== undefined && basedOn !== version) throw new VersionConflictError('settings', basedOn, version, '/v1/settings');
      const next = applySettingsPatch(current, patch);
      validateClusterSettings(next);
      // Rendered against every distinct assignment stored: the operator learns here what a change breaks.
      const running = 'teleport' in patch ? await this.store.teleportVersions() : undefined;
      checkSettingsAgainst(current, next, await storedAssignments(this.store), Object.keys(patch), running);
      try {
        // Rolled out (rollout-wiring.ts): only hosts whose files change get a new generation, in waves.
        const saved = await this.rollouts.applyChange(
          { settings: next, settingsBasedOn: version },
          { actor, reason: `PATCH /v1/settings ${Object.keys(patch).join(' ')}`, ...(strategy ? { strategy } : {}) },
          [{ action: 'settings.update', target: 'settings', details: { before: current, after: next } }],
        );
        // The proxy address or bucket may have changed what certificate to manage.
        this.certificates?.poke();
        return { value: next, version: saved.settingsVersion ?? version };
      } catch (err) {
        if (!(err instanceof VersionConflictError) || basedOn !== undefined || attempt >= 5) throw err;
      }
    }
  }

  /** The rules in order with their version (the REST ETag). */
  listVersionedRules(): Promise<Versioned<Rule[]>> {
    return this.store.listVersionedRules();
  }

  async addRule(input: RuleCreation, actor: string, basedOn?: number): Promise<Rule> {
    return (await this.addVersionedRule(input, actor, basedOn)).value;
  }

  /** Adds a rule; with `basedOn` (REST If-Match), only while the rules are at that version. */
  async addVersionedRule(input: RuleCreation, actor: string, basedOn?: number): Promise<Versioned<Rule>> {
    const { roles, labels } = assignmentFromInput({ role: input.role, roles: input.roles, labels: input.labels });
    checkAssignmentRenders({ roles, labels }, await this.store.getSettings());
    const rule: RuleInput = { name: input.name, selector: input.selector, roles, labels };
    return this.store.addRule(rule, input.position, actor, this.now(), basedOn);
  }

  /** Applies a rule to the enrolled instances it matches, as one rollout (or only plans it: dryRun); rule-apply.ts. */
  applyRule(id: string, options: RuleApplyOptions) {
    return applyRule({ store: this.store, rollouts: this.rollouts }, id, options);
  }

  /** Deletes a rule (with `basedOn`, only while the rules are at that version); the rules' new version. */
  async deleteRule(id: string, actor: string, basedOn?: number): Promise<number> {
    const version = await this.store.deleteRule(id, actor, this.now(), basedOn);
    if (version === undefined) throw new NotFoundError(`rule ${id} not found`);
    return version;
  }

  // What the REST face reads and writes, so that it never reaches the store itself.

  getSettings(): Promise<ClusterSettings> {
    return this.store.getSettings();
  }

  /** The stored record, or undefined (getInstance throws NotFoundError instead, and adds the health). */
  findInstance(instanceId: string): Promise<InstanceRecord | undefined> {
    return this.store.getInstance(instanceId);
  }

  /** A page of instances (Store.listInstanceViews) and the clock their health is to be read with (rest/views.ts InstancePages). */
  async listInstanceViews<T>(query: InstanceQuery, cachedView: (id: string, version: number) => T | undefined) {
    const clock = this.clock();
    return { ...(await this.store.listInstanceViews(query, clock, cachedView)), clock };
  }

  /** Counts by role set and health; concurrent callers share a read (coalesced). */
  readonly healthSummary = coalesced(() => this.store.healthSummary(this.clock()));

  listRules(): Promise<Rule[]> {
    return this.store.listRules();
  }

  listAudit(query: { after?: number; limit: number; target?: string }) {
    return this.store.listAudit(query);
  }

  /** A refused request, counted per actor, action, reason and minute in the audit log. */
  recordRefusal(actor: string, action: string, target: string, details: Record<string, unknown> & { reason: string }): Promise<void> {
    return this.store.recordRefusal(actor, action, target, details, this.now());
  }

  listApiTokens() {
    return this.store.listApiTokens();
  }

  listJoinTokens() {
    return this.store.listJoinTokens();
  }

  /** Read by every /v1/health: concurrent callers share a read (coalesced). */
  readonly listProxyCertificates = coalesced(() => this.store.listProxyCertificates());

  readonly listServedCertificates = coalesced(() => this.store.listServedCertificates());

  /** Asks for a renewal of a managed certificate at once; NotFoundError for a domain not managed. */
  async requestRenewal(domain: string, actor: string): Promise<void> {
    if (!(await this.store.requestRenewal(domain, actor, this.now())))
      throw new NotFoundError(
        `no managed certificate for ${domain}; GET /v1/certificates lists them (the control server manages one only with acme in control.yaml)`,
      );
    this.certificates?.poke();
  }

  // Rollouts (REST: control/rest/rollouts.ts)

  listRollouts(query: { limit: number; before?: string }) {
    return this.store.listRollouts(query);
  }

  /** The rollout under way (running, paused or halted), for the instance views, /v1/health and /metrics; concurrent callers share a read (coalesced). */
  readonly activeRollout = coalesced(async (): Promise<Rollout | undefined> => (await this.store.activeRollout())?.rollout);

  /** rolloutStates of the rollout read last: the callers that shared its read share the map too. */
  private readonly heldBy = new WeakMap<Rollout, Map<string, RolloutHold>>();

  /** Each host of the rollout under way with its state in it (the instance views show it). */
  async rolloutStates(): Promise<ReadonlyMap<string, RolloutHold>> {
    const active = await this.activeRollout();
    if (!active) return new Map();
    let held = this.heldBy.get(active);
    if (!held) this.heldBy.set(active, (held = new Map(active.hosts.map((h) => [h.instanceId, { id: active.id, state: h.state }]))));
    return held;
  }

  async activeRolloutSummary() {
    const active = await this.activeRollout();
    return active && { summary: summaryOf(active), samples: metricSamples(active) };
  }

  /** A rollout's progress, each failed host with its agent's last log lines when it sent them. */
  async rolloutProgress(id: string) {
    const progress = await this.rollouts.get(id);
    const hostStates = await Promise.all(
      progress.hostStates.map(async (h) => {
        if (h.state !== 'failed') return h;
        const logTail = (await this.store.getInstance(h.instanceId))?.status?.logTail;
        return logTail?.length ? { ...h, logTail } : h;
      }),
    );
    return { ...progress, hostStates };
  }

  pauseRollout(id: string, actor: string) {
    return this.rollouts.pause(id, actor);
  }

  resumeRollout(id: string, actor: string) {
    return this.rollouts.resume(id, actor);
  }

  abortRollout(id: string, actor: string, strategy?: RolloutStrategy) {
    return this.rollouts.abort(id, actor, strategy);
  }

  storeBytes(): Promise<number> {
    return this.store.storeBytes();
  }

  /** "sqlite" or "postgres": how /readyz paces its checks. */
  get storeKind(): string {
    return this.store.kind;
  }

  /** Throws, saying why, when the store cannot be read (/readyz). */
  checkStoreReadable(): Promise<void> {
    return this.store.checkReadable();
  }
}
