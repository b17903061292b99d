// A typed model of the parts of Teleport's config file (version v3) that
// teleboot writes, and the checks that a model is one Teleport will accept.
// Keys are snake_case exactly as Teleport reads them (lib/config/fileconf.go);
// Teleport parses the file strictly, so an unknown key stops it from starting.
// The rules follow Teleport's config reference and lib/config/configuration.go;
// a few are teleboot's own (stricter than Teleport), each marked as such.

import { hostPortProblem, isHostName, isHostOrIp, isIpv4, parseHostPort } from '../address';
import { DATABASE_PROTOCOLS, DISCOVERY_AWS_TYPES, LABEL_KEY_PATTERN } from '../assignment';
import { isAwsRegion } from '../aws-region';
import { CONTROL_CHARACTER } from '../schema';
import { DURATION_PATTERN } from '../duration';
import { AUTH_TYPES, LOG_FORMATS, LOG_SEVERITY_SETTINGS, PROXY_LISTENER_MODES, SECOND_FACTORS, STORAGE_TYPES } from '../settings';

export const TELEPORT_CONFIG_VERSION = 'v3';

/** Ports from the networking reference (seed 003_*) and Teleport's AMI. */
export const TELEPORT_PORTS = {
  auth: 3025,
  ssh: 3022,
  proxySsh: 3023,
  proxyTunnel: 3024,
  proxyWeb: 3080,
  /** TLS routing: every protocol on one port. */
  proxyTlsRouting: 443,
  kube: 3026,
  mysql: 3036,
  postgres: 5432,
  mongo: 27017,
} as const;

/** Join methods that fit an EC2 instance; teleboot writes "token" and "iam". */
export const JOIN_METHODS = ['token', 'ec2', 'iam'] as const;
export type JoinMethod = (typeof JOIN_METHODS)[number];

export const LOG_SEVERITIES = LOG_SEVERITY_SETTINGS;
export type LogSeverity = (typeof LOG_SEVERITIES)[number];

export interface TeleportConfig {
  version: typeof TELEPORT_CONFIG_VERSION;
  teleport: TeleportSection;
  auth_service: AuthServiceSection;
  ssh_service: SshServiceSection;
  proxy_service: ProxyServiceSection;
  /** The services below are off unless their section enables them, so teleboot writes them only when used. */
  kubernetes_service?: KubernetesServiceSection;
  app_service?: AppServiceSection;
  db_service?: DbServiceSection;
  discovery_service?: DiscoveryServiceSection;
}

export interface ConnectionLimits {
  max_connections?: number;
  max_users?: number;
}

export interface TeleportSection {
  nodename: string;
  data_dir: string;
  /** Absent on hosts that run the auth service: they join nothing. */
  join_params?: JoinParams;
  /** v3: the auth service to join through. Exclusive with proxy_server. */
  auth_server?: string;
  /** v3: join through a proxy instead. Not allowed when proxy_service runs. */
  proxy_server?: string;
  /** SPKI hashes ("sha256:<hex>") of the cluster CA, checked when joining the auth service directly. */
  ca_pin?: string[];
  /** The address other hosts reach this one at (NAT, several interfaces). */
  advertise_ip?: string;
  diag_addr?: string;
  connection_limits?: ConnectionLimits;
  log?: LogConfig;
  /** The cache of the backend in each Teleport process (Teleport's AMI writes `type: in-memory` for proxies). */
  cache?: CacheConfig;
  storage?: StorageConfig;
}

export const CACHE_TYPES = ['in-memory'] as const;
export interface CacheConfig {
  enabled?: boolean;
  type?: (typeof CACHE_TYPES)[number];
}

/** `proxy_protocol` of auth_service and proxy_service: "on" requires a PROXY header on every connection, "off" refuses it. */
export const PROXY_PROTOCOL_MODES = ['on', 'off'] as const;
export type ProxyProtocolMode = (typeof PROXY_PROTOCOL_MODES)[number];

export interface JoinParams {
  /** method token: the token, or an absolute path to a file holding it (Teleport reads the file). Otherwise the name of the token resource. */
  token_name: string;
  method: JoinMethod;
}

export interface LogConfig {
  /** stderr, stdout, syslog, or a file path. */
  output: string;
  severity: LogSeverity;
  format?: { output: 'text' | 'json' };
}

interface AuditStorage {
  /** Where audit events go, e.g. "dynamodb://cluster-events"; several are allowed. */
  audit_events_uri?: string[];
  /** Where session recordings go, e.g. "s3://bucket/records". */
  audit_sessions_uri?: string;
}

export interface DirStorage extends AuditStorage {
  type: 'dir';
  /** Defaults to <data_dir>/backend. */
  path?: string;
}

export interface DynamoDbStorage extends AuditStorage {
  type: 'dynamodb';
  region: string;
  table_name: string;
}

export type StorageConfig = DirStorage | DynamoDbStorage;

/**
 * Teleport runs auth, ssh and proxy when their section is missing, so every
 * one of those that teleboot does not want is written out as `enabled: false`.
 */
export interface DisabledService {
  enabled: false;
}

