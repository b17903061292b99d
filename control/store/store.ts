// The store interface: everything the control server keeps. SQLite is the
// embedded default; a PostgreSQL implementation satisfies the same interface
// for several replicas. Every change and its audit event commit together.
import type { RolloutStore } from './rollouts';
import type { ListedInstance } from './rows';
import type { Assignment, ClusterSettings, HealthState, HostFacts, InstanceIdentity, AgentState, ServiceRole } from '../../contract/model';

export interface InstanceStatus {
  state: AgentState;
  teleportUnitState: string;
  teleportReady: boolean;
  message: string;
  agentVersion: string;
  /** The Teleport version the host runs, as its agent reported it; absent when unknown. */
  teleportVersion?: string;
  reportedAt: number;
  /** Proxies: when the certificate Teleport serves expires (unix ms); absent elsewhere. */
  certificateExpiresAt?: number;
  /** When Teleport is not ready: its last log lines, secrets masked; absent otherwise. */
  logTail?: string[];
  /** Files the agent wrote that were changed by hand since (drift), each with a unified diff; absent when none. */
  drift?: Array<{ path: string; diff: string }>;
}

export const PROXY_CERTIFICATE_STATES = ['pending', 'valid', 'renewing', 'failing'] as const;
export type ProxyCertificateState = (typeof PROXY_CERTIFICATE_STATES)[number];

/** A proxy certificate the control server obtains and renews (its key and PEM live in S3 only). */
export interface ProxyCertificate {
  domain: string;
  /** pending: never issued yet; valid: in S3 and not due; renewing: an order is under way; failing: the last attempt failed. */
  state: ProxyCertificateState;
  serial: string | null;
  notBefore: number | null;
  notAfter: number | null;
  /** ETag of live/{domain}/fullchain.pem as last written or read. */
  etag: string | null;
  issuedAt: number | null;
  checkedAt: number | null;
  lastAttemptAt: number | null;
  /** Consecutive failed attempts. */
  failures: number;
  lastError: string | null;
  nextAttemptAt: number | null;
  /** An operator asked for a renewal before it is due. */
  renewRequested: boolean;
  updatedAt: number;
}

/** A served certificate as an agent last reported it. */
export interface ServedCertificate {
  instanceId: string;
  expiresAt: number;
  reportedAt: number;
}

export interface InstanceRecord {
  instanceId: string;
  /** Null while the instance was assigned ahead of its first boot. */
  identity: InstanceIdentity | null;
  enrolledAt: number | null;
  lastSeenAt: number | null;
  assignment: Assignment | null;
  /** Bumped by every change to what this instance should run. */
  generation: number;
  appliedGeneration: number;
  /** The generation a rollout released to it (what its agent is served); null or absent: the newest. */
  releasedGeneration?: number | null;
  status: InstanceStatus | null;
  facts: HostFacts | null;
  createdAt: number;
  updatedAt: number;
  /** How the instance proved itself at its last enrollment: "ec2", "join-token:<id>", "bootstrap-token". */
  enrolledVia: string | null;
  /** Services its join token allows it to run; null when unrestricted. */
  allowedRoles: ServiceRole[] | null;
}

export interface Rule {
  id: string;
  name: string;
  /** EC2 tags that must all match; "*" matches any value of a present tag. */
  selector: Record<string, string>;
  roles: ServiceRole[];
  labels: Record<string, string>;
  createdAt: number;
}

export type RuleInput = Omit<Rule, 'id' | 'createdAt'>;

export interface AuditEvent {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
  /** How many events this row stands for: refusals are counted per actor, action, reason and minute. */
  count: number;
  /** When the last of them happened (the first is `at`); null for a single event. */
  lastAt: number | null;
}

/** How long audit events are kept, and how many at most. */
export interface AuditRetention {
  /** Events older than this many milliseconds are removed. */
  maxAgeMs: number;
  /** The oldest events beyond this many rows are removed. */
  maxRows: number;
}

