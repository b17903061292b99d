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
  settingsVersion,
  type HealthClock,
  type InstanceQuery,
  type LeaseOutcome,
  type InstanceRecord,
  type InstanceStatus,
  type Rule,
  type RuleInput,
  type Store,
} from './store/store';
import { Trust } from './trust';
import { CallLimits } from './call-limits';
import { ConflictError, ForbiddenError } from './errors';
import {
  applySettingsPatch,
  checkAssignmentRenders,
  checkSettingsAgainst,
  storedAssignments,
  validateClusterSettings,
  validateAssignment,
  type SettingsPatch,
} from './validation';
import { InputError, NotFoundError } from './errors';
import { checkAssignmentRelease } from './release-rules';
import { requirementsOf } from '../contract/render/render';
import { assignmentOptions } from '../contract/assignment';
import { coalesced } from './coalesce';

export { InputError, NotFoundError };

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

/** What an agent is to run: its record's assignment with the cluster settings. */
function assignmentStateOf(record: InstanceRecord, cluster: ClusterSettings): AssignmentStateView {
  return {
    instanceId: record.instanceId,
    generation: record.generation,
    assigned: record.assignment !== null,
    assignment: record.assignment,
    cluster: { ...cluster, certDomain: certDomainOf(cluster) },
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
      const assignment = assignmentStateOf(outcome.record, await this.store.getSettings());
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
    const [record, cluster] = await Promise.all([this.store.getInstance(instanceId), this.store.getSettings()]);
    if (!record) throw new NotFoundError(`instance ${instanceId} is not enrolled`);
    return assignmentStateOf(record, cluster);
  }

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
    const current = await this.store.getInstance(instanceId);
    if (current && appliedGeneration > current.generation)
      throw new InputError(
        'applied_generation',
        `${appliedGeneration} is above the desired generation ${current.generation}: report the generation of the assignment state applied`,
      );
    const record = await this.store.recordStatus(instanceId, appliedGeneration, { ...status, reportedAt: this.now() }, facts);
    if (!record) throw new NotFoundError(`instance ${instanceId} is not enrolled; enroll again`);
    return record;
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
    return this.withTokenNames(leaseName, await this.store.acquireLease(leaseName, instanceId, this.now(), this.publisherLeaseMs));
  }

  async renewLease(instanceId: string, name: string, fencing: number): Promise<LeaseGrant> {
    const leaseName = await this.leaseHolder(instanceId, name);
    return this.withTokenNames(leaseName, await this.store.renewLease(leaseName, instanceId, fencing, this.now(), this.publisherLeaseMs));
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
    return this.store.releaseLease(leaseName, instanceId, fencing, this.now());
  }

  async assign(instanceId: string, input: AssignmentInput, actor: string): Promise<InstanceRecord> {
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
    await checkAssignmentRelease(instanceId, assignment, current?.assignment ?? undefined, settings, () => storedAssignments(this.store));
    const record = await this.store.setAssignment(instanceId, assignment, actor, this.now());
    this.notify(instanceId);
    return record;
  }

  async unassign(instanceId: string, actor: string): Promise<InstanceRecord> {
    if (!(await this.store.getInstance(instanceId))) throw new NotFoundError(`instance ${instanceId} not found`);
    const record = await this.store.setAssignment(instanceId, null, actor, this.now());
    this.notify(instanceId);
    return record;
  }

  async deleteInstance(instanceId: string, actor: string): Promise<void> {
    if (!(await this.store.deleteInstance(instanceId, actor, this.now()))) throw new NotFoundError(`instance ${instanceId} not found`);
    this.notify(instanceId);
  }

  async getInstance(instanceId: string): Promise<InstanceRecord & { health: HealthState }> {
    const page = await this.store.listInstances({ instanceId, limit: 1 }, this.clock());
    if (!page.items[0]) throw new NotFoundError(`instance ${instanceId} not found`);
    return page.items[0];
  }

  /**
   * Applies a patch to the settings as they are. With `ifMatch` (a
   * settingsVersion the caller read), ConflictError when they changed since.
   * Without it, a change another writer made meanwhile is kept: the patch is
   * applied again on top of it.
   */
  async updateSettings(patch: SettingsPatch, actor: string, ifMatch?: string): Promise<ClusterSettings> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.patchSettings(patch, actor, ifMatch);
      } catch (err) {
        if (!(err instanceof ConflictError) || ifMatch !== undefined || attempt >= 5) throw err;
      }
    }
  }

  private async patchSettings(patch: SettingsPatch, actor: string, ifMatch: string | undefined): Promise<ClusterSettings> {
    const current = await this.store.getSettings();
    const basedOn = settingsVersion(current);
    if (ifMatch !== undefined && ifMatch !== basedOn)
      throw new ConflictError('the settings changed since they were read: read them again (GET /v1/settings) and apply the change to them');
    const next = applySettingsPatch(current, patch);
    validateClusterSettings(next);
    // Rendered against every distinct assignment stored: the operator learns here what a change breaks.
    checkSettingsAgainst(current, next, await storedAssignments(this.store), Object.keys(patch));
    const bumped = await this.store.updateSettings(next, actor, this.now(), basedOn);
    for (const id of bumped) this.notify(id);
    // The proxy address or bucket may have changed what certificate to manage.
    this.certificates?.poke();
    return next;
  }

  async addRule(
    input: {
      name: string;
      selector: Record<string, string>;
      role?: string;
      roles?: string[];
      labels?: Record<string, string>;
      position?: number;
    },
    actor: string,
  ): Promise<Rule> {
    const { roles, labels } = assignmentFromInput({ role: input.role, roles: input.roles, labels: input.labels });
    checkAssignmentRenders({ roles, labels }, await this.store.getSettings());
    const rule: RuleInput = { name: input.name, selector: input.selector, roles, labels };
    return this.store.addRule(rule, input.position, actor, this.now());
  }

  async deleteRule(id: string, actor: string): Promise<void> {
    if (!(await this.store.deleteRule(id, actor, this.now()))) throw new NotFoundError(`rule ${id} not found`);
  }

  // What the REST face reads and writes, so that it never reaches the store itself.

  getSettings(): Promise<ClusterSettings> {
    return this.store.getSettings();
  }

  /** The stored record, or undefined (getInstance throws NotFoundError instead, and adds the health). */
  findInstance(instanceId: string): Promise<InstanceRecord | undefined> {
    return this.store.getInstance(instanceId);
  }

  listInstances(query: InstanceQuery) {
    return this.store.listInstances(query, this.clock());
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

  storeBytes(): Promise<number> {
    return this.store.storeBytes();
  }

  /** Throws, saying why, when the store cannot be read (/readyz). */
  checkStoreReadable(): Promise<void> {
    return this.store.checkReadable();
  }
}