export interface Authentication {
  type?: string;
  second_factor?: string;
  /** false in FIPS mode: Teleport refuses to start in FIPS mode while local users may log in (Teleport's AMI). */
  local_auth?: boolean;
  /** Needed with second_factor "on" or "webauthn": the proxy's domain, which must never change. */
  webauthn?: { rp_id: string };
}

export interface AuthService {
  enabled: true;
  listen_addr: string;
  cluster_name: string;
  public_addr?: string[];
  /** "multiplex" tells clients the proxy routes every protocol over its web port (TLS routing). */
  proxy_listener_mode?: 'separate' | 'multiplex';
  authentication?: Authentication;
  proxy_protocol?: ProxyProtocolMode;
  /** A duration: how often keep-alives go to clients and reverse tunnels (Teleport's AMI: 1m). */
  keep_alive_interval?: string;
  keep_alive_count_max?: number;
  /** Absolute, or relative to data_dir; Teleport looks for license.pem there by default. */
  license_file?: string;
}

export interface CommandLabel {
  name: string;
  command: string[];
  /** A Go duration: "1m", "1h30m". */
  period: string;
}

export interface SshService {
  enabled: true;
  listen_addr: string;
  labels?: Record<string, string>;
  commands?: CommandLabel[];
}

export interface KeyPair {
  key_file: string;
  cert_file: string;
}

export interface ProxyService {
  enabled: true;
  /** SSH listener; absent with TLS routing (SSH is multiplexed on the web port). */
  listen_addr?: string;
  /** Reverse tunnel listener; absent with TLS routing. */
  tunnel_listen_addr?: string;
  web_listen_addr: string;
  public_addr: string[];
  ssh_public_addr?: string;
  tunnel_public_addr?: string;
  kube_listen_addr?: string;
  kube_public_addr?: string[];
  mysql_listen_addr?: string;
  mysql_public_addr?: string[];
  postgres_listen_addr?: string;
  postgres_public_addr?: string[];
  mongo_listen_addr?: string;
  mongo_public_addr?: string[];
  /** Absent when a load balancer terminates TLS (ACM): Teleport then serves a self-signed certificate to it. */
  https_keypairs?: KeyPair[];
  /** Behind an AWS ALB: take client addresses from X-Forwarded-For (Teleport's AMI with ACM). */
  trust_x_forwarded_for?: boolean;
  proxy_protocol?: ProxyProtocolMode;
}

export interface KubernetesService {
  enabled: true;
  /** Only when joining the auth service directly: the proxy then dials this listener (seed 003_*). */
  listen_addr?: string;
  /** Selectors of the kube_cluster resources this service serves (seed 004_*). */
  resources: Array<{ labels: Record<string, string> }>;
  labels?: Record<string, string>;
}

export interface App {
  name: string;
  description?: string;
  uri: string;
  public_addr?: string;
  insecure_skip_verify?: boolean;
  labels?: Record<string, string>;
}

export interface AppService {
  enabled: true;
  apps: App[];
}

export interface Database {
  name: string;
  description?: string;
  protocol: string;
  uri: string;
  aws?: { region?: string; redshift?: { cluster_id: string } };
  static_labels?: Record<string, string>;
}

export interface DbService {
  enabled: true;
  databases: Database[];
}

export interface DiscoveryAwsMatcher {
  types: string[];
  regions: string[];
  tags?: Record<string, string>;
  /** EC2 only: how discovered instances join (always IAM for EC2 discovery). */
  install?: { join_params: { token_name: string; method: 'iam' } };
  /** EC2 only: the SSM document that installs Teleport. */
  ssm?: { document_name: string };
  assume_role_arn?: string;
}

export interface DiscoveryService {
  enabled: true;
  discovery_group?: string;
  aws: DiscoveryAwsMatcher[];
}

export type AuthServiceSection = DisabledService | AuthService;
export type SshServiceSection = DisabledService | SshService;
export type ProxyServiceSection = DisabledService | ProxyService;
export type KubernetesServiceSection = DisabledService | KubernetesService;
export type AppServiceSection = DisabledService | AppService;
export type DbServiceSection = DisabledService | DbService;
export type DiscoveryServiceSection = DisabledService | DiscoveryService;

/** One reason a config would be refused; `path` names the setting in teleport.yaml. */
export interface ConfigProblem {
  path: string;
  message: string;
  /** The teleboot input the value came from, when known (e.g. "cluster.authAddr"). */
  setting?: string;
}

/**
 * Order of keys in the written file, per section; keys not listed follow in
 * code-point order (labels are all "not listed", so they come out sorted).
 * A fixed order keeps the file byte-identical for identical input, which is
 * what lets the agent skip rewriting an unchanged file.
 */
