// A typed model of the parts of Teleport's config file (version v3) that
// teleboot writes, and the checks that a model is one Teleport will accept.
// Keys are snake_case exactly as Teleport reads them (lib/config/fileconf.go);
// Teleport parses the file strictly, so an unknown key stops it from starting.

import { LABEL_KEY_PATTERN } from '../../common/model';
import { DURATION_PATTERN } from '../../common/duration';

export const TELEPORT_CONFIG_VERSION = 'v3';

/** Ports from the networking reference (seed 003_*). */
export const TELEPORT_PORTS = {
  auth: 3025,
  ssh: 3022,
  proxySsh: 3023,
  proxyTunnel: 3024,
  proxyWeb: 3080,
} as const;

/** Join methods that fit an EC2 instance; "token" is what teleboot uses. */
export const JOIN_METHODS = ['token', 'ec2', 'iam'] as const;
export type JoinMethod = (typeof JOIN_METHODS)[number];

export const LOG_SEVERITIES = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export type LogSeverity = (typeof LOG_SEVERITIES)[number];

export interface TeleportConfig {
  version: typeof TELEPORT_CONFIG_VERSION;
  teleport: TeleportSection;
  auth_service: AuthServiceSection;
  ssh_service: SshServiceSection;
  proxy_service: ProxyServiceSection;
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
  /** SPKI hashes ("sha256:<hex>") of the cluster CA, checked when joining. */
  ca_pin?: string[];
  diag_addr?: string;
  log?: LogConfig;
  storage?: StorageConfig;
}

export interface JoinParams {
  /** The token, or an absolute path to a file holding it (Teleport reads the file). */
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
 * service teleboot does not want is written out as `enabled: false`.
 */
export interface DisabledService {
  enabled: false;
}

export interface AuthService {
  enabled: true;
  listen_addr: string;
  cluster_name: string;
  public_addr?: string[];
  proxy_listener_mode?: 'separate' | 'multiplex';
  authentication?: { type: string; second_factor?: string };
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
  listen_addr: string;
  tunnel_listen_addr: string;
  web_listen_addr: string;
  public_addr: string[];
  ssh_public_addr?: string;
  tunnel_public_addr?: string;
  https_keypairs: KeyPair[];
}

export type AuthServiceSection = DisabledService | AuthService;
export type SshServiceSection = DisabledService | SshService;
export type ProxyServiceSection = DisabledService | ProxyService;

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
  '': ['version', 'teleport', 'auth_service', 'ssh_service', 'proxy_service'],
  teleport: ['nodename', 'data_dir', 'join_params', 'auth_server', 'proxy_server', 'ca_pin', 'diag_addr', 'log', 'storage'],
  'teleport.join_params': ['token_name', 'method'],
  'teleport.log': ['output', 'severity', 'format'],
  'teleport.storage': ['type', 'path', 'region', 'table_name', 'audit_events_uri', 'audit_sessions_uri'],
  auth_service: ['enabled', 'listen_addr', 'cluster_name', 'public_addr', 'proxy_listener_mode', 'authentication', 'license_file'],
  'auth_service.authentication': ['type', 'second_factor'],
  ssh_service: ['enabled', 'listen_addr', 'labels', 'commands'],
  'ssh_service.commands[]': ['name', 'command', 'period'],
  proxy_service: [
    'enabled', 'listen_addr', 'tunnel_listen_addr', 'web_listen_addr',
    'public_addr', 'ssh_public_addr', 'tunnel_public_addr', 'https_keypairs',
  ],
  'proxy_service.https_keypairs[]': ['key_file', 'cert_file'],
};

// ---- value checks ----------------------------------------------------------

