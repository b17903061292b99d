// teleport.yaml as a pure function of what an instance was assigned, the
// cluster settings and facts about the instance. No I/O: the agent fetches
// what requirementsOf() asks for, renders, and writes the result itself.

import { Document, Scalar, parse, visit } from 'yaml';
import {
  ROLE_PRESETS,
  SERVICE_ROLES,
  hostOf,
  roleNameOf,
  type Assignment,
  type ClusterSettings,
  type ServiceRole,
} from '../../common/model';
import {
  KEY_ORDER,
  TELEPORT_CONFIG_VERSION,
  TELEPORT_PORTS,
  hostPortProblem,
  joinHostPort,
  validateTeleportConfig,
  type AuthServiceSection,
  type ConfigProblem,
  type ProxyServiceSection,
  type SshServiceSection,
  type StorageConfig,
  type TeleportConfig,
  type TeleportSection,
} from './teleport-config';

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
    /** Enterprise license written from SSM; auth_service.license_file when set. */
    licenseFile?: string;
  };
  /** "sha256:..." from SSM; may be empty for an auth server. */
  caPins: string[];
  /** "127.0.0.1:3000" */
  diagAddr: string;
}

/** What the agent must fetch before rendering, for an assignment. */
export interface Requirements {
  joinTokenRole?: 'node' | 'proxy';
  caPin: boolean;
  proxyCertificate: boolean;
}

/** The input cannot become a config Teleport accepts; `problems` says why, each naming its setting. */
export class RenderError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(
      'cannot render teleport.yaml:\n' +
        problems
          .map((p) => `  - ${p.path || '(config)'}${p.setting ? ` (from ${p.setting})` : ''}: ${p.message}`)
          .join('\n'),
    );
    this.name = 'RenderError';
  }
}

const ALL_INTERFACES = '0.0.0.0';
const listen = (port: number): string => `${ALL_INTERFACES}:${port}`;

// ---- roles ---------------------------------------------------------------------

/** Problems with the assigned roles: unknown names, duplicates, or a set that is no preset. */
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
  // Only presets are supported: e.g. proxy+node without auth would need one
  // join token valid for two roles, which teleboot does not publish.
  if (!Object.prototype.hasOwnProperty.call(ROLE_PRESETS, roleNameOf(roles as string[]))) {
    return [at('assignment.roles', `${roles.join('+')} is not a supported combination; use one of ${Object.keys(ROLE_PRESETS).join(', ')}`)];
  }
  return [];
}

function checkedRoles(assignment: Assignment): ReadonlySet<ServiceRole> {
  const problems = assignmentProblems(assignment);
  if (problems.length > 0) throw new RenderError(problems);
  return new Set(assignment.roles);
}

/** What the agent must fetch before rendering; throws RenderError for an unknown role. */
export function requirementsOf(assignment: Assignment): Requirements {
  const roles = checkedRoles(assignment);
  const proxyCertificate = roles.has('proxy');
  // The auth service is its own trust root: nothing to join, nothing to pin.
  if (roles.has('auth')) return { caPin: false, proxyCertificate };
  return { joinTokenRole: roles.has('proxy') ? 'proxy' : 'node', caPin: true, proxyCertificate };
}

// ---- rendering ------------------------------------------------------------------

/** The config for `input` as a typed object; throws RenderError only for unknown roles. */
export function renderTeleportConfig(input: RenderInput): TeleportConfig {
  const roles = checkedRoles(input.assignment);
  return {
    version: TELEPORT_CONFIG_VERSION,
    teleport: teleportSection(input, roles),
    auth_service: authService(input, roles),
    ssh_service: sshService(input, roles),
    proxy_service: proxyService(input, roles),
  };
}

function teleportSection(input: RenderInput, roles: ReadonlySet<ServiceRole>): TeleportSection {
  const section: TeleportSection = {
    nodename: input.assignment.nodename || input.instance.hostname,
    data_dir: input.files.dataDir,
  };
  if (!roles.has('auth')) {
    // Nodes and proxies join through the auth service (seed 001_*), with the
    // token kept in a file so it never lands in teleport.yaml.
    section.join_params = { token_name: input.files.joinTokenFile, method: 'token' };
    section.auth_server = input.cluster.authAddr;
    section.ca_pin = [...input.caPins];
  }
  section.diag_addr = input.diagAddr;
  // Under systemd stderr goes to the journal.
  section.log = { output: 'stderr', severity: 'INFO', format: { output: 'text' } };
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
  return {
    enabled: true,
    listen_addr: listen(TELEPORT_PORTS.auth),
    cluster_name: input.cluster.clusterName,
    // The name nodes dial goes into the auth server's certificate.
    ...(input.cluster.authAddr ? { public_addr: [input.cluster.authAddr] } : {}),
    ...(input.files.licenseFile ? { license_file: input.files.licenseFile } : {}),
  };
}