export const KEY_ORDER: Readonly<Record<string, readonly string[]>> = {
  '': [
    'version',
    'teleport',
    'auth_service',
    'ssh_service',
    'proxy_service',
    'kubernetes_service',
    'app_service',
    'db_service',
    'discovery_service',
  ],
  teleport: [
    'nodename',
    'data_dir',
    'join_params',
    'auth_server',
    'proxy_server',
    'ca_pin',
    'advertise_ip',
    'diag_addr',
    'connection_limits',
    'log',
    'cache',
    'storage',
  ],
  'teleport.join_params': ['token_name', 'method'],
  'teleport.connection_limits': ['max_connections', 'max_users'],
  'teleport.log': ['output', 'severity', 'format'],
  'teleport.cache': ['enabled', 'type'],
  'teleport.storage': ['type', 'path', 'region', 'table_name', 'audit_events_uri', 'audit_sessions_uri'],
  auth_service: [
    'enabled',
    'listen_addr',
    'cluster_name',
    'public_addr',
    'proxy_listener_mode',
    'authentication',
    'proxy_protocol',
    'keep_alive_interval',
    'keep_alive_count_max',
    'license_file',
  ],
  'auth_service.authentication': ['type', 'second_factor', 'local_auth', 'webauthn'],
  ssh_service: ['enabled', 'listen_addr', 'labels', 'commands'],
  'ssh_service.commands[]': ['name', 'command', 'period'],
  proxy_service: [
    'enabled',
    'listen_addr',
    'tunnel_listen_addr',
    'web_listen_addr',
    'public_addr',
    'ssh_public_addr',
    'tunnel_public_addr',
    'kube_listen_addr',
    'kube_public_addr',
    'mysql_listen_addr',
    'mysql_public_addr',
    'postgres_listen_addr',
    'postgres_public_addr',
    'mongo_listen_addr',
    'mongo_public_addr',
    'https_keypairs',
    'trust_x_forwarded_for',
    'proxy_protocol',
  ],
  'proxy_service.https_keypairs[]': ['key_file', 'cert_file'],
  kubernetes_service: ['enabled', 'listen_addr', 'resources', 'labels'],
  app_service: ['enabled', 'apps'],
  'app_service.apps[]': ['name', 'description', 'uri', 'public_addr', 'insecure_skip_verify', 'labels'],
  db_service: ['enabled', 'databases'],
  'db_service.databases[]': ['name', 'description', 'protocol', 'uri', 'aws', 'static_labels'],
  'db_service.databases[].aws': ['region', 'redshift'],
  discovery_service: ['enabled', 'discovery_group', 'aws'],
  'discovery_service.aws[]': ['types', 'regions', 'tags', 'install', 'ssm', 'assume_role_arn'],
};

// ---- value checks ----------------------------------------------------------

const labelKeyRe = new RegExp(LABEL_KEY_PATTERN);
const durationRe = new RegExp(DURATION_PATTERN);
const CA_PIN_RE = /^sha256:[0-9a-fA-F]{64}$/;
// Teleport also takes bare "stdout://" for events, hence an empty rest.
const URI_RE = /^[a-z][a-z0-9+.-]*:\/\/\S*$/;
/** Kubernetes' DNS-1035 label, which Teleport requires of app and database names. */
const DNS1035_RE = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Names of token resources (IAM joining) and SSM documents: no spaces, no path. */
const RESOURCE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Characters a YAML 1.1 reader (Teleport uses go-yaml) treats as line breaks
// or refuses, plus every other control character. Label values may hold
// newlines and tabs; nothing else may.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const FORBIDDEN_ANYWHERE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;
const FORBIDDEN_IN_SETTINGS = CONTROL_CHARACTER;
/** Maps whose values are label values (free text): ssh/kube/app labels, database static labels, selectors, tags. */
const LABEL_MAPS = new Set(['labels', 'static_labels', 'tags']);
/** Other free text that may span lines: descriptions and the words of a label command. */
const FREE_TEXT = new Set(['description', 'command']);

function isAbsolutePath(p: unknown): p is string {
  return typeof p === 'string' && p.startsWith('/') && !/[\s]/.test(p);
}

const isPositiveInt = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n > 0;

// ---- whole-config validation -------------------------------------------------

type Report = (path: string, message: string) => void;

interface Enabled {
  auth: boolean;
  ssh: boolean;
  proxy: boolean;
  kube: boolean;
  app: boolean;
  db: boolean;
  discovery: boolean;
}

/** Every reason Teleport (or teleboot's own rules) would refuse `cfg`; [] when valid. */
export function validateTeleportConfig(cfg: TeleportConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const report: Report = (path, message) => problems.push({ path, message });

  if (cfg.version !== TELEPORT_CONFIG_VERSION) report('version', `must be ${String(TELEPORT_CONFIG_VERSION)}`);
  checkStrings(cfg, '', report, false);
  const on = checkServiceToggles(cfg, report);
  checkTeleportSection(cfg.teleport, on, report);
  checkTunnelNeeds(cfg.teleport, on, report);
  if (cfg.auth_service?.enabled === true) checkAuth(cfg.auth_service, report);
  if (cfg.ssh_service?.enabled === true) checkSsh(cfg.ssh_service, report);
  if (cfg.proxy_service?.enabled === true) checkProxy(cfg.proxy_service, report);
  if (cfg.kubernetes_service?.enabled === true) checkKube(cfg.kubernetes_service, report);
  if (cfg.app_service?.enabled === true) checkApps(cfg.app_service, report);
  if (cfg.db_service?.enabled === true) checkDatabases(cfg.db_service, report);
  if (cfg.discovery_service?.enabled === true) checkDiscovery(cfg.discovery_service, report);
  checkListenerClashes(cfg, on, report);
  return problems;
}

