// The control server's domain logic, shared by the gRPC and REST faces:
// enrollment, assignments, settings, rules, status, and change notification.
import { EventEmitter } from 'node:events';
import {
  ROLE_NAMES,
  certDomainOf,
  servicesOf,
  type Assignment,
  type ClusterSettings,
  type HealthState,
  type HostFacts,
  type InstanceIdentity,
  type ServiceRole,
} from '../common/model';
import type { CertificateAuthority } from './pki';
import { issueClientCertificate } from './pki';
import type { EnrollmentProof, EnrollmentVerifier } from './enrollment';
import type { HealthClock, InstanceRecord, InstanceStatus, Rule, RuleInput, Store } from './store/store';
import { validateClusterSettings, validateAssignment } from './validation';
import { InputError, NotFoundError } from './errors';

export { InputError, NotFoundError };

/** Input an operator gives: a role name (preset) or a list of services. */
export interface AssignmentInput {
  role?: string;
  roles?: string[];
  labels?: Record<string, string>;
  nodename?: string;
}


export interface AssignmentStateView {
  instanceId: string;
  generation: number;
  assigned: boolean;
  assignment: Assignment | null;
  cluster: ClusterSettings & { certDomain: string };
}

export interface ServiceOptions {
  store: Store;
  ca: CertificateAuthority;
  verifier: EnrollmentVerifier;
  clientCertificateLifetimeMs: number;
  heartbeatIntervalMs: number;
  now?: () => number;
}

export function assignmentFromInput(input: AssignmentInput): Assignment {
  if ((input.role === undefined) === (input.roles === undefined)) {
    throw new InputError('role', `give either "role" (one of ${ROLE_NAMES.join(', ')}) or "roles" (a list of services)`);
  }
  const names = input.role !== undefined ? [input.role] : input.roles!;
  const services = new Set<ServiceRole>();
  names.forEach((name, i) => {
    const expanded = servicesOf(name);
    if (!expanded) throw new InputError(input.role !== undefined ? 'role' : `roles[${i}]`, `unknown role "${name}"; known roles: ${ROLE_NAMES.join(', ')}`);
    expanded.forEach((s) => services.add(s));
  });
  const assignment: Assignment = { roles: [...services].sort(), labels: input.labels ?? {} };
  if (input.nodename) assignment.nodename = input.nodename;
  validateAssignment(assignment);
  return assignment;
}

export class ControlService {
  readonly store: Store;
  private readonly events = new EventEmitter();
  private readonly now: () => number;

  constructor(private readonly opts: ServiceOptions) {
    this.store = opts.store;
    this.now = opts.now ?? Date.now;
    // One listener per watching agent: thousands are expected.
    this.events.setMaxListeners(0);
  }

  get heartbeatIntervalMs(): number {
    return this.opts.heartbeatIntervalMs;
  }

  /** An instance is offline after missing three heartbeats. */
  clock(): HealthClock {
    const now = this.now();
    return { now, offlineBefore: now - 3 * this.opts.heartbeatIntervalMs };
  }

  async enroll(identity: InstanceIdentity, proof: EnrollmentProof, publicKeyPem: string) {
    const verified = await this.opts.verifier.verify(identity, proof);
    // Sign first: a malformed key must not leave an enrollment recorded.
    const cert = await issueClientCertificate(this.opts.ca, verified.instanceId, publicKeyPem, this.opts.clientCertificateLifetimeMs);
    const outcome = await this.store.enroll(verified, `agent:${verified.instanceId}`, this.now());
    if (outcome.matchedRule) this.notify(verified.instanceId);
    return { record: outcome.record, matchedRule: outcome.matchedRule, certPem: cert.certPem, expiresAt: cert.expiresAt, caPem: this.opts.ca.certPem };
  }

  async assignmentState(instanceId: string): Promise<AssignmentStateView> {
    const [record, cluster] = await Promise.all([this.store.getInstance(instanceId), this.store.getSettings()]);
    if (!record) throw new NotFoundError(`instance ${instanceId} is not enrolled`);
    return {
      instanceId,
      generation: record.generation,
      assigned: record.assignment !== null,
      assignment: record.assignment,
      cluster: { ...cluster, certDomain: certDomainOf(cluster) },
    };
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
    const record = await this.store.recordStatus(instanceId, appliedGeneration, { ...status, reportedAt: this.now() }, facts);
    if (!record) throw new NotFoundError(`instance ${instanceId} is not enrolled; enroll again`);
    return record;
  }

  async assign(instanceId: string, input: AssignmentInput, actor: string): Promise<InstanceRecord> {
    const record = await this.store.setAssignment(instanceId, assignmentFromInput(input), actor, this.now());
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

  async updateSettings(patch: Partial<ClusterSettings>, actor: string): Promise<ClusterSettings> {
    const current = await this.store.getSettings();
    const next: ClusterSettings = { ...current, ...patch, storage: { ...current.storage, ...(patch.storage ?? {}) } };
    if (patch.storage?.type === 'dir') next.storage = { type: 'dir' };
    validateClusterSettings(next);
    const bumped = await this.store.updateSettings(next, actor, this.now());
    for (const id of bumped) this.notify(id);
    return next;
  }

  async addRule(input: { name: string; selector: Record<string, string>; role?: string; roles?: string[]; labels?: Record<string, string>; position?: number }, actor: string): Promise<Rule> {
    const { roles, labels } = assignmentFromInput({ role: input.role, roles: input.roles, labels: input.labels });
    const rule: RuleInput = { name: input.name, selector: input.selector, roles, labels };
    return this.store.addRule(rule, input.position, actor, this.now());
  }

  async deleteRule(id: string, actor: string): Promise<void> {
    if (!(await this.store.deleteRule(id, actor, this.now()))) throw new NotFoundError(`rule ${id} not found`);
  }
}
