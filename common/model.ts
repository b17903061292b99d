// The domain shared by teleboot-control and teleboot-agent: what an instance
// is, what it should run, and the cluster-wide settings its config depends on.

/** Teleport services an instance can run. */
export const SERVICE_ROLES = ['auth', 'proxy', 'node'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

/** Names an operator may assign: a single service, or a preset of several. */
export const ROLE_PRESETS: Readonly<Record<string, readonly ServiceRole[]>> = {
  auth: ['auth'],
  proxy: ['proxy'],
  node: ['node'],
  // auth and proxy on one host, as in the seed Ansible layout (000_*).
  'auth-proxy': ['auth', 'proxy'],
};
export const ROLE_NAMES = Object.keys(ROLE_PRESETS);

/** Expands a role name to the services it runs, or undefined when unknown. */
export function servicesOf(role: string): readonly ServiceRole[] | undefined {
  return Object.prototype.hasOwnProperty.call(ROLE_PRESETS, role) ? ROLE_PRESETS[role] : undefined;
}

/** The name an operator would use for a set of services ("auth-proxy" for auth+proxy). */
export function roleNameOf(services: readonly string[]): string {
  const key = [...services].sort().join(',');
  for (const [name, preset] of Object.entries(ROLE_PRESETS)) {
    if ([...preset].sort().join(',') === key) return name;
  }
  return [...services].sort().join('+');
}

export interface StorageSettings {
  /** "dir" keeps Teleport's state on local disk; "dynamodb" in DynamoDB (+ S3 for recordings). */
  type: 'dir' | 'dynamodb';
  tableName?: string;
  region?: string;
  auditEventsUri?: string[];
  auditSessionsUri?: string;
}

export interface ClusterSettings {
  clusterName: string;
  /** host:port of the auth service that nodes and proxies join through. */
  authAddr: string;
  /** host:port users reach the proxy at (web). */
  proxyPublicAddr: string;
  s3Bucket: string;
  /** Prefix of the SSM parameters, "/teleport" by convention. */
  ssmPrefix: string;
  region: string;
  storage: StorageSettings;
}

export const DEFAULT_CLUSTER_SETTINGS: ClusterSettings = {
  clusterName: '',
  authAddr: '',
  proxyPublicAddr: '',
  s3Bucket: '',
  ssmPrefix: '/teleport',
  region: '',
  storage: { type: 'dir' },
};

/** The domain whose certificate a proxy takes from S3 live/{domain}/. */
export function certDomainOf(settings: Pick<ClusterSettings, 'proxyPublicAddr'>): string {
  return hostOf(settings.proxyPublicAddr);
}

/** Host part of "host:port" (IPv6 in brackets is kept without them). */
export function hostOf(addr: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (m) return m[1];
  const i = addr.lastIndexOf(':');
  return i > 0 && addr.indexOf(':') === i ? addr.slice(0, i) : addr;
}

/** What an operator asked an instance to run. */
export interface Assignment {
  roles: ServiceRole[];
  /** Static labels of the Teleport node (ssh_service.labels). */
  labels: Record<string, string>;
  /** Overrides the Teleport nodename; the instance hostname otherwise. */
  nodename?: string;
}

export interface InstanceIdentity {
  instanceId: string;
  region: string;
  availabilityZone: string;
  accountId: string;
  privateIp: string;
  hostname: string;
  instanceType: string;
  imageId: string;
  tags: Record<string, string>;
}

export interface HostFacts {
  os: string;
  kernel: string;
  arch: string;
  cpus: number;
  memoryTotalBytes: number;
  memoryAvailableBytes: number;
  loadAverage1m: number;
  uptimeSeconds: number;
  rootDiskFreeBytes: number;
}

/** The state an agent reports after each attempt to apply its assignment. */
export const AGENT_STATES = ['converging', 'ready', 'degraded', 'failed'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

/**
 * Fleet health of an instance as the control server sees it:
 * expected   assigned before it ever enrolled
 * unassigned enrolled, nothing to run yet
 * converging the agent has not yet applied the latest generation
 * ready      latest generation applied and Teleport ready
 * degraded   Teleport not ready, or the agent reported a failure
 * offline    no heartbeat for three intervals
 */
export const HEALTH_STATES = ['expected', 'unassigned', 'converging', 'ready', 'degraded', 'offline'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

/** Instance ids: EC2 ids (i-0123...) and names chosen for hosts outside EC2. */
export const INSTANCE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const instanceIdRe = new RegExp(INSTANCE_ID_PATTERN);
export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && instanceIdRe.test(value);
}

/** Teleport label keys: letters, digits and . _ - / (as Teleport accepts them). */
export const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';