/** Two listeners of one process on the same port: Teleport would fail to bind the second. */
function checkListenerClashes(cfg: TeleportConfig, on: Enabled, report: Report): void {
  const listeners: Array<[path: string, addr: unknown]> = [['teleport.diag_addr', cfg.teleport?.diag_addr]];
  if (on.auth) listeners.push(['auth_service.listen_addr', (cfg.auth_service as AuthService).listen_addr]);
  if (on.ssh) listeners.push(['ssh_service.listen_addr', (cfg.ssh_service as SshService).listen_addr]);
  if (on.proxy) {
    const p = cfg.proxy_service as ProxyService;
    for (const key of [
      'listen_addr',
      'tunnel_listen_addr',
      'web_listen_addr',
      'kube_listen_addr',
      'mysql_listen_addr',
      'postgres_listen_addr',
      'mongo_listen_addr',
    ] as const) {
      listeners.push([`proxy_service.${key}`, p[key]]);
    }
  }
  if (on.kube) listeners.push(['kubernetes_service.listen_addr', (cfg.kubernetes_service as KubernetesService).listen_addr]);
  const seen: Array<{ path: string; host: string; port: number | undefined }> = [];
  for (const [path, addr] of listeners) {
    if (typeof addr !== 'string' || hostPortProblem(addr)) continue;
    const { host, port } = parseHostPort(addr);
    const wildcard = (h: string) => h === '0.0.0.0' || h === '::' || h === '';
    const clash = seen.find((s) => s.port === port && (s.host === host || wildcard(s.host) || wildcard(host)));
    if (clash) report(path, `port ${port} is already taken by ${clash.path}`);
    seen.push({ path, host, port });
  }
}

/** Rejects control characters anywhere; newlines only inside label values. */
function checkStrings(value: unknown, path: string, report: Report, labelValues: boolean): void {
  if (typeof value === 'string') {
    if ((labelValues ? FORBIDDEN_ANYWHERE : FORBIDDEN_IN_SETTINGS).test(value)) {
      report(
        path,
        labelValues
          ? 'must not contain control characters other than newline and tab'
          : 'must not contain control characters or line breaks',
      );
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkStrings(v, `${path}[${i}]`, report, false));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const isLabelMap = LABEL_MAPS.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v);
      const child = path ? `${path}.${k}` : k;
      if (isLabelMap) {
        for (const [lk, lv] of Object.entries(v as Record<string, unknown>)) checkStrings(lv, `${child}.${lk}`, report, true);
      } else if (FREE_TEXT.has(k)) {
        if (Array.isArray(v)) v.forEach((w, i) => checkStrings(w, `${child}[${i}]`, report, true));
        else checkStrings(v, child, report, true);
      } else {
        checkStrings(v, child, report, false);
      }
    }
  }
}

const DEFAULT_ON = ['auth_service', 'ssh_service', 'proxy_service'] as const;
const DEFAULT_OFF = ['kubernetes_service', 'app_service', 'db_service', 'discovery_service'] as const;

function checkServiceToggles(cfg: TeleportConfig, report: Report): Enabled {
  const enabled: Record<string, boolean> = {};
  for (const name of DEFAULT_ON) {
    const flag = (cfg[name] as { enabled?: unknown } | undefined)?.enabled;
    // Teleport starts a service whose section is missing, so "absent" is not "off".
    if (typeof flag !== 'boolean') report(`${name}.enabled`, 'must be set to true or false explicitly');
    enabled[name] = flag === true;
  }
  for (const name of DEFAULT_OFF) {
    const section = cfg[name] as { enabled?: unknown } | undefined;
    if (section === undefined) continue;
    if (typeof section.enabled !== 'boolean') report(`${name}.enabled`, 'must be set to true or false explicitly');
    enabled[name] = section.enabled === true;
  }
  if (!Object.values(enabled).some(Boolean)) report('*_service.enabled', 'at least one service must be enabled');
  return {
    auth: enabled.auth_service,
    ssh: enabled.ssh_service,
    proxy: enabled.proxy_service,
    kube: enabled.kubernetes_service === true,
    app: enabled.app_service === true,
    db: enabled.db_service === true,
    discovery: enabled.discovery_service === true,
  };
}