function sshService(input: RenderInput, roles: ReadonlySet<ServiceRole>): SshServiceSection {
  if (!roles.has('node')) return { enabled: false };
  const labels = { ...input.assignment.labels };
  return {
    enabled: true,
    listen_addr: listen(TELEPORT_PORTS.ssh),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
  };
}

function proxyService(input: RenderInput, roles: ReadonlySet<ServiceRole>): ProxyServiceSection {
  if (!roles.has('proxy')) return { enabled: false };
  const publicAddr = input.cluster.proxyPublicAddr;
  // Separate listeners (not TLS routing): advertise the SSH and tunnel ports
  // on the public host, so clients and nodes behind NAT find them.
  const host = hostPortProblem(publicAddr) ? undefined : hostOf(publicAddr);
  return {
    enabled: true,
    listen_addr: listen(TELEPORT_PORTS.proxySsh),
    tunnel_listen_addr: listen(TELEPORT_PORTS.proxyTunnel),
    web_listen_addr: listen(TELEPORT_PORTS.proxyWeb),
    public_addr: [publicAddr],
    ...(host
      ? {
          ssh_public_addr: joinHostPort(host, TELEPORT_PORTS.proxySsh),
          tunnel_public_addr: joinHostPort(host, TELEPORT_PORTS.proxyTunnel),
        }
      : {}),
    https_keypairs: [{ key_file: input.files.keyFile, cert_file: input.files.certFile }],
  };
}

// ---- validation with the teleboot setting behind each problem ---------------------

const SETTING_OF: ReadonlyArray<[prefix: string, setting: string]> = [
  ['teleport.nodename', 'assignment.nodename or instance.hostname'],
  ['teleport.data_dir', 'files.dataDir'],
  ['teleport.join_params.token_name', 'files.joinTokenFile'],
  ['teleport.auth_server', 'cluster.authAddr'],
  ['teleport.ca_pin', 'caPins'],
  ['teleport.diag_addr', 'diagAddr'],
  ['teleport.storage.table_name', 'cluster.storage.tableName'],
  ['teleport.storage.region', 'cluster.storage.region or cluster.region'],
  ['teleport.storage.audit_events_uri', 'cluster.storage.auditEventsUri'],
  ['teleport.storage.audit_sessions_uri', 'cluster.storage.auditSessionsUri or cluster.s3Bucket'],
  ['auth_service.cluster_name', 'cluster.clusterName'],
  ['auth_service.public_addr', 'cluster.authAddr'],
  ['auth_service.license_file', 'files.licenseFile'],
  ['ssh_service.labels', 'assignment.labels'],
  ['proxy_service.public_addr', 'cluster.proxyPublicAddr'],
  ['proxy_service.ssh_public_addr', 'cluster.proxyPublicAddr'],
  ['proxy_service.tunnel_public_addr', 'cluster.proxyPublicAddr'],
  ['proxy_service.https_keypairs', 'files.certFile and files.keyFile'],
];

function withSetting(problem: ConfigProblem): ConfigProblem {
  const hit = SETTING_OF.find(([prefix]) => problem.path === prefix || problem.path.startsWith(prefix + '.') || problem.path.startsWith(prefix + '['));
  if (!hit) return problem;
  let setting = hit[1];
  if (problem.path.endsWith('.cert_file')) setting = 'files.certFile';
  if (problem.path.endsWith('.key_file')) setting = 'files.keyFile';
  return { ...problem, setting };
}

/** Render, validate and serialize; throws RenderError listing every problem. */
export function renderTeleportYaml(input: RenderInput): string {
  const cfg = renderTeleportConfig(input);
  const problems = validateTeleportConfig(cfg).map(withSetting);
  if (problems.length > 0) throw new RenderError(problems);
  return teleportConfigToYaml(cfg);
}

// ---- YAML --------------------------------------------------------------------------

export const GENERATED_HEADER = [
  ' Generated by teleboot from this instance\'s assignment and the cluster settings.',
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

/** Whether a YAML 1.1 reader takes `text`, written plain, for this very string. */
function readsBackAsItself(text: string): boolean {
  try {
    return parse(text, { version: '1.1' }) === text;
  } catch {
    return false;
  }
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
    Object.defineProperty(out, k, { value: ordered(child, path ? `${path}.${k}` : k), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
