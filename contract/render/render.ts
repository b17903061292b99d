// teleport.yaml as a pure function of what an instance was assigned, the
// cluster settings and facts about the instance. No I/O: the agent fetches
// what requirementsOf() asks for, renders, and writes the result itself. The
// control server runs the same functions when settings and assignments are
// saved, so an impossible layout is refused at the REST call.

import { Document, Scalar, parse, visit } from 'yaml';
import { hostOf, hostPortProblem, joinHostPort } from '../address';
import { SERVICE_ROLES, joinTokenNameOf, type Assignment, type ClusterSettings, type JoinVia, type ServiceRole } from '../model';
import {
  KEY_ORDER,
  TELEPORT_CONFIG_VERSION,
  TELEPORT_PORTS,
  validateTeleportConfig,
  type AppServiceSection,
  type AuthService,
  type AuthServiceSection,
  type ConfigProblem,
  type DbServiceSection,
  type DiscoveryServiceSection,
  type KubernetesServiceSection,
  type ProxyService,
  type ProxyServiceSection,
  type SshServiceSection,
  type StorageConfig,
  type TeleportConfig,
  type TeleportSection,
} from './teleport-config';
import { SEPARATE_LISTENER_ADDRS } from '../settings';
import { mergeFragment, type MergeResult } from './fragments';
import { cacheConfigOf, hasLoadBalancer, webListenPortOf, type RenderWarning } from './layout-settings';

export { validateTeleportConfig, type ConfigProblem, type TeleportConfig } from './teleport-config';

export interface RenderInput {
  assignment: Assignment;
  cluster: ClusterSettings;
  instance: { instanceId: string; hostname: string; privateIp: string; region: string };
  files: {
    dataDir: string;
    joinTokenFile: string;
    certFile: string;
    keyFile: string;
    /** Enterprise license written from SSM; auth_service.license_file when the cluster is enterprise. */
    licenseFile?: string;
  };
  /** "sha256:..." from SSM; empty when the host does not join the auth service directly. */
  caPins: string[];
  /** "127.0.0.1:3000" */
  diagAddr: string;
}

/** What the agent must fetch before rendering, for an assignment in a cluster. */
export interface Requirements {
  /**
   * The SSM token segment, /{prefix}/{cluster}/tokens/{joinTokenRole}: a
   * role ("node", "kube") or several joined by "-" ("discovery-kube"); see
   * joinTokenNameOf. Absent for an auth host and for IAM joining (no secret).
   */
  joinTokenRole?: string;
  caPin: boolean;
  /** The proxy's Let's Encrypt certificate and key from S3 (not with ACM). */
  proxyCertificate: boolean;
  /** The Enterprise license from SSM (auth hosts of an enterprise cluster); absent when not needed. */
  license?: true;
}

/** The input cannot become a config Teleport accepts; `problems` says why, each naming its setting. */
export class RenderError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(
      'cannot render teleport.yaml:\n' +
        problems.map((p) => `  - ${p.path || '(config)'}${p.setting ? ` (from ${p.setting})` : ''}: ${p.message}`).join('\n'),
    );
    this.name = 'RenderError';
  }
}

const ALL_INTERFACES = '0.0.0.0';
const listen = (port: number): string => `${ALL_INTERFACES}:${port}`;

// ---- roles and layout ------------------------------------------------------------

/** Services that reach the cluster through a reverse tunnel: by default they join through the proxy. */
const TUNNEL_ROLES: readonly ServiceRole[] = ['app', 'db', 'discovery'];

/** Problems with the assigned roles: none, unknown names, duplicates. Combinations are judged on the rendered config. */
function assignmentProblems(assignment: Assignment): ConfigProblem[] {
  const roles: unknown = assignment?.roles;
  const at = (path: string, message: string): ConfigProblem => ({ path, message, setting: 'assignment.roles' });
  if (!Array.isArray(roles) || roles.length === 0) return [at('assignment.roles', 'must name at least one role')];
  const problems: ConfigProblem[] = [];
  roles.forEach((role, i) => {
    if (!(SERVICE_ROLES as readonly unknown[]).includes(role)) {
      problems.push(at(`assignment.roles[${i}]`, `unknown role ${JSON.stringify(role)}; known: ${SERVICE_ROLES.join(', ')}`));
    }
  });
  if (problems.length > 0) return problems;
  if (new Set(roles).size !== roles.length) return [at('assignment.roles', 'lists a role twice')];
  return [];
}

function checkedRoles(assignment: Assignment): ReadonlySet<ServiceRole> {
  const problems = assignmentProblems(assignment);
  if (problems.length > 0) throw new RenderError(problems);
  return new Set(assignment.roles);
}