function checkTeleportSection(t: TeleportSection | undefined, on: Enabled, report: Report): void {
  if (!t) return report('teleport', 'is required');
  if (!t.nodename) report('teleport.nodename', 'must not be empty');
  if (!isAbsolutePath(t.data_dir)) report('teleport.data_dir', 'must be an absolute path');
  if (t.diag_addr !== undefined) {
    const p = hostPortProblem(t.diag_addr);
    if (p) report('teleport.diag_addr', p);
  }
  // lib/config/configuration.go (v3): "only one of auth_server or proxy_server should be set".
  if (t.auth_server !== undefined && t.proxy_server !== undefined) {
    report('teleport.proxy_server', 'only one of auth_server and proxy_server may be set');
  }
  // ...and "proxy_server can not be specified when proxy service is enabled".
  if (t.proxy_server !== undefined && on.proxy) {
    report('teleport.proxy_server', 'cannot be set when proxy_service is enabled: a proxy joins the auth service directly');
  }
  for (const key of ['auth_server', 'proxy_server'] as const) {
    if (t[key] === undefined) continue;
    const p = hostPortProblem(t[key]);
    if (p) report(`teleport.${key}`, p);
  }
  (t.ca_pin ?? []).forEach((pin, i) => {
    if (!CA_PIN_RE.test(pin)) report(`teleport.ca_pin[${i}]`, 'must be "sha256:" followed by 64 hex digits');
  });
  if (t.advertise_ip !== undefined) {
    if (!isHostOrIp(parseHostPort(t.advertise_ip).host))
      report('teleport.advertise_ip', `must be an IP address or host name, got ${JSON.stringify(t.advertise_ip)}`);
  }
  if (t.connection_limits) {
    const l = t.connection_limits;
    if (l.max_connections !== undefined && !isPositiveInt(l.max_connections))
      report('teleport.connection_limits.max_connections', 'must be a positive integer');
    if (l.max_users !== undefined && !isPositiveInt(l.max_users))
      report('teleport.connection_limits.max_users', 'must be a positive integer');
  }
  if (!on.auth) checkJoin(t, report);
  if (t.log) checkLog(t.log, report);
  if (t.cache) {
    if (t.cache.enabled !== undefined && typeof t.cache.enabled !== 'boolean') report('teleport.cache.enabled', 'must be true or false');
    if (t.cache.type !== undefined && !(CACHE_TYPES as readonly string[]).includes(t.cache.type))
      report('teleport.cache.type', `must be one of ${CACHE_TYPES.join(', ')}`);
  }
  if (t.storage) checkStorage(t.storage, report);
}

/** A host without the auth service must know where and how to join. */
function checkJoin(t: TeleportSection, report: Report): void {
  if (t.auth_server === undefined && t.proxy_server === undefined) {
    report('teleport.auth_server', 'must be host:port of the auth service (or proxy_server of the proxy) to join through, got nothing');
  }
  if (!t.join_params) return report('teleport.join_params', 'is required to join the cluster');
  const { method, token_name: token } = t.join_params;
  if (!(JOIN_METHODS as readonly string[]).includes(method)) {
    report('teleport.join_params.method', `must be one of ${JOIN_METHODS.join(', ')}`);
  } else if (method === 'token') {
    // An absolute token_name is read as a file by Teleport, which keeps the
    // secret itself out of teleport.yaml; a relative one would be sent as the token.
    if (!isAbsolutePath(token)) report('teleport.join_params.token_name', 'must be the absolute path of the join token file');
  } else if (!RESOURCE_NAME_RE.test(token ?? '')) {
    report(
      'teleport.join_params.token_name',
      `must name the ${method} join token resource (letters, digits, ".", "_", "-"), got ${JSON.stringify(token ?? '')}`,
    );
  }
  // Joining the auth service directly without a pin trusts whoever answers first.
  if (t.auth_server !== undefined && !(t.ca_pin && t.ca_pin.length > 0)) {
    report('teleport.ca_pin', 'is required when joining through auth_server');
  }
}

/**
 * Services that reach the cluster only through a reverse tunnel to the proxy.
 * Teleport's config reference: "When you have either the application service
 * or database service enabled, only tunneling through the proxy is supported".
 * Without proxy_server Teleport looks for a proxy in the same process, which
 * it finds only when auth_service and proxy_service both run there ("single
 * process mode"). Discovery-based features do not support joining the auth
 * service directly either (seed 003_*), but the Discovery Service works
 * beside a local auth service.
 */
function checkTunnelNeeds(t: TeleportSection | undefined, on: Enabled, report: Report): void {
  if (!t) return;
  const viaProxy = t.proxy_server !== undefined;
  const singleProcess = on.auth && on.proxy;
  for (const [service, running] of [
    ['app_service', on.app],
    ['db_service', on.db],
  ] as const) {
    if (!running || viaProxy || singleProcess) continue;
    report(
      `${service}.enabled`,
      on.proxy
        ? `${service} reaches the cluster only through a reverse tunnel (proxy_server), which Teleport forbids while proxy_service runs; run it on another host, or on a host that also runs auth_service`
        : on.auth
          ? `${service} reaches the cluster only through a reverse tunnel: beside auth_service it needs proxy_service in the same process too`
          : `${service} reaches the cluster only through a reverse tunnel: join through proxy_server, not auth_server`,
    );
  }
  if (on.discovery && !viaProxy && !on.auth) {
    report(
      'discovery_service.enabled',
      on.proxy
        ? 'discovery_service does not support joining the auth service directly, and a host running proxy_service cannot use proxy_server; run it on another host'
        : 'discovery_service does not support joining the auth service directly: join through proxy_server',
    );
  }
}

function checkLog(log: LogConfig, report: Report): void {
  if (!log.output) report('teleport.log.output', 'must not be empty');
  if (!(LOG_SEVERITIES as readonly string[]).includes(String(log.severity).toUpperCase())) {
    report('teleport.log.severity', `must be one of ${LOG_SEVERITIES.join(', ')}`);
  }
  if (log.format && !(LOG_FORMATS as readonly string[]).includes(log.format.output)) {
    report('teleport.log.format.output', `must be ${LOG_FORMATS.join(' or ')}`);
  }
}