const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const IPV6_RE = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;
const labelKeyRe = new RegExp(LABEL_KEY_PATTERN);
const durationRe = new RegExp(DURATION_PATTERN);
const CA_PIN_RE = /^sha256:[0-9a-fA-F]{64}$/;
// Teleport also takes bare "stdout://" for events, hence an empty rest.
const URI_RE = /^[a-z][a-z0-9+.-]*:\/\/\S*$/;
const AWS_REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
// Characters a YAML 1.1 reader (Teleport uses go-yaml) treats as line breaks
// or refuses, plus every other control character. Label values may hold
// newlines and tabs; nothing else may.
const FORBIDDEN_ANYWHERE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;
const FORBIDDEN_IN_SETTINGS = /[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;

/** Why `addr` is not a usable "host:port" (hostname, IPv4 or [IPv6]), or undefined. */
export function hostPortProblem(addr: unknown): string | undefined {
  if (typeof addr !== 'string' || addr === '') return 'must be host:port, got nothing';
  const bracketed = /^\[([^\]]*)\]:(\d{1,5})$/.exec(addr);
  const plain = /^([^:\[\]]*):(\d{1,5})$/.exec(addr);
  const m = bracketed ?? plain;
  if (!m) return `must be host:port, got ${JSON.stringify(addr)}`;
  const hostOk = bracketed ? IPV6_RE.test(m[1]) : HOST_RE.test(m[1]);
  if (!hostOk) return `must be host:port with a valid host, got ${JSON.stringify(addr)}`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port must be 1-65535, got ${JSON.stringify(addr)}`;
  return undefined;
}

/** "host:port" with IPv6 hosts put back in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function isAbsolutePath(p: unknown): p is string {
  return typeof p === 'string' && p.startsWith('/') && !/[\s]/.test(p);
}

// ---- whole-config validation -------------------------------------------------

type Report = (path: string, message: string) => void;

/** Every reason Teleport (or teleboot's own rules) would refuse `cfg`; [] when valid. */
export function validateTeleportConfig(cfg: TeleportConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const report: Report = (path, message) => problems.push({ path, message });

  if (cfg.version !== TELEPORT_CONFIG_VERSION) report('version', `must be ${TELEPORT_CONFIG_VERSION}`);
  checkStrings(cfg, '', report);
  const services = checkServiceToggles(cfg, report);
  checkTeleportSection(cfg.teleport, services.auth, services.proxy, report);
  if (cfg.auth_service?.enabled === true) checkAuth(cfg.auth_service, report);
  if (cfg.ssh_service?.enabled === true) checkSsh(cfg.ssh_service, report);
  if (cfg.proxy_service?.enabled === true) checkProxy(cfg.proxy_service, report);
  return problems;
}

/** Rejects control characters anywhere; newlines only inside label values. */
function checkStrings(value: unknown, path: string, report: Report): void {
  if (typeof value === 'string') {
    const inLabel = path.startsWith('ssh_service.labels.');
    if ((inLabel ? FORBIDDEN_ANYWHERE : FORBIDDEN_IN_SETTINGS).test(value)) {
      report(path, inLabel ? 'must not contain control characters other than newline and tab' : 'must not contain control characters or line breaks');
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkStrings(v, `${path}[${i}]`, report));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) checkStrings(v, path ? `${path}.${k}` : k, report);
  }
}

function checkServiceToggles(cfg: TeleportConfig, report: Report): { auth: boolean; proxy: boolean } {
  const enabled: Record<string, boolean> = {};
  for (const name of ['auth_service', 'ssh_service', 'proxy_service'] as const) {
    const flag = (cfg[name] as { enabled?: unknown } | undefined)?.enabled;
    // Teleport starts a service whose section is missing, so "absent" is not "off".
    if (typeof flag !== 'boolean') report(`${name}.enabled`, 'must be set to true or false explicitly');
    enabled[name] = flag === true;
  }
  if (!Object.values(enabled).some(Boolean)) report('*_service.enabled', 'at least one of auth_service, ssh_service, proxy_service must be enabled');
  return { auth: enabled.auth_service, proxy: enabled.proxy_service };
}

function checkTeleportSection(t: TeleportSection | undefined, authRuns: boolean, proxyRuns: boolean, report: Report): void {
  if (!t) return report('teleport', 'is required');
  if (!t.nodename) report('teleport.nodename', 'must not be empty');
  if (!isAbsolutePath(t.data_dir)) report('teleport.data_dir', 'must be an absolute path');
  if (t.diag_addr !== undefined) {
    const p = hostPortProblem(t.diag_addr);
    if (p) report('teleport.diag_addr', p);
  }
  if (t.auth_server !== undefined && t.proxy_server !== undefined) {
    report('teleport.proxy_server', 'only one of auth_server and proxy_server may be set');
  }
  if (t.proxy_server !== undefined && proxyRuns) {
    report('teleport.proxy_server', 'cannot be set when proxy_service is enabled');
  }
  for (const key of ['auth_server', 'proxy_server'] as const) {
    if (t[key] === undefined) continue;
    const p = hostPortProblem(t[key]);
    if (p) report(`teleport.${key}`, p);
  }
  (t.ca_pin ?? []).forEach((pin, i) => {
    if (!CA_PIN_RE.test(pin)) report(`teleport.ca_pin[${i}]`, 'must be "sha256:" followed by 64 hex digits');
  });
  if (!authRuns) checkJoin(t, report);
  if (t.log) checkLog(t.log, report);
  if (t.storage) checkStorage(t.storage, report);
}

/** A host without the auth service must know where and how to join. */
function checkJoin(t: TeleportSection, report: Report): void {
  if (t.auth_server === undefined && t.proxy_server === undefined) {
    report('teleport.auth_server', 'must be host:port of the auth service to join through, got nothing');
  }
  if (!t.join_params) return report('teleport.join_params', 'is required to join the cluster');
  // An absolute token_name is read as a file by Teleport, which keeps the
  // secret itself out of teleport.yaml; a relative one would be sent as the token.
  if (!isAbsolutePath(t.join_params.token_name)) {
    report('teleport.join_params.token_name', 'must be the absolute path of the join token file');
  }
  if (!(JOIN_METHODS as readonly string[]).includes(t.join_params.method)) {
    report('teleport.join_params.method', `must be one of ${JOIN_METHODS.join(', ')}`);
  }
  // Joining the auth service directly without a pin trusts whoever answers first.
  if (t.auth_server !== undefined && !(t.ca_pin && t.ca_pin.length > 0)) {
    report('teleport.ca_pin', 'is required when joining through auth_server');
  }
}

function checkLog(log: LogConfig, report: Report): void {
  if (!log.output) report('teleport.log.output', 'must not be empty');
  if (!(LOG_SEVERITIES as readonly string[]).includes(String(log.severity).toUpperCase())) {
    report('teleport.log.severity', `must be one of ${LOG_SEVERITIES.join(', ')}`);
  }
  if (log.format && !['text', 'json'].includes(log.format.output)) {
    report('teleport.log.format.output', 'must be text or json');
  }
}

function checkStorage(s: StorageConfig, report: Report): void {
  if (s.type === 'dynamodb') {
    if (!s.table_name) report('teleport.storage.table_name', 'is required for dynamodb storage');
    if (!AWS_REGION_RE.test(s.region ?? '')) report('teleport.storage.region', `must be an AWS region like us-east-1, got ${JSON.stringify(s.region ?? '')}`);
  } else if (s.type === 'dir') {
    if (s.path !== undefined && !isAbsolutePath(s.path)) report('teleport.storage.path', 'must be an absolute path');
  } else {
    report('teleport.storage.type', 'must be dir or dynamodb');
  }
  (s.audit_events_uri ?? []).forEach((uri, i) => {
    if (!URI_RE.test(uri)) report(`teleport.storage.audit_events_uri[${i}]`, `must be a URI like dynamodb://table, got ${JSON.stringify(uri)}`);
  });
  if (s.audit_sessions_uri !== undefined && !URI_RE.test(s.audit_sessions_uri)) {
    report('teleport.storage.audit_sessions_uri', `must be a URI like s3://bucket/records, got ${JSON.stringify(s.audit_sessions_uri)}`);
  }
}