type JoinRoute = 'none' | JoinVia;

/**
 * How a host reaches the cluster. An auth host joins nothing. A proxy joins
 * the auth service directly (Teleport forbids proxy_server while
 * proxy_service runs). app, db and discovery join through the proxy, which
 * is the only way Teleport supports for them (seed 003_*). Everything else
 * follows the cluster's joinVia. An assignment's own joinVia wins, and an
 * impossible one is refused when the config is validated.
 */
function joinRouteOf(roles: ReadonlySet<ServiceRole>, assignment: Assignment, cluster: Partial<ClusterSettings>): JoinRoute {
  if (roles.has('auth')) return 'none';
  if (assignment.joinVia) return assignment.joinVia;
  if (roles.has('proxy')) return 'auth';
  if (TUNNEL_ROLES.some((r) => roles.has(r))) return 'proxy';
  return cluster.joinVia ?? 'auth';
}

const joinMethodOf = (cluster: Partial<ClusterSettings>) => cluster.joinMethod ?? 'token';
const listenerModeOf = (cluster: Partial<ClusterSettings>) => cluster.proxyListenerMode ?? 'separate';
const tlsSourceOf = (cluster: Partial<ClusterSettings>) => cluster.tlsSource ?? 'letsencrypt';

/** What the agent must fetch before rendering; throws RenderError for an unknown role. */
export function requirementsOf(assignment: Assignment, cluster: Partial<ClusterSettings> = {}): Requirements {
  const roles = checkedRoles(assignment);
  const route = joinRouteOf(roles, assignment, cluster);
  const req: Requirements = {
    caPin: route === 'auth',
    proxyCertificate: roles.has('proxy') && tlsSourceOf(cluster) === 'letsencrypt',
  };
  if (route !== 'none' && joinMethodOf(cluster) === 'token') {
    // Key order as before, for readers of the object.
    return { joinTokenRole: joinTokenNameOf([...roles]), ...req };
  }
  if (roles.has('auth') && cluster.enterprise) req.license = true;
  return req;
}

// ---- rendering ------------------------------------------------------------------

/** Problems in the input that no rendered key would show: options for roles not assigned, cluster-wide contradictions. */
function inputProblems(input: RenderInput, roles: ReadonlySet<ServiceRole>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const a = input.assignment;
  const c = input.cluster;
  const unused = (key: keyof Assignment, role: ServiceRole) => {
    if (a[key] !== undefined && !roles.has(role)) {
      problems.push({ path: `assignment.${key}`, setting: `assignment.${key}`, message: `given, but the ${role} role is not assigned` });
    }
  };
  unused('kube', 'kube');
  unused('apps', 'app');
  unused('databases', 'db');
  unused('discovery', 'discovery');
  unused('commandLabels', 'node');
  if (roles.has('proxy')) {
    if (listenerModeOf(c) === 'multiplex') {
      for (const key of SEPARATE_LISTENER_ADDRS) {
        if (c[key]) {
          problems.push({
            path: 'proxy_service',
            setting: `cluster.${key}`,
            message: 'is for separate listeners; with TLS routing (multiplex) every protocol uses the web port at proxyPublicAddr',
          });
        }
      }
    }
  }
  if (roles.has('proxy')) problems.push(...publicPortProblems(c));
  problems.push(...fipsProblems(c, roles));
  if (roles.has('auth')) {
    if ((c.authType === 'oidc' || c.authType === 'saml') && !c.enterprise) {
      problems.push({
        path: 'auth_service.authentication.type',
        setting: 'cluster.authType',
        message: `${c.authType} needs Teleport Enterprise (set enterprise)`,
      });
    }
    if (c.enterprise && !input.files.licenseFile) {
      problems.push({
        path: 'auth_service.license_file',
        setting: 'files.licenseFile',
        message: 'an Enterprise auth server needs its license file',
      });
    }
  }
  return problems;
}

/**
 * The public address must reach a listener: on a bare host its port is the
 * web listener's; behind a load balancer (declared, or ACM's) the balancer
 * maps one to the other. A starter host with separate listeners and a public
 * address on 443 would otherwise bind 3080 and be unreachable.
 */
function publicPortProblems(c: RenderInput['cluster']): ConfigProblem[] {
  if (hostPortProblem(c.proxyPublicAddr) || hasLoadBalancer(c)) return [];
  const publicPort = Number(c.proxyPublicAddr.slice(c.proxyPublicAddr.lastIndexOf(':') + 1));
  const webPort = webListenPortOf(c);
  if (publicPort === webPort) return [];
  return [
    {
      path: 'proxy_service.public_addr',
      setting: 'cluster.proxyPublicAddr',
      message: `port ${publicPort} is served by no listener: the proxy's web listener is on ${webPort}. On a host users reach directly set proxyWebListenPort to ${publicPort}; behind a load balancer that forwards ${publicPort} to ${webPort} set behindLoadBalancer`,
    },
  ];
}