function checkStorage(s: StorageConfig, report: Report): void {
  if (s.type === 'dynamodb') {
    if (!s.table_name) report('teleport.storage.table_name', 'is required for dynamodb storage');
    if (!isAwsRegion(s.region ?? ''))
      report('teleport.storage.region', `must be an AWS region like us-east-1, got ${JSON.stringify(s.region ?? '')}`);
  } else if (s.type === 'dir') {
    if (s.path !== undefined && !isAbsolutePath(s.path)) report('teleport.storage.path', 'must be an absolute path');
  } else {
    report('teleport.storage.type', `must be ${STORAGE_TYPES.join(' or ')}`);
  }
  (s.audit_events_uri ?? []).forEach((uri, i) => {
    if (!URI_RE.test(uri))
      report(`teleport.storage.audit_events_uri[${i}]`, `must be a URI like dynamodb://table, got ${JSON.stringify(uri)}`);
  });
  if (s.audit_sessions_uri !== undefined && !URI_RE.test(s.audit_sessions_uri)) {
    report('teleport.storage.audit_sessions_uri', `must be a URI like s3://bucket/records, got ${JSON.stringify(s.audit_sessions_uri)}`);
  }
}

function checkAddr(path: string, value: unknown, report: Report): void {
  const p = hostPortProblem(value);
  if (p) report(path, p);
}

function checkLabels(path: string, labels: Record<string, string> | undefined, report: Report): void {
  for (const key of Object.keys(labels ?? {})) {
    if (!labelKeyRe.test(key)) {
      report(`${path}.${key}`, 'label key may hold only letters, digits and . _ - / (up to 63, starting with a letter or digit)');
    }
  }
}

function checkAuth(a: AuthService, report: Report): void {
  checkAddr('auth_service.listen_addr', a.listen_addr, report);
  if (!a.cluster_name) report('auth_service.cluster_name', 'must not be empty');
  else if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(a.cluster_name)) {
    report('auth_service.cluster_name', 'may hold only letters, digits, ".", "_" and "-"');
  }
  (a.public_addr ?? []).forEach((addr, i) => checkAddr(`auth_service.public_addr[${i}]`, addr, report));
  if (a.proxy_listener_mode !== undefined && !(PROXY_LISTENER_MODES as readonly string[]).includes(a.proxy_listener_mode)) {
    report('auth_service.proxy_listener_mode', `must be ${PROXY_LISTENER_MODES.join(' or ')}`);
  }
  if (a.authentication) {
    const { type, second_factor: sf, webauthn } = a.authentication;
    if (type !== undefined && !(AUTH_TYPES as readonly string[]).includes(type))
      report('auth_service.authentication.type', `must be ${AUTH_TYPES.join(', ')}`);
    // Teleport 16 removed "off" and "optional": local users always have a second factor.
    if (sf !== undefined && !(SECOND_FACTORS as readonly string[]).includes(sf))
      report('auth_service.authentication.second_factor', `must be ${SECOND_FACTORS.join(', ')}`);
    if ((sf === 'on' || sf === 'webauthn') && !webauthn?.rp_id) {
      report('auth_service.authentication.webauthn.rp_id', `is required with second_factor ${sf}: the proxy's domain`);
    }
    if (webauthn && !isHostName(webauthn.rp_id ?? ''))
      report('auth_service.authentication.webauthn.rp_id', 'must be a domain name without scheme or port');
  }
  checkProxyProtocol('auth_service.proxy_protocol', a.proxy_protocol, report);
  if (a.authentication?.local_auth !== undefined && typeof a.authentication.local_auth !== 'boolean') {
    report('auth_service.authentication.local_auth', 'must be true or false');
  }
  if (a.keep_alive_interval !== undefined && !durationRe.test(a.keep_alive_interval)) {
    report('auth_service.keep_alive_interval', 'must be a duration like 1m or 5m');
  }
  if (a.keep_alive_count_max !== undefined && !isPositiveInt(a.keep_alive_count_max)) {
    report('auth_service.keep_alive_count_max', 'must be a positive integer');
  }
  if (a.license_file !== undefined && (!a.license_file || /\s/.test(a.license_file))) {
    report('auth_service.license_file', 'must be a path without whitespace');
  }
}

function checkCommands(path: string, commands: CommandLabel[] | undefined, report: Report): void {
  const seen = new Set<string>();
  (commands ?? []).forEach((c, i) => {
    const at = `${path}[${i}]`;
    if (!labelKeyRe.test(c.name ?? '')) report(`${at}.name`, 'must be a valid label key');
    else if (seen.has(c.name)) report(`${at}.name`, `names label ${JSON.stringify(c.name)} twice`);
    seen.add(c.name);
    if (!Array.isArray(c.command) || c.command.length === 0 || c.command.some((w) => !w)) {
      report(`${at}.command`, 'must be a non-empty list of non-empty words');
    }
    if (!durationRe.test(c.period ?? '')) report(`${at}.period`, 'must be a duration like 1m or 1h30m');
  });
}