function checkListen(section: string, values: Record<string, unknown>, keys: readonly string[], report: Report): void {
  for (const key of keys) {
    const p = hostPortProblem(values[key]);
    if (p) report(`${section}.${key}`, p);
  }
}

function checkAuth(a: AuthService, report: Report): void {
  checkListen('auth_service', { ...a }, ['listen_addr'], report);
  if (!a.cluster_name) report('auth_service.cluster_name', 'must not be empty');
  else if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(a.cluster_name)) {
    report('auth_service.cluster_name', 'may hold only letters, digits, ".", "_" and "-"');
  }
  (a.public_addr ?? []).forEach((addr, i) => {
    const p = hostPortProblem(addr);
    if (p) report(`auth_service.public_addr[${i}]`, p);
  });
  if (a.license_file !== undefined && (!a.license_file || /\s/.test(a.license_file))) {
    report('auth_service.license_file', 'must be a path without whitespace');
  }
}

function checkSsh(s: SshService, report: Report): void {
  checkListen('ssh_service', { ...s }, ['listen_addr'], report);
  for (const key of Object.keys(s.labels ?? {})) {
    if (!labelKeyRe.test(key)) {
      report(`ssh_service.labels.${key}`, 'label key may hold only letters, digits and . _ - / (up to 63, starting with a letter or digit)');
    }
  }
  (s.commands ?? []).forEach((c, i) => {
    const at = `ssh_service.commands[${i}]`;
    if (!labelKeyRe.test(c.name ?? '')) report(`${at}.name`, 'must be a valid label key');
    if (!Array.isArray(c.command) || c.command.length === 0 || c.command.some((w) => !w)) {
      report(`${at}.command`, 'must be a non-empty list of non-empty words');
    }
    if (!durationRe.test(c.period ?? '')) report(`${at}.period`, 'must be a duration like 1m or 1h30m');
  });
}

function checkProxy(p: ProxyService, report: Report): void {
  checkListen('proxy_service', { ...p }, ['listen_addr', 'tunnel_listen_addr', 'web_listen_addr'], report);
  if (!p.public_addr || p.public_addr.length === 0) report('proxy_service.public_addr', 'must list the host:port users reach the proxy at');
  (p.public_addr ?? []).forEach((addr, i) => {
    const problem = hostPortProblem(addr);
    if (problem) report(`proxy_service.public_addr[${i}]`, problem);
  });
  for (const key of ['ssh_public_addr', 'tunnel_public_addr'] as const) {
    if (p[key] === undefined) continue;
    const problem = hostPortProblem(p[key]);
    if (problem) report(`proxy_service.${key}`, problem);
  }
  // Without a key pair Teleport serves a self-signed certificate that no browser trusts.
  if (!p.https_keypairs || p.https_keypairs.length === 0) report('proxy_service.https_keypairs', 'must name the certificate and key files');
  (p.https_keypairs ?? []).forEach((kp, i) => {
    if (!isAbsolutePath(kp.key_file)) report(`proxy_service.https_keypairs[${i}].key_file`, 'must be an absolute path');
    if (!isAbsolutePath(kp.cert_file)) report(`proxy_service.https_keypairs[${i}].cert_file`, 'must be an absolute path');
  });
}