/**
 * FIPS mode as Teleport requires it: only the Enterprise edition has FIPS
 * builds, and Teleport in FIPS mode refuses to start while local users may
 * log in (Teleport's AMI writes local_auth: false for the same reason).
 */
function fipsProblems(c: RenderInput['cluster'], roles: ReadonlySet<ServiceRole>): ConfigProblem[] {
  if (!c.fips) return [];
  const problems: ConfigProblem[] = [];
  if (!c.enterprise) {
    problems.push({
      path: 'teleport',
      setting: 'cluster.fips',
      message:
        'FIPS mode needs Teleport Enterprise: only the Enterprise edition has FIPS builds (set enterprise, and run the Enterprise FIPS build)',
    });
  }
  if (roles.has('auth')) {
    if (c.authType === 'local') {
      problems.push({
        path: 'auth_service.authentication.type',
        setting: 'cluster.authType',
        message: 'local cannot log anyone in with FIPS: Teleport in FIPS mode needs local_auth false; use github, oidc or saml',
      });
    }
    // teleboot's rule: OTP is a second factor of local users' passwords, which FIPS mode turns off.
    if (c.secondFactor === 'otp' || c.secondFactor === 'on') {
      problems.push({
        path: 'auth_service.authentication.second_factor',
        setting: 'cluster.secondFactor',
        message: `${c.secondFactor} includes OTP, a second factor for local users, who cannot log in with FIPS (local_auth false); use webauthn`,
      });
    }
  }
  return problems;
}

/** The config for `input` as a typed object, fragments merged; throws RenderError only for unknown roles. */
export function renderTeleportConfig(input: RenderInput): TeleportConfig {
  const roles = checkedRoles(input.assignment);
  const route = joinRouteOf(roles, input.assignment, input.cluster);
  const cfg: TeleportConfig = {
    version: TELEPORT_CONFIG_VERSION,
    teleport: teleportSection(input, roles, route),
    auth_service: authService(input, roles),
    ssh_service: sshService(input, roles),
    proxy_service: proxyService(input, roles),
  };
  const kube = kubernetesService(input, roles, route);
  if (kube) cfg.kubernetes_service = kube;
  const apps = appService(input, roles);
  if (apps) cfg.app_service = apps;
  const dbs = dbService(input, roles);
  if (dbs) cfg.db_service = dbs;
  const discovery = discoveryService(input, roles);
  if (discovery) cfg.discovery_service = discovery;
  applyFragments(cfg, input);
  return cfg;
}

/** Merges the cluster's, then the assignment's teleport.yaml fragment into `cfg`; what they may not change is left out and reported. */
function applyFragments(cfg: TeleportConfig, input: RenderInput): MergeResult {
  const result: MergeResult = { problems: [], warnings: [] };
  const ctx = { fips: input.cluster.fips === true };
  const target = cfg as unknown as Record<string, unknown>; // the fragments' keys go beyond the typed model by design
  mergeFragment(target, input.cluster.configFragment, 'cluster.configFragment', ctx, result);
  mergeFragment(target, input.assignment.configFragment, 'assignment.configFragment', ctx, result);
  return result;
}

/** What the fragments of `input` do that deserves a look, each naming its setting: keys teleboot does not know. */
export function renderWarnings(input: RenderInput): RenderWarning[] {
  try {
    checkedRoles(input.assignment);
  } catch {
    return [];
  }
  return applyFragments(renderTeleportConfig(withoutFragments(input)), input).warnings;
}

function withoutFragments(input: RenderInput): RenderInput {
  const { configFragment: _c, ...cluster } = input.cluster;
  const { configFragment: _a, ...assignment } = input.assignment;
  return { ...input, cluster, assignment };
}