function checkSsh(s: SshService, report: Report): void {
  checkAddr('ssh_service.listen_addr', s.listen_addr, report);
  checkLabels('ssh_service.labels', s.labels, report);
  checkCommands('ssh_service.commands', s.commands, report);
  // Teleport keeps static and dynamic labels in one map: the same key twice hides one of them.
  for (const c of s.commands ?? []) {
    if (s.labels && Object.prototype.hasOwnProperty.call(s.labels, c.name)) {
      report(`ssh_service.labels.${c.name}`, 'is also the name of a command label');
    }
  }
}

function checkProxy(p: ProxyService, report: Report): void {
  for (const key of [
    'listen_addr',
    'tunnel_listen_addr',
    'kube_listen_addr',
    'mysql_listen_addr',
    'postgres_listen_addr',
    'mongo_listen_addr',
  ] as const) {
    if (p[key] !== undefined) checkAddr(`proxy_service.${key}`, p[key], report);
  }
  checkAddr('proxy_service.web_listen_addr', p.web_listen_addr, report);
  if (!p.public_addr || p.public_addr.length === 0) report('proxy_service.public_addr', 'must list the host:port users reach the proxy at');
  (p.public_addr ?? []).forEach((addr, i) => checkAddr(`proxy_service.public_addr[${i}]`, addr, report));
  for (const key of ['ssh_public_addr', 'tunnel_public_addr'] as const) {
    if (p[key] !== undefined) checkAddr(`proxy_service.${key}`, p[key], report);
  }
  // lib/config/configuration.go: "<x>_listen_addr must be set when <x>_public_addr is set" (Postgres may share the web port).
  for (const proto of ['kube', 'mysql', 'postgres', 'mongo'] as const) {
    const publics = p[`${proto}_public_addr`];
    (publics ?? []).forEach((addr, i) => checkAddr(`proxy_service.${proto}_public_addr[${i}]`, addr, report));
    if (publics && publics.length > 0 && proto !== 'postgres' && p[`${proto}_listen_addr`] === undefined) {
      report(`proxy_service.${proto}_public_addr`, `needs ${proto}_listen_addr`);
    }
  }
  checkProxyProtocol('proxy_service.proxy_protocol', p.proxy_protocol, report);
  (p.https_keypairs ?? []).forEach((kp, i) => {
    if (!isAbsolutePath(kp.key_file)) report(`proxy_service.https_keypairs[${i}].key_file`, 'must be an absolute path');
    if (!isAbsolutePath(kp.cert_file)) report(`proxy_service.https_keypairs[${i}].cert_file`, 'must be an absolute path');
  });
}

function checkProxyProtocol(path: string, mode: unknown, report: Report): void {
  if (mode !== undefined && !(PROXY_PROTOCOL_MODES as readonly unknown[]).includes(mode)) report(path, 'must be on or off');
}

function checkKube(k: KubernetesService, report: Report): void {
  if (k.listen_addr !== undefined) checkAddr('kubernetes_service.listen_addr', k.listen_addr, report);
  // teleboot's rule: without a kubeconfig (teleboot writes none) the service serves only the clusters its selectors match.
  if (!Array.isArray(k.resources) || k.resources.length === 0) {
    report('kubernetes_service.resources', 'must list at least one label selector of the Kubernetes clusters to serve');
  }
  (k.resources ?? []).forEach((r, i) => {
    if (!r.labels || Object.keys(r.labels).length === 0)
      report(`kubernetes_service.resources[${i}].labels`, 'must not be empty; "*": "*" matches every cluster');
    else checkSelector(`kubernetes_service.resources[${i}].labels`, r.labels, report);
  });
  checkLabels('kubernetes_service.labels', k.labels, report);
}

/** Selector keys are label keys, or "*" for any. */
function checkSelector(path: string, labels: Record<string, string>, report: Report): void {
  for (const key of Object.keys(labels)) {
    if (key !== '*' && !labelKeyRe.test(key)) report(`${path}.${key}`, 'must be a label key or "*"');
  }
}

function checkNames(path: string, items: Array<{ name: string }>, what: string, report: Report): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    // lib/service/servicecfg: app and database names must be DNS-1035 labels.
    if (!DNS1035_RE.test(item.name ?? '')) {
      report(
        `${path}[${i}].name`,
        `${what} names are lower-case DNS labels: a letter, then letters, digits or "-", up to 63; got ${JSON.stringify(item.name ?? '')}`,
      );
    } else if (seen.has(item.name)) {
      report(`${path}[${i}].name`, `two ${what}s are named ${JSON.stringify(item.name)}`);
    }
    seen.add(item.name);
  });
}

