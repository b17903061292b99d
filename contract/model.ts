// The domain shared by teleboot-control and teleboot-agent: what an instance
// is, what it should run, and the cluster-wide settings its config depends on.
// The settings and the assignment are declared once, with their schemas, in
// contract/settings.ts and contract/assignment.ts; they are re-exported here.
import { hostOf } from './address';
import type { ServiceRole } from './assignment';
import type { ClusterSettings } from './settings';

export * from './assignment';
export * from './settings';
export { hostOf, splitHostPort } from './address';
export { AWS_REGION_PATTERN, isAwsRegion } from './aws-region';

/** The SSM token name (tokens/trusted_cluster) and tctl token type a root publishes for its leaves. */
export const TRUSTED_CLUSTER_TOKEN = 'trusted_cluster';

/**
 * Names an operator may assign: a single service, or a preset of several.
 * Any other set of services may be given as a list ("roles"); the renderer
 * refuses the sets Teleport cannot run, saying why.
 */
export const ROLE_PRESETS: Readonly<Record<string, readonly ServiceRole[]>> = {
  auth: ['auth'],
  proxy: ['proxy'],
  node: ['node'],
  // auth and proxy on one host, as in the seed Ansible layout (000_*).
  'auth-proxy': ['auth', 'proxy'],
  // The starter cluster: everything on one host, like Teleport's AMI without a role.
  all: ['auth', 'proxy', 'node'],
  kube: ['kube'],
  app: ['app'],
  db: ['db'],
  discovery: ['discovery'],
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

/**
 * The SSM name segment of the join token a host reads, for the services it
 * runs: /teleport/{cluster}/tokens/{segment}. Teleport checks the token once
 * per service, so one host needs one token that allows every service it runs:
 * a single service reads its own token ("node", "kube"), several read a token
 * named by their sorted names joined with "-" ("discovery-kube", made with
 * `tctl tokens add --type=discovery,kube` as in seed 004_*). SSM names allow
 * no "+" or ",". Undefined for a host that runs the auth service (it joins nothing).
 */
export function joinTokenNameOf(services: readonly string[]): string | undefined {
  if (services.includes('auth')) return undefined;
  const joining = [...new Set(services)].sort();
  return joining.length > 0 ? joining.join('-') : undefined;
}

/** Whether the HTTP CONNECT proxy environment (/etc/default/teleport) is wanted. */
export function hasProxyEnvironment(s: Pick<ClusterSettings, 'httpsProxy' | 'httpProxy' | 'noProxy'>): boolean {
  return Boolean(s.httpsProxy || s.httpProxy || s.noProxy);
}

/** The domain whose certificate a proxy takes from S3 live/{domain}/. */
export function certDomainOf(settings: Pick<ClusterSettings, 'proxyPublicAddr'>): string {
  return hostOf(settings.proxyPublicAddr);
}

// ---- what an instance runs --------------------------------------------------------

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

/**
 * The state an agent reports after each attempt to apply its assignment.
 * orphaned: the control server has no assignment for an instance whose
 * Teleport runs (it forgot it); the agent keeps it running.
 * stopped: the agent's last report as it stops cleanly (the instance shuts
 * down); the control server counts the instance offline until it reports again.
 */
export const AGENT_STATES = ['converging', 'ready', 'degraded', 'failed', 'orphaned', 'stopped'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

/**
 * Fleet health of an instance as the control server sees it:
 * expected   assigned before it ever enrolled
 * unassigned enrolled, nothing to run yet
 * orphaned   enrolled again after the control server forgot it, no assignment, Teleport
 *            still running what it applied last; until an operator assigns or unassigns it
 * converging the agent has not yet applied the latest generation
 * ready      latest generation applied and Teleport ready
 * degraded   Teleport not ready, or the agent reported a failure
 * offline    no heartbeat for three intervals, or the agent reported it stopped
 */
export const HEALTH_STATES = ['expected', 'unassigned', 'orphaned', 'converging', 'ready', 'degraded', 'offline'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

/** Instance ids: EC2 ids (i-0123...) and names chosen for hosts outside EC2. */
export const INSTANCE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const instanceIdRe = new RegExp(INSTANCE_ID_PATTERN);
export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && instanceIdRe.test(value);
}