function teleportSection(input: RenderInput, roles: ReadonlySet<ServiceRole>, route: JoinRoute): TeleportSection {
  const { cluster, assignment } = input;
  const section: TeleportSection = {
    nodename: assignment.nodename || input.instance.hostname,
    data_dir: input.files.dataDir,
  };
  if (route !== 'none') {
    // With a token, Teleport reads it from a file, so it never lands in
    // teleport.yaml; with IAM the token name is no secret (seed 002_*).
    section.join_params =
      joinMethodOf(cluster) === 'iam'
        ? { token_name: cluster.iamTokenName ?? '', method: 'iam' }
        : { token_name: input.files.joinTokenFile, method: 'token' };
    if (route === 'auth') {
      // Straight to the auth service on 3025 (seed 001_*), trusting it by its CA pin.
      section.auth_server = cluster.authAddr;
      section.ca_pin = [...input.caPins];
    } else {
      // Through the proxy's web address, then a reverse tunnel (seeds 002_*, 003_*, 004_*);
      // the proxy's publicly trusted certificate is the trust anchor, so no pin.
      section.proxy_server = cluster.proxyPublicAddr;
    }
  }
  if (assignment.advertiseIp)
    section.advertise_ip = assignment.advertiseIp === 'private-ip' ? input.instance.privateIp : assignment.advertiseIp;
  section.diag_addr = input.diagAddr;
  if (cluster.maxConnections !== undefined || cluster.maxUsers !== undefined) {
    section.connection_limits = {
      ...(cluster.maxConnections !== undefined ? { max_connections: cluster.maxConnections } : {}),
      ...(cluster.maxUsers !== undefined ? { max_users: cluster.maxUsers } : {}),
    };
  }
  // Under systemd stderr goes to the journal.
  section.log = { output: 'stderr', severity: cluster.logSeverity ?? 'INFO', format: { output: cluster.logFormat ?? 'text' } };
  // The AMI writes the cache for proxies; it serves auth servers the same way.
  if (cluster.cache && (roles.has('auth') || roles.has('proxy'))) section.cache = cacheConfigOf(cluster.cache);
  if (roles.has('auth')) section.storage = storageOf(input);
  return section;
}

function storageOf(input: RenderInput): StorageConfig {
  const s = input.cluster.storage;
  const audit: { audit_events_uri?: string[]; audit_sessions_uri?: string } = {};
  if (s.type === 'dynamodb') {
    const table = s.tableName ?? '';
    const storage: StorageConfig = {
      type: 'dynamodb',
      region: s.region || input.cluster.region || input.instance.region,
      table_name: table,
    };
    // Events get their own table beside the state table, as in seed 001_*.
    const events = s.auditEventsUri ?? (table ? [`dynamodb://${table}-events`] : undefined);
    if (events) audit.audit_events_uri = [...events];
    const sessions = s.auditSessionsUri ?? (input.cluster.s3Bucket ? `s3://${input.cluster.s3Bucket}/records` : undefined);
    if (sessions) audit.audit_sessions_uri = sessions;
    return { ...storage, ...audit };
  }
  if (s.auditEventsUri) audit.audit_events_uri = [...s.auditEventsUri];
  if (s.auditSessionsUri) audit.audit_sessions_uri = s.auditSessionsUri;
  return { type: 'dir', ...audit };
}

function authService(input: RenderInput, roles: ReadonlySet<ServiceRole>): AuthServiceSection {
  if (!roles.has('auth')) return { enabled: false };
  const c = input.cluster;
  const section: AuthService = {
    enabled: true,
    listen_addr: listen(TELEPORT_PORTS.auth),
    cluster_name: c.clusterName,
  };
  // The name nodes dial goes into the auth server's certificate.
  if (c.authAddr) section.public_addr = [c.authAddr];
  // Tells clients that the proxies route every protocol over the web port.
  if (listenerModeOf(c) === 'multiplex') section.proxy_listener_mode = 'multiplex';
  if (c.authType || c.secondFactor || c.fips) {
    section.authentication = {
      ...(c.authType ? { type: c.authType } : {}),
      ...(c.secondFactor ? { second_factor: c.secondFactor } : {}),
      // Teleport refuses to start in FIPS mode while local users may log in (Teleport's AMI).
      ...(c.fips ? { local_auth: false } : {}),
    };
    // WebAuthn is bound to the proxy's domain, as Teleport's AMI writes it.
    if ((c.secondFactor === 'on' || c.secondFactor === 'webauthn') && c.proxyPublicAddr) {
      section.authentication.webauthn = { rp_id: hostOf(c.proxyPublicAddr) };
    }
  }
  if (c.proxyProtocol) section.proxy_protocol = c.proxyProtocol;
  if (c.keepAliveInterval !== undefined) section.keep_alive_interval = c.keepAliveInterval;
  if (c.keepAliveCountMax !== undefined) section.keep_alive_count_max = c.keepAliveCountMax;
  if (c.enterprise && input.files.licenseFile) section.license_file = input.files.licenseFile;
  return section;
}

function sshService(input: RenderInput, roles: ReadonlySet<ServiceRole>): SshServiceSection {
  if (!roles.has('node')) return { enabled: false };
  const labels = { ...input.assignment.labels };
  const commands = input.assignment.commandLabels ?? [];
  return {
    enabled: true,
    listen_addr: listen(TELEPORT_PORTS.ssh),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(commands.length > 0 ? { commands: commands.map((c) => ({ name: c.name, command: [...c.command], period: c.period })) } : {}),
  };
}

