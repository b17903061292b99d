// The domain shared by teleboot-control and teleboot-agent: what an instance
// is, what it should run, and the cluster-wide settings its config depends on.

/**
 * Teleport services an instance can run. auth, proxy and node are the
 * classic cluster (seeds 000_*, 001_*); kube, app, db and discovery are
 * agents that reach the cluster through the proxy (seeds 002_*, 003_*, 004_*).
 */
export const SERVICE_ROLES = ['auth', 'proxy', 'node', 'kube', 'app', 'db', 'discovery'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

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

export interface StorageSettings {
  /** "dir" keeps Teleport's state on local disk; "dynamodb" in DynamoDB (+ S3 for recordings). */
  type: 'dir' | 'dynamodb';
  tableName?: string;
  region?: string;
  auditEventsUri?: string[];
  auditSessionsUri?: string;
}

/** How hosts prove themselves when they join: a token file from SSM, or their IAM role (seed 002_*). */
export const JOIN_METHODS = ['token', 'iam'] as const;
export type JoinMethodSetting = (typeof JOIN_METHODS)[number];
/** Where joining hosts connect: the auth service (auth_server, 3025) or the proxy (proxy_server, reverse tunnel). */
export const JOIN_VIA = ['auth', 'proxy'] as const;
export type JoinVia = (typeof JOIN_VIA)[number];
/** Proxy listeners: one per protocol (3023/3024/3080), or TLS routing on one port (443). */
export const PROXY_LISTENER_MODES = ['separate', 'multiplex'] as const;
export type ProxyListenerMode = (typeof PROXY_LISTENER_MODES)[number];
/** Where the proxy's web certificate comes from: Let's Encrypt via S3, or ACM on a load balancer. */
export const TLS_SOURCES = ['letsencrypt', 'acm'] as const;
export type TlsSource = (typeof TLS_SOURCES)[number];
export const LOG_SEVERITY_SETTINGS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export const LOG_FORMATS = ['text', 'json'] as const;
/** auth_service.authentication.type; oidc and saml need Teleport Enterprise. */
export const AUTH_TYPES = ['local', 'github', 'oidc', 'saml'] as const;
/** auth_service.authentication.second_factor values Teleport 16+ accepts. */
export const SECOND_FACTORS = ['on', 'otp', 'webauthn'] as const;
/**
 * Trusted clusters (seed 000_*): a standalone cluster; a root, whose
 * publisher also publishes a trusted_cluster join token; or a leaf, whose
 * publisher creates a trusted_cluster resource with the root's token.
 */
export const TRUST_ROLES = ['standalone', 'root', 'leaf'] as const;
export type TrustRole = (typeof TRUST_ROLES)[number];
/** The SSM token name (tokens/trusted_cluster) and tctl token type a root publishes for its leaves. */
export const TRUSTED_CLUSTER_TOKEN = 'trusted_cluster';

/** One role_map entry of a trusted_cluster resource: the root's role `remote` ("*", a name or a regular expression) maps to `local`. */
export interface RoleMapping {
  remote: string;
  local: string[];
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

  // Every setting below is optional: settings saved before they existed load
  // unchanged, and an absent one means its default.

  /** Default "token". */
  joinMethod?: JoinMethodSetting;
  /** Name of the IAM join token resource (not a secret), required with joinMethod "iam". */
  iamTokenName?: string;
  /** Default "auth". Agents that need a reverse tunnel (app, db, discovery) always join through the proxy. */
  joinVia?: JoinVia;
  /** Default "separate". */
  proxyListenerMode?: ProxyListenerMode;
  /** Default "letsencrypt". */
  tlsSource?: TlsSource;
  /** Separate listeners: where clients reach the proxy's SSH port; default <proxy host>:3023. */
  sshPublicAddr?: string;
  /** Separate listeners: where agents reach the reverse tunnel; default <proxy host>:3024 (a network load balancer with ACM). */
  tunnelPublicAddr?: string;
  /** Separate listeners: a Kubernetes listener on 3026 advertised at this address. */
  kubePublicAddr?: string;
  /** Separate listeners: database listeners (MySQL 3036, PostgreSQL 5432, MongoDB 27017) advertised at these addresses. */
  mysqlPublicAddr?: string;
  postgresPublicAddr?: string;
  mongoPublicAddr?: string;
  /** teleport.connection_limits */
  maxConnections?: number;
  maxUsers?: number;
  /** teleport.log; defaults INFO and text. */
  logSeverity?: (typeof LOG_SEVERITY_SETTINGS)[number];
  logFormat?: (typeof LOG_FORMATS)[number];
  /** auth_service.authentication */
  authType?: (typeof AUTH_TYPES)[number];
  secondFactor?: (typeof SECOND_FACTORS)[number];
  /** auth_service.keep_alive_interval (a duration, e.g. "1m") and keep_alive_count_max. */
  keepAliveInterval?: string;
  keepAliveCountMax?: number;
  /** Teleport Enterprise: auth servers take their license from SSM {ssmPrefix}/{cluster}/license. */
  enterprise?: boolean;
  /** HTTP CONNECT proxy for Teleport's outbound connections, written to /etc/default/teleport (seed 003_*). */
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
  /** Default "standalone". */
  trustRole?: TrustRole;
  /** With trustRole "leaf": the root cluster's name (the trusted_cluster resource's name). */
  rootClusterName?: string;
  /** With trustRole "leaf": host:port of the root's web proxy. */
  rootWebProxyAddr?: string;
  /** With trustRole "leaf": host:port of the root's reverse tunnel; default rootWebProxyAddr (TLS routing). */
  rootTunnelAddr?: string;
  /** With trustRole "leaf": the root's roles mapped to this cluster's roles. */
  rootRoleMap?: RoleMapping[];
}

export const DEFAULT_CLUSTER_SETTINGS: ClusterSettings = {
  clusterName: '',
  authAddr: '',
  proxyPublicAddr: '',
  s3Bucket: '',
  ssmPrefix: '/teleport',
  region: '',
  storage: { type: 'dir' },
  joinMethod: 'token',
  joinVia: 'auth',
  proxyListenerMode: 'separate',
  tlsSource: 'letsencrypt',
  trustRole: 'standalone',
};

/** Cluster settings that may be removed with null in a PATCH (they fall back to their default). */
export const OPTIONAL_CLUSTER_SETTINGS = [
  'joinMethod',
  'iamTokenName',
  'joinVia',
  'proxyListenerMode',
  'tlsSource',
  'sshPublicAddr',
  'tunnelPublicAddr',
  'kubePublicAddr',
  'mysqlPublicAddr',
  'postgresPublicAddr',
  'mongoPublicAddr',
  'maxConnections',
  'maxUsers',
  'logSeverity',
  'logFormat',
  'authType',
  'secondFactor',
  'keepAliveInterval',
  'keepAliveCountMax',
  'enterprise',
  'httpsProxy',
  'httpProxy',
  'noProxy',
  'trustRole',
  'rootClusterName',
  'rootWebProxyAddr',
  'rootTunnelAddr',
  'rootRoleMap',
] as const satisfies ReadonlyArray<keyof ClusterSettings>;

/** Whether the HTTP CONNECT proxy environment (/etc/default/teleport) is wanted. */
export function hasProxyEnvironment(s: Pick<ClusterSettings, 'httpsProxy' | 'httpProxy' | 'noProxy'>): boolean {
  return Boolean(s.httpsProxy || s.httpProxy || s.noProxy);
}

/** The domain whose certificate a proxy takes from S3 live/{domain}/. */
export function certDomainOf(settings: Pick<ClusterSettings, 'proxyPublicAddr'>): string {
  return hostOf(settings.proxyPublicAddr);
}

/** A listen address "host:port" ("[::1]:80" for IPv6) as its host, without brackets, and port. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/** Host part of "host:port" (IPv6 in brackets is kept without them). */
export function hostOf(addr: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (m) return m[1];
  const i = addr.lastIndexOf(':');
  return i > 0 && addr.indexOf(':') === i ? addr.slice(0, i) : addr;
}

// ---- what an instance runs --------------------------------------------------------

/** A dynamic label: Teleport runs `command` every `period` and uses its output (seed 001_*). */
export interface CommandLabel {
  name: string;
  /** The program and its arguments, e.g. ["/bin/uname", "-p"]. */
  command: string[];
  /** A Go duration: "1m0s", "1h". */
  period: string;
}

/** kubernetes_service: which kube_cluster resources (e.g. found by discovery, seed 004_*) this host serves. */
export interface KubeOptions {
  /** Label selectors of kube_cluster resources; "*": "*" matches all. */
  resources: Array<{ labels: Record<string, string> }>;
  /** Static labels of the Kubernetes service. */
  labels?: Record<string, string>;
}

/** One app of app_service.apps. */
export interface AppSpec {
  /** A lower-case DNS label: it becomes a subdomain of the proxy. */
  name: string;
  uri: string;
  /** A host name without port (users reach the app through the proxy's web port). */
  publicAddr?: string;
  description?: string;
  labels?: Record<string, string>;
  insecureSkipVerify?: boolean;
}

/** Protocols of db_service.databases in Teleport's config reference. */
export const DATABASE_PROTOCOLS = [
  'cassandra',
  'clickhouse',
  'clickhouse-http',
  'cockroachdb',
  'dynamodb',
  'elasticsearch',
  'mongodb',
  'mysql',
  'oracle',
  'postgres',
  'redis',
  'snowflake',
  'spanner',
  'sqlserver',
] as const;

/** One database of db_service.databases. */
export interface DatabaseSpec {
  /** A lower-case DNS label. */
  name: string;
  protocol: (typeof DATABASE_PROTOCOLS)[number];
  /** host:port of the database, reachable from this host. */
  uri: string;
  description?: string;
  /** aws.region, e.g. for RDS or Redshift. */
  awsRegion?: string;
  /** aws.redshift.cluster_id */
  redshiftClusterId?: string;
  staticLabels?: Record<string, string>;
}

/** Resource types an AWS matcher of the Discovery Service finds. */
export const DISCOVERY_AWS_TYPES = [
  'ec2',
  'eks',
  'rds',
  'rdsproxy',
  'redshift',
  'redshift-serverless',
  'elasticache',
  'memorydb',
  'opensearch',
] as const;

/** One discovery_service.aws matcher (seeds 002_*, 004_*). */
export interface AwsMatcher {
  types: Array<(typeof DISCOVERY_AWS_TYPES)[number]>;
  /** AWS regions, or ["*"] for every enabled region. */
  regions: string[];
  /** AWS tags a resource must carry; "*": "*" matches any. */
  tags?: Record<string, string>;
  /** EC2: the SSM document that installs Teleport (Teleport's default: TeleportDiscoveryInstaller). */
  ssmDocumentName?: string;
  /** EC2: the IAM join token discovered instances join with (Teleport's default: aws-discovery-iam-token). */
  installTokenName?: string;
  assumeRoleArn?: string;
}

export interface DiscoveryOptions {
  /** discovery_service.discovery_group: Discovery Services watching the same resources share one. */
  group?: string;
  aws: AwsMatcher[];
}

/** What an operator asked an instance to run. */
export interface Assignment {
  roles: ServiceRole[];
  /** Static labels of the Teleport node (ssh_service.labels). */
  labels: Record<string, string>;
  /** Overrides the Teleport nodename; the instance hostname otherwise. */
  nodename?: string;
  /** Dynamic node labels (ssh_service.commands). */
  commandLabels?: CommandLabel[];
  /** teleport.advertise_ip: an address, or "private-ip" for the instance's private IPv4. */
  advertiseIp?: string;
  /** Overrides the cluster's joinVia for this instance. */
  joinVia?: JoinVia;
  kube?: KubeOptions;
  apps?: AppSpec[];
  databases?: DatabaseSpec[];
  discovery?: DiscoveryOptions;
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

/**
 * The state an agent reports after each attempt to apply its assignment.
 * orphaned: the control server has no assignment for an instance whose
 * Teleport runs (it forgot it); the agent keeps it running.
 */
export const AGENT_STATES = ['converging', 'ready', 'degraded', 'failed', 'orphaned'] as const;
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
 * offline    no heartbeat for three intervals
 */
export const HEALTH_STATES = ['expected', 'unassigned', 'orphaned', 'converging', 'ready', 'degraded', 'offline'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

/** An AWS region name such as us-east-1 or us-gov-west-1. */
export const AWS_REGION_PATTERN = '^[a-z]{2}(-[a-z]+)+-\\d{1,2}$';
const awsRegionRe = new RegExp(AWS_REGION_PATTERN);
export const isAwsRegion = (value: string): boolean => awsRegionRe.test(value);

/** Instance ids: EC2 ids (i-0123...) and names chosen for hosts outside EC2. */
export const INSTANCE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const instanceIdRe = new RegExp(INSTANCE_ID_PATTERN);
export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && instanceIdRe.test(value);
}

/** Teleport label keys: letters, digits and . _ - / (as Teleport accepts them). */
export const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';