export interface InstanceQuery {
  /** One instance only (its health computed the same way as in lists). */
  instanceId?: string;
  role?: ServiceRole;
  health?: HealthState;
  limit: number;
  /** Keyset cursor: instance ids after this one. */
  after?: string;
}

export interface HealthClock {
  now: number;
  /** Instances not heard from since this instant are offline. */
  offlineBefore: number;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

export interface EnrollOutcome {
  record: InstanceRecord;
  /** The rule that gave the instance its assignment at this enrollment. */
  matchedRule?: Rule;
}

/** REST API token scopes, each including the ones after it. */
export const API_SCOPES = ['admin', 'operator', 'monitor'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** An API token as stored: its secret is kept only as a SHA-256 hash. */
export interface ApiToken {
  id: string;
  name: string;
  scope: ApiScope;
  createdAt: number;
  createdBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface JoinToken {
  id: string;
  name: string;
  /** Services an instance enrolled with this token may run; null: any. */
  roles: ServiceRole[] | null;
  expiresAt: number;
  /** null: any number of enrollments until it expires. */
  maxUses: number | null;
  uses: number;
  createdAt: number;
  createdBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** Why a join token cannot be used now, or undefined when it can. */
export function joinTokenProblem(t: JoinToken, now: number): string | undefined {
  if (t.revokedAt !== null) return `join token "${t.name}" was revoked`;
  if (t.expiresAt <= now) return `join token "${t.name}" expired at ${new Date(t.expiresAt).toISOString()}`;
  if (t.maxUses !== null && t.uses >= t.maxUses) return `join token "${t.name}" has no uses left (${t.maxUses} allowed)`;
  return undefined;
}

export interface IssuedCertificate {
  serial: string;
  instanceId: string;
  issuedAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** What an enrollment proved, applied in the same transaction as the enrollment. */
export interface EnrollTrust {
  enrolledVia?: string;
  allowedRoles?: ServiceRole[] | null;
  /** SHA-256 (hex) of the client nonce: bound on first enrollment, required to match afterwards. */
  nonceHash?: string;
  /** A use of this join token is counted, and refused when none is left. */
  joinTokenId?: string;
  /** The client certificate issued, recorded so that it can be revoked. */
  certificate?: { serial: string; expiresAt: number };
}

export type EnrollRefusal = 'nonce-required' | 'nonce-mismatch' | 'token-unusable' | 'role-not-allowed';

/** The store refused an enrollment; nothing was written. */
export class EnrollRefused extends Error {
  constructor(
    readonly reason: EnrollRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** Services outside `allowed` in `roles`; empty when all are allowed (or nothing is restricted). */
export function disallowedRoles(roles: readonly string[], allowed: readonly string[] | null | undefined): string[] {
  return allowed ? roles.filter((r) => !allowed.includes(r)) : [];
}

export interface Store extends RolloutStore {
  readonly kind: string;
  getSettings(): Promise<ClusterSettings>;
  /** The settings with their version (what an ETag names). */
  getVersionedSettings(): Promise<Versioned<ClusterSettings>>;
  /**
   * Saves settings and bumps the generation of every assigned instance (their
   * ids are returned) and the settings' version. With `basedOn`, throws
   * VersionConflictError, writing nothing, unless it is the current version.
   */
  updateSettings(settings: ClusterSettings, actor: string, now: number, basedOn?: number): Promise<{ bumped: string[]; version: number }>;

  /**
   * Records an enrollment; an instance with no assignment takes the first matching rule's
   * (when its join token allows that rule's roles). Throws EnrollRefused, writing nothing,
   * when the trust checks fail.
   */
  enroll(identity: InstanceIdentity, actor: string, now: number, trust?: EnrollTrust): Promise<EnrollOutcome>;
  getInstance(instanceId: string): Promise<InstanceRecord | undefined>;
  /** The instances among `instanceIds` that exist (any order): one read for many (a rollout's awaited hosts, watchers told of a change). */
  getInstances(instanceIds: readonly string[]): Promise<InstanceRecord[]>;
  listInstances(query: InstanceQuery, clock: HealthClock): Promise<Page<InstanceRecord & { health: HealthState }>>;
  /**
   * listInstances for a caller that keeps views of instances (rest/views.ts
   * InstancePages): each instance with what `cachedView` gives for its row
   * version, or its stored row (rows.ts INSTANCE_VIEW_COLUMNS, without the
   * health: viewRowToInstance reads one) when it gives nothing.
   */
  listInstanceViews<T>(
    query: InstanceQuery,
    clock: HealthClock,
    cachedView: (id: string, version: number) => T | undefined,
  ): Promise<Page<ListedInstance<T>>>;
  /** Sets (or clears, with null) an assignment; creates the instance when it never booted. */
  setAssignment(instanceId: string, assignment: Assignment | null, actor: string, now: number): Promise<InstanceRecord>;
  /** Removes an instance and its assignment; false when unknown. */
  deleteInstance(instanceId: string, actor: string, now: number): Promise<boolean>;
  recordStatus(
    instanceId: string,
    appliedGeneration: number,
    status: InstanceStatus,
    facts: HostFacts | null,
  ): Promise<InstanceRecord | undefined>;
  healthSummary(clock: HealthClock): Promise<Array<{ roles: ServiceRole[] | null; health: HealthState; count: number }>>;
  /** Every distinct assignment of an instance (rules not included), each once. */
  distinctAssignments(): Promise<Assignment[]>;
  /** The Teleport version each host last reported running, by instance id (hosts that never reported one left out). */
  teleportVersions(): Promise<Map<string, string>>;

  listRules(): Promise<Rule[]>;
  /** The rules in order with their version (what an ETag names). */
  listVersionedRules(): Promise<Versioned<Rule[]>>;
  /**
   * Adds a rule at a 0-based position (end when absent); the rules' new version with it.
   * With `basedOn`, throws VersionConflictError, writing nothing, unless it is the current version.
   */
  addRule(rule: RuleInput, position: number | undefined, actor: string, now: number, basedOn?: number): Promise<Versioned<Rule>>;
  /** Deletes a rule: the rules' new version, or undefined for an unknown rule. `basedOn` as for addRule. */
  deleteRule(id: string, actor: string, now: number, basedOn?: number): Promise<number | undefined>;

  listAudit(query: { after?: number; limit: number; target?: string }): Promise<AuditEvent[]>;
  /** An audit event that goes with no change (a refused enrollment or call). */
  recordAudit(actor: string, action: string, target: string, details: Record<string, unknown>, now: number): Promise<void>;
  /**
   * A refused request or call: the first of a minute for the same actor,
   * action and reason is recorded with its details; the others in that
   * minute add to its count, so a flood of refusals cannot grow the log.
   */
  recordRefusal(
    actor: string,
    action: string,
    target: string,
    details: Record<string, unknown> & { reason: string },
    now: number,
  ): Promise<void>;
  /** Removes audit events older than the retention or beyond its row cap (recorded as audit.pruned); how many. */
  pruneAudit(retention: AuditRetention, now: number): Promise<number>;
  /** Bytes the store takes on disk (the database and its write-ahead log). */
  storeBytes(): Promise<number>;

  /** Forgets the nonce bound to an instance, so that its next enrollment binds a new one. */
  resetBinding(instanceId: string, actor: string, now: number): Promise<boolean>;
  getCertificate(serial: string): Promise<IssuedCertificate | undefined>;
  /** The issued certificates among `serials` (any order): the calls of many agents checked in one read. */
  getCertificates(serials: readonly string[]): Promise<IssuedCertificate[]>;

  createApiToken(token: { id: string; name: string; scope: ApiScope; tokenHash: string }, actor: string, now: number): Promise<ApiToken>;
  listApiTokens(): Promise<ApiToken[]>;
  /** The active (not revoked) token with this hash. */
  findApiToken(tokenHash: string): Promise<ApiToken | undefined>;
  touchApiToken(id: string, now: number): Promise<void>;
  /** Revokes by id or by name (active tokens); the revoked token, or undefined. */
  revokeApiToken(idOrName: string, actor: string, now: number): Promise<ApiToken | undefined>;
  /** Tokens ever created, revoked ones included. */
  countApiTokens(): Promise<number>;

  createJoinToken(
    token: Omit<JoinToken, 'uses' | 'lastUsedAt' | 'revokedAt' | 'createdAt' | 'createdBy'> & { tokenHash: string },
    actor: string,
    now: number,
  ): Promise<JoinToken>;
  listJoinTokens(): Promise<JoinToken[]>;
  findJoinToken(tokenHash: string): Promise<JoinToken | undefined>;
  revokeJoinToken(id: string, actor: string, now: number): Promise<JoinToken | undefined>;

  /**
   * Grants the lease to `holder` when it is free or expired (a new fencing
   * number, audited), or extends it when `holder` already holds it. Times are
   * the database's clock (one clock for every replica), never the caller's.
   */
  acquireLease(name: string, holder: string, periodMs: number): Promise<LeaseOutcome>;
  /** Extends the lease when `holder` holds it with `fencing` and it has not expired. */
  renewLease(name: string, holder: string, fencing: number, periodMs: number): Promise<LeaseOutcome>;
  /** Ends the lease at once when `holder` holds it with `fencing` (audited). */
  releaseLease(name: string, holder: string, fencing: number): Promise<LeaseOutcome>;
  getLease(name: string): Promise<Lease | undefined>;

  /**
   * Records that replica `id` serves on this store (the database's clock),
   * forgets replicas not seen for `staleAfterMs`; how many serve, this one included.
   */
  replicaHeartbeat(id: string, staleAfterMs: number): Promise<number>;
  /** Forgets a replica that stops. */
  removeReplica(id: string): Promise<void>;

  listProxyCertificates(): Promise<ProxyCertificate[]>;
  getProxyCertificate(domain: string): Promise<ProxyCertificate | undefined>;
  /** Creates or replaces the record of a domain; audited when `audit` is given. */
  saveProxyCertificate(cert: ProxyCertificate, audit?: { actor: string; action: string; details: Record<string, unknown> }): Promise<void>;
  /** Asks for a renewal at the next check; false for an unknown domain. */
  requestRenewal(domain: string, actor: string, now: number): Promise<boolean>;
  /** Certificates the proxies reported serving. */
  listServedCertificates(): Promise<ServedCertificate[]>;

  /** HTTP-01: the key authorization to answer for a token, until it expires. */
  putAcmeChallenge(token: string, keyAuthorization: string, domain: string, expiresAt: number): Promise<void>;
  getAcmeChallenge(token: string, now: number): Promise<string | undefined>;
  deleteAcmeChallenge(token: string): Promise<void>;

  /**
   * Changes other replicas on the same database make to what instances
   * should run, as they commit: instance ids, or "*" for every assigned
   * instance. Absent, or never called, for a store one process owns.
   */
  watchChanges?(listener: (instanceIds: string[]) => void): () => void;

  /** Throws, saying why, when the stored data cannot be read (a damaged file); /readyz answers 503 then. */
  checkReadable(): Promise<void>;

  close(): Promise<void>;
}

/** A document with the version it was read at, or written as. */
export interface Versioned<T> {
  value: T;
  version: number;
}

/** A lease as stored: who holds it until when, and its fencing number. */
export interface Lease {
  name: string;
  holder: string;
  /** Increases at every new holder. */
  fencing: number;
  acquiredAt: number;
  expiresAt: number;
}

/** The outcome of a lease call: the lease as it now is, and whether the caller holds it. */
export interface LeaseOutcome {
  lease: Lease | undefined;
  granted: boolean;
}

/** First rule whose selector matches the tags, in rule order. */
export function firstMatchingRule(rules: Rule[], tags: Record<string, string>): Rule | undefined {
  return rules.find((rule) =>
    Object.entries(rule.selector).every(
      ([key, want]) => Object.prototype.hasOwnProperty.call(tags, key) && (want === '*' || tags[key] === want),
    ),
  );
}