function proxyService(input: RenderInput, roles: ReadonlySet<ServiceRole>): ProxyServiceSection {
  if (!roles.has('proxy')) return { enabled: false };
  const c = input.cluster;
  const publicAddr = c.proxyPublicAddr;
  const keypairs =
    tlsSourceOf(c) === 'letsencrypt' ? { https_keypairs: [{ key_file: input.files.keyFile, cert_file: input.files.certFile }] } : {};
  // Behind an ALB with an ACM certificate, client addresses arrive in X-Forwarded-For (Teleport's AMI).
  const behindAlb = tlsSourceOf(c) === 'acm' ? { trust_x_forwarded_for: true } : {};
  const proxyProtocol = c.proxyProtocol ? { proxy_protocol: c.proxyProtocol } : {};
  if (listenerModeOf(c) === 'multiplex') {
    // TLS routing: one listener for web, SSH, tunnels, Kubernetes and
    // databases (seed 003_*); no listen_addr or tunnel_listen_addr in v3.
    // Behind a layer 7 balancer with ACM (Teleport 13 and later) clients
    // reach it by upgrading HTTPS connections, so the proxy keeps no key pair.
    return {
      enabled: true,
      web_listen_addr: listen(webListenPortOf(c)),
      public_addr: [publicAddr],
      ...keypairs,
      ...behindAlb,
      ...proxyProtocol,
    };
  }
  // Separate listeners: advertise the SSH and tunnel ports on the public host
  // (or where the operator says, e.g. a network load balancer), so clients
  // and nodes behind NAT find them.
  const host = hostPortProblem(publicAddr) ? undefined : hostOf(publicAddr);
  const section: ProxyService = {
    enabled: true,
    listen_addr: listen(TELEPORT_PORTS.proxySsh),
    tunnel_listen_addr: listen(TELEPORT_PORTS.proxyTunnel),
    web_listen_addr: listen(webListenPortOf(c)),
    public_addr: [publicAddr],
  };
  const sshPublic = c.sshPublicAddr ?? (host ? joinHostPort(host, TELEPORT_PORTS.proxySsh) : undefined);
  const tunnelPublic = c.tunnelPublicAddr ?? (host ? joinHostPort(host, TELEPORT_PORTS.proxyTunnel) : undefined);
  if (sshPublic !== undefined) section.ssh_public_addr = sshPublic;
  if (tunnelPublic !== undefined) section.tunnel_public_addr = tunnelPublic;
  if (c.kubePublicAddr) {
    section.kube_listen_addr = listen(TELEPORT_PORTS.kube);
    section.kube_public_addr = [c.kubePublicAddr];
  }
  if (c.mysqlPublicAddr) {
    section.mysql_listen_addr = listen(TELEPORT_PORTS.mysql);
    section.mysql_public_addr = [c.mysqlPublicAddr];
  }
  if (c.postgresPublicAddr) {
    section.postgres_listen_addr = listen(TELEPORT_PORTS.postgres);
    section.postgres_public_addr = [c.postgresPublicAddr];
  }
  if (c.mongoPublicAddr) {
    section.mongo_listen_addr = listen(TELEPORT_PORTS.mongo);
    section.mongo_public_addr = [c.mongoPublicAddr];
  }
  Object.assign(section, keypairs, behindAlb, proxyProtocol);
  return section;
}

function kubernetesService(input: RenderInput, roles: ReadonlySet<ServiceRole>, route: JoinRoute): KubernetesServiceSection | undefined {
  if (!roles.has('kube')) return undefined;
  const k = input.assignment.kube;
  // Joined through the proxy (or beside a proxy in the same process) the
  // service is reached over the reverse tunnel; joined directly to the auth
  // service, the proxy dials its own listener on 3026 (seed 003_*).
  const tunnel = route === 'proxy' || (route === 'none' && roles.has('proxy'));
  return {
    enabled: true,
    ...(tunnel ? {} : { listen_addr: listen(TELEPORT_PORTS.kube) }),
    resources: (k?.resources ?? []).map((r) => ({ labels: { ...r.labels } })),
    ...(k?.labels && Object.keys(k.labels).length > 0 ? { labels: { ...k.labels } } : {}),
  };
}

function appService(input: RenderInput, roles: ReadonlySet<ServiceRole>): AppServiceSection | undefined {
  if (!roles.has('app')) return undefined;
  return {
    enabled: true,
    apps: (input.assignment.apps ?? []).map((a) => ({
      name: a.name,
      ...(a.description ? { description: a.description } : {}),
      uri: a.uri,
      ...(a.publicAddr ? { public_addr: a.publicAddr } : {}),
      ...(a.insecureSkipVerify ? { insecure_skip_verify: true } : {}),
      ...(a.labels && Object.keys(a.labels).length > 0 ? { labels: { ...a.labels } } : {}),
    })),
  };
}