function checkApps(s: AppService, report: Report): void {
  if (!Array.isArray(s.apps) || s.apps.length === 0) return report('app_service.apps', 'must list at least one app');
  checkNames('app_service.apps', s.apps, 'app', report);
  s.apps.forEach((a, i) => {
    const at = `app_service.apps[${i}]`;
    let url: URL | undefined;
    try {
      url = new URL(a.uri);
    } catch {
      url = undefined;
    }
    if (!url || !['http:', 'https:', 'tcp:'].includes(url.protocol) || !url.hostname) {
      report(`${at}.uri`, `must be an http://, https:// or tcp:// URL with a host, got ${JSON.stringify(a.uri ?? '')}`);
    }
    if (a.public_addr !== undefined) {
      // servicecfg.App: no port (apps share the proxy's web port), no IP (routing is by name).
      if (/:\d+$/.test(a.public_addr)) report(`${at}.public_addr`, "must not contain a port: apps are served on the proxy's web port");
      else if (isIpv4(a.public_addr) || a.public_addr.includes(':')) report(`${at}.public_addr`, 'must be a DNS name, not an IP address');
      else if (!isHostName(a.public_addr)) report(`${at}.public_addr`, 'must be a DNS name');
    }
    checkLabels(`${at}.labels`, a.labels, report);
  });
}

function checkDatabases(s: DbService, report: Report): void {
  if (!Array.isArray(s.databases) || s.databases.length === 0) return report('db_service.databases', 'must list at least one database');
  checkNames('db_service.databases', s.databases, 'database', report);
  const protocols: readonly string[] = DATABASE_PROTOCOLS;
  s.databases.forEach((d, i) => {
    const at = `db_service.databases[${i}]`;
    if (!protocols.includes(d.protocol)) report(`${at}.protocol`, `must be one of ${protocols.join(', ')}`);
    // host:port for most; some protocols take a URL (mongodb://..., https://...).
    if (hostPortProblem(d.uri) && !URI_RE.test(d.uri ?? ''))
      report(`${at}.uri`, `must be host:port or a URL, got ${JSON.stringify(d.uri ?? '')}`);
    if (d.aws?.region !== undefined && !isAwsRegion(d.aws.region))
      report(`${at}.aws.region`, `must be an AWS region like us-east-1, got ${JSON.stringify(d.aws.region)}`);
    if (d.aws?.redshift) {
      if (!/^[a-z][a-z0-9-]{0,62}$/.test(d.aws.redshift.cluster_id ?? ''))
        report(`${at}.aws.redshift.cluster_id`, 'must be a Redshift cluster identifier (lower-case letters, digits, "-")');
      // Redshift speaks the PostgreSQL wire protocol.
      if (d.protocol !== 'postgres') report(`${at}.protocol`, 'must be postgres for a Redshift cluster');
    }
    checkLabels(`${at}.static_labels`, d.static_labels, report);
  });
}

function checkDiscovery(s: DiscoveryService, report: Report): void {
  if (s.discovery_group !== undefined && !RESOURCE_NAME_RE.test(s.discovery_group)) {
    report('discovery_service.discovery_group', 'must be a name of letters, digits, ".", "_" and "-"');
  }
  // teleboot's rule: a Discovery Service with no matcher discovers nothing.
  if (!Array.isArray(s.aws) || s.aws.length === 0) return report('discovery_service.aws', 'must list at least one AWS matcher');
  const types: readonly string[] = DISCOVERY_AWS_TYPES;
  s.aws.forEach((m, i) => {
    const at = `discovery_service.aws[${i}]`;
    if (!Array.isArray(m.types) || m.types.length === 0) report(`${at}.types`, `must list resource types: ${types.join(', ')}`);
    (m.types ?? []).forEach((t, j) => {
      if (!types.includes(t)) report(`${at}.types[${j}]`, `must be one of ${types.join(', ')}`);
    });
    if (!Array.isArray(m.regions) || m.regions.length === 0) report(`${at}.regions`, 'must list AWS regions, or "*" for all of them');
    (m.regions ?? []).forEach((r, j) => {
      if (r === '*' ? m.regions.length > 1 : !isAwsRegion(r)) {
        report(
          `${at}.regions[${j}]`,
          r === '*'
            ? '"*" already means every region; list it alone'
            : `must be an AWS region like us-east-1, or "*", got ${JSON.stringify(r)}`,
        );
      }
    });
    // AWS tag keys may hold ":" and spaces ("aws:cloudformation:stack-name"); only empty ones are refused.
    for (const key of Object.keys(m.tags ?? {})) if (!key) report(`${at}.tags`, 'tag keys must not be empty');
    const ec2 = (m.types ?? []).includes('ec2');
    if (m.ssm && !ec2) report(`${at}.ssm`, 'only EC2 discovery installs Teleport with an SSM document');
    if (m.ssm && !RESOURCE_NAME_RE.test(m.ssm.document_name ?? '')) report(`${at}.ssm.document_name`, 'must be an SSM document name');
    if (m.install && !ec2) report(`${at}.install`, 'only EC2 discovery installs Teleport on what it finds');
    if (m.install && !RESOURCE_NAME_RE.test(m.install.join_params?.token_name ?? ''))
      report(`${at}.install.join_params.token_name`, 'must name an IAM join token');
    // lib/config/fileconf.go: "only IAM joining is supported for EC2 auto-discovery".
    if (m.install && m.install.join_params?.method !== 'iam')
      report(`${at}.install.join_params.method`, 'must be iam: EC2 discovery joins instances with an IAM token');
    if (m.assume_role_arn !== undefined && !/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/.test(m.assume_role_arn)) {
      report(`${at}.assume_role_arn`, 'must be an IAM role ARN like arn:aws:iam::123456789012:role/name');
    }
  });
}
