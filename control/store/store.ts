// The store interface: everything the control server keeps. SQLite is the
// embedded default; a PostgreSQL implementation satisfies the same interface
// for several replicas. Every change and its audit event commit together.
import type {
  Assignment,
  ClusterSettings,
  HealthState,
  HostFacts,
  InstanceIdentity,
  AgentState,
  ServiceRole,
} from '../../common/model';

export interface InstanceStatus {
  state: AgentState;
  teleportUnitState: string;
  teleportReady: boolean;
  message: string;
  agentVersion: string;
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
  status: InstanceStatus | null;
  facts: HostFacts | null;
  createdAt: number;
  updatedAt: number;
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

export interface Store {
  readonly kind: string;
  getSettings(): Promise<ClusterSettings>;
  /** Saves settings and bumps the generation of every assigned instance; returns their ids. */
  updateSettings(settings: ClusterSettings, actor: string, now: number): Promise<string[]>;

  /** Records an enrollment; an instance with no assignment takes the first matching rule's. */
  enroll(identity: InstanceIdentity, actor: string, now: number): Promise<EnrollOutcome>;
  getInstance(instanceId: string): Promise<InstanceRecord | undefined>;
  listInstances(query: InstanceQuery, clock: HealthClock): Promise<Page<InstanceRecord & { health: HealthState }>>;
  /** Sets (or clears, with null) an assignment; creates the instance when it never booted. */
  setAssignment(instanceId: string, assignment: Assignment | null, actor: string, now: number): Promise<InstanceRecord>;
  /** Removes an instance and its assignment; false when unknown. */
  deleteInstance(instanceId: string, actor: string, now: number): Promise<boolean>;
  recordStatus(instanceId: string, appliedGeneration: number, status: InstanceStatus, facts: HostFacts | null): Promise<InstanceRecord | undefined>;
  healthSummary(clock: HealthClock): Promise<Array<{ roles: ServiceRole[] | null; health: HealthState; count: number }>>;

  listRules(): Promise<Rule[]>;
  /** Adds a rule at a 0-based position (end when absent). */
  addRule(rule: RuleInput, position: number | undefined, actor: string, now: number): Promise<Rule>;
  deleteRule(id: string, actor: string, now: number): Promise<boolean>;

  listAudit(query: { after?: number; limit: number; target?: string }): Promise<AuditEvent[]>;

  close(): Promise<void>;
}

/** First rule whose selector matches the tags, in rule order. */
export function firstMatchingRule(rules: Rule[], tags: Record<string, string>): Rule | undefined {
  return rules.find((rule) =>
    Object.entries(rule.selector).every(([key, want]) =>
      Object.prototype.hasOwnProperty.call(tags, key) && (want === '*' || tags[key] === want),
    ),
  );
}