function dbService(input: RenderInput, roles: ReadonlySet<ServiceRole>): DbServiceSection | undefined {
  if (!roles.has('db')) return undefined;
  return {
    enabled: true,
    databases: (input.assignment.databases ?? []).map((d) => {
      const region = d.awsRegion ?? (onAws(d) ? input.instance.region : undefined);
      const aws = {
        ...(region ? { region } : {}),
        ...(d.redshiftClusterId ? { redshift: { cluster_id: d.redshiftClusterId } } : {}),
      };
      return {
        name: d.name,
        ...(d.description ? { description: d.description } : {}),
        protocol: d.protocol,
        uri: d.uri,
        ...(Object.keys(aws).length > 0 ? { aws } : {}),
        ...(d.staticLabels && Object.keys(d.staticLabels).length > 0 ? { static_labels: { ...d.staticLabels } } : {}),
      };
    }),
  };
}

/**
 * Whether a database is an AWS one (RDS, Aurora, Redshift, ...), whose
 * region defaults to the instance's as Teleport's AMI writes it
 * (TELEPORT_AGENT_DB_REGION, else EC2_REGION). The AMI writes it for every
 * database; teleboot leaves it off elsewhere, since Teleport takes a
 * database with an AWS region for an AWS-hosted one.
 */
function onAws(d: { uri: string; redshiftClusterId?: string }): boolean {
  if (d.redshiftClusterId) return true;
  const host = d.uri.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/[:/].*$/, '');
  return /\.amazonaws\.com(\.cn)?$/i.test(host);
}

function discoveryService(input: RenderInput, roles: ReadonlySet<ServiceRole>): DiscoveryServiceSection | undefined {
  if (!roles.has('discovery')) return undefined;
  const d = input.assignment.discovery;
  return {
    enabled: true,
    ...(d?.group ? { discovery_group: d.group } : {}),
    aws: (d?.aws ?? []).map((m) => ({
      types: [...m.types],
      regions: [...m.regions],
      ...(m.tags && Object.keys(m.tags).length > 0 ? { tags: { ...m.tags } } : {}),
      // EC2 auto-discovery joins what it finds with an IAM token (seed 002_*).
      ...(m.installTokenName ? { install: { join_params: { token_name: m.installTokenName, method: 'iam' as const } } } : {}),
      ...(m.ssmDocumentName ? { ssm: { document_name: m.ssmDocumentName } } : {}),
      ...(m.assumeRoleArn ? { assume_role_arn: m.assumeRoleArn } : {}),
    })),
  };
}

// ---- validation with the teleboot setting behind each problem ---------------------

const SETTING_OF: ReadonlyArray<[prefix: string, setting: string]> = [
  ['teleport.nodename', 'assignment.nodename or instance.hostname'],
  ['teleport.data_dir', 'files.dataDir'],
  ['teleport.auth_server', 'cluster.authAddr'],
  ['teleport.ca_pin', 'caPins'],
  ['teleport.advertise_ip', 'assignment.advertiseIp'],
  ['teleport.diag_addr', 'diagAddr'],
  ['teleport.connection_limits.max_connections', 'cluster.maxConnections'],
  ['teleport.connection_limits.max_users', 'cluster.maxUsers'],
  ['teleport.log.severity', 'cluster.logSeverity'],
  ['teleport.log.format', 'cluster.logFormat'],
  ['teleport.cache', 'cluster.cache'],
  ['teleport.storage.table_name', 'cluster.storage.tableName'],
  ['teleport.storage.region', 'cluster.storage.region or cluster.region'],
  ['teleport.storage.audit_events_uri', 'cluster.storage.auditEventsUri'],
  ['teleport.storage.audit_sessions_uri', 'cluster.storage.auditSessionsUri or cluster.s3Bucket'],
  ['auth_service.cluster_name', 'cluster.clusterName'],
  ['auth_service.public_addr', 'cluster.authAddr'],
  ['auth_service.authentication.type', 'cluster.authType'],
  ['auth_service.authentication.second_factor', 'cluster.secondFactor'],
  ['auth_service.authentication.webauthn', 'cluster.proxyPublicAddr'],
  ['auth_service.authentication.local_auth', 'cluster.fips'],
  ['auth_service.proxy_protocol', 'cluster.proxyProtocol'],
  ['proxy_service.proxy_protocol', 'cluster.proxyProtocol'],
  ['proxy_service.web_listen_addr', 'cluster.proxyWebListenPort'],
  ['auth_service.keep_alive_interval', 'cluster.keepAliveInterval'],
  ['auth_service.keep_alive_count_max', 'cluster.keepAliveCountMax'],
  ['auth_service.license_file', 'files.licenseFile'],
  ['ssh_service.labels', 'assignment.labels'],
  ['proxy_service.public_addr', 'cluster.proxyPublicAddr'],
  ['proxy_service.kube_public_addr', 'cluster.kubePublicAddr'],
  ['proxy_service.mysql_public_addr', 'cluster.mysqlPublicAddr'],
  ['proxy_service.postgres_public_addr', 'cluster.postgresPublicAddr'],
  ['proxy_service.mongo_public_addr', 'cluster.mongoPublicAddr'],
  ['proxy_service.https_keypairs', 'files.certFile and files.keyFile'],
  ['kubernetes_service.listen_addr', 'assignment.roles'],
  ['kubernetes_service.resources', 'assignment.kube.resources'],
  ['kubernetes_service.labels', 'assignment.kube.labels'],
  ['app_service.apps', 'assignment.apps'],
  ['db_service.databases', 'assignment.databases'],
  ['discovery_service.discovery_group', 'assignment.discovery.group'],
  ['discovery_service.aws', 'assignment.discovery.aws'],
];

/** teleport.yaml keys inside list items, renamed to the assignment's field names. */
const ITEM_FIELDS: Readonly<Record<string, string>> = {
  public_addr: 'publicAddr',
  insecure_skip_verify: 'insecureSkipVerify',
  static_labels: 'staticLabels',
  'aws.region': 'awsRegion',
  'aws.redshift.cluster_id': 'redshiftClusterId',
  'aws.redshift': 'redshiftClusterId',
  ssm: 'ssmDocumentName',
  'ssm.document_name': 'ssmDocumentName',
  install: 'installTokenName',
  'install.join_params.token_name': 'installTokenName',
  'install.join_params.method': 'installTokenName',
  assume_role_arn: 'assumeRoleArn',
};

/** "app_service.apps[0].public_addr" -> "assignment.apps[0].publicAddr", for list-valued assignment options. */
function itemSetting(path: string): string | undefined {
  const lists: Array<[string, string]> = [
    ['app_service.apps', 'assignment.apps'],
    ['db_service.databases', 'assignment.databases'],
    ['discovery_service.aws', 'assignment.discovery.aws'],
    ['kubernetes_service.resources', 'assignment.kube.resources'],
    ['ssh_service.commands', 'assignment.commandLabels'],
  ];
  for (const [prefix, setting] of lists) {
    const m = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\[\\d+\\])?(?:\\.(.*))?$`).exec(path);
    if (!m) continue;
    if (!m[1]) return setting;
    if (!m[2]) return `${setting}${m[1]}`;
    const rest = m[2];
    const renamed = ITEM_FIELDS[rest] ?? Object.entries(ITEM_FIELDS).find(([k]) => rest.startsWith(`${k}.`))?.[1];
    // Label maps and plain fields keep their name, up to the first key below them.
    const field = renamed ?? rest.split(/[.[]/)[0];
    return `${setting}${m[1]}.${field}`;
  }
  return undefined;
}

/** The teleboot input behind a problem found in the rendered config. */
function withSetting(problem: ConfigProblem, input: RenderInput): ConfigProblem {
  if (problem.setting) return problem;
  const { path, message } = problem;
  const explicitJoin = input.assignment.joinVia !== undefined;
  let setting: string | undefined;
  if (path === 'teleport.proxy_server') {
    setting = /proxy_service is enabled/.test(message) ? 'assignment.joinVia' : 'cluster.proxyPublicAddr';
  } else if (/^(app|db|discovery)_service\.enabled$/.test(path)) {
    setting =
      explicitJoin && !input.assignment.roles.includes('proxy') && !input.assignment.roles.includes('auth')
        ? 'assignment.joinVia'
        : 'assignment.roles';
  } else if (path.startsWith('teleport.join_params')) {
    setting = (input.cluster.joinMethod ?? 'token') === 'iam' ? 'cluster.iamTokenName' : 'files.joinTokenFile';
  } else if (path === 'proxy_service.ssh_public_addr') {
    setting = input.cluster.sshPublicAddr !== undefined ? 'cluster.sshPublicAddr' : 'cluster.proxyPublicAddr';
  } else if (path === 'proxy_service.tunnel_public_addr') {
    setting = input.cluster.tunnelPublicAddr !== undefined ? 'cluster.tunnelPublicAddr' : 'cluster.proxyPublicAddr';
  } else {
    setting =
      itemSetting(path) ??
      SETTING_OF.find(([prefix]) => path === prefix || path.startsWith(prefix + '.') || path.startsWith(prefix + '['))?.[1];
  }
  if (setting && path.startsWith('proxy_service.https_keypairs')) {
    if (path.endsWith('.cert_file')) setting = 'files.certFile';
    if (path.endsWith('.key_file')) setting = 'files.keyFile';
  }
  return setting ? { ...problem, setting } : problem;
}

/** Every problem of `input`, each naming the teleboot setting behind it; [] when it renders. */
export function renderProblems(input: RenderInput): ConfigProblem[] {
  let roles: ReadonlySet<ServiceRole>;
  try {
    roles = checkedRoles(input.assignment);
  } catch (err) {
    if (err instanceof RenderError) return err.problems;
    throw err;
  }
  const fragments = applyFragments(renderTeleportConfig(withoutFragments(input)), input);
  return [
    ...inputProblems(input, roles),
    ...fragments.problems,
    ...validateTeleportConfig(renderTeleportConfig(input)).map((p) => withSetting(p, input)),
  ];
}

/** Render, validate and serialize; throws RenderError listing every problem. */
export function renderTeleportYaml(input: RenderInput): string {
  const problems = renderProblems(input);
  if (problems.length > 0) throw new RenderError(problems);
  return teleportConfigToYaml(renderTeleportConfig(input));
}

// ---- YAML --------------------------------------------------------------------------

export const GENERATED_HEADER = [
  " Generated by teleboot from this instance's assignment and the cluster settings.",
  ' Do not edit: teleboot overwrites this file whenever either changes.',
].join('\n');

/** Plain scalars that read back as the same string in YAML 1.1 and 1.2 alike. */
const SAFE_PLAIN = /^[A-Za-z0-9_./-](?:[A-Za-z0-9_./:@=+,-]*[A-Za-z0-9_./@=+,-])?$/;
// The yaml library leaves these raw inside double quotes, but YAML 1.1 readers
// (Teleport's go-yaml) take NEL/LS/PS as line breaks and refuse DEL, C1 and BOM.
const RAW_IN_QUOTES = /[\x7f-\x9f\u2028\u2029\ufeff]/g;

/**
 * The YAML text of `cfg`. Keys come out in a fixed order. Every string that
 * is not obviously inert (only letters, digits and . _ / - : @ = + ,) or that
 * a YAML 1.1 reader would take for a boolean, number, null or date is double
 * quoted, so newlines, "#", quotes, "!!tags", "<<" and "yes" stay strings and
 * can never add keys.
 */
export function teleportConfigToYaml(cfg: TeleportConfig): string {
  const doc = new Document(ordered(cfg, ''), { version: '1.2' });
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string') return;
      if (!SAFE_PLAIN.test(node.value) || !readsBackAsItself(node.value)) node.type = Scalar.QUOTE_DOUBLE;
    },
  });
  doc.commentBefore = GENERATED_HEADER;
  const text = doc.toString({ lineWidth: 0 });
  // Only double-quoted scalars can hold these characters (see SAFE_PLAIN), where \u escapes are valid.
  return text.replace(RAW_IN_QUOTES, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The first characters of every plain scalar YAML 1.1 resolves to something
 * other than a string: null (~, null), booleans (y, n, yes, no, true, false,
 * on, off), numbers (sign, digit, ".", and "e5": the exponent alone), dates
 * and "<<". A SAFE_PLAIN text that starts otherwise (a path, a host name)
 * reads back as itself without a parse.
 */
const MAY_RESOLVE = /^[-+.~<0-9eEnNyYtTfFoO]/;
/** Answers of readsBackAsItself: the same names and labels come back on every render. */
const readBack = new Map<string, boolean>();

/** Whether a YAML 1.1 reader takes `text` (SAFE_PLAIN), written plain, for this very string. */
function readsBackAsItself(text: string): boolean {
  if (!MAY_RESOLVE.test(text)) return true;
  let same = readBack.get(text);
  if (same === undefined) {
    try {
      same = parse(text, { version: '1.1' }) === text;
    } catch {
      same = false;
    }
    if (readBack.size >= 4096) readBack.clear();
    readBack.set(text, same);
  }
  return same;
}

/** A copy of `value` with object keys in KEY_ORDER (then code-point order) and undefined dropped. */
function ordered(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((v) => ordered(v, `${path}[]`));
  if (value === null || typeof value !== 'object') return value;
  const order = KEY_ORDER[path] ?? [];
  const rank = (k: string): number => (order.includes(k) ? order.indexOf(k) : order.length);
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const child = (value as Record<string, unknown>)[k];
    // defineProperty so a key such as "__proto__" stays an ordinary key.
    Object.defineProperty(out, k, {
      value: ordered(child, path ? `${path}.${k}` : k),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
