// teleport.yaml fragments: the escape for what teleboot does not model yet
// (Teleport grows faster than any generator; Teleport's issue #16752 asks the
// AMI for the same). A fragment of the cluster, then one of the assignment,
// is merged into the rendered config: objects key by key, anything else
// replaces. Keys teleboot knows are checked as usual, keys it does not know
// pass with a warning, and a key whose value teleboot manages (the join
// token, the CA pin, storage, listeners, ...) is refused with the setting to
// use instead, so a fragment can never undo what the agent relies on.
import { DURATION_PATTERN } from '../duration';
import type { ConfigFragment, RenderWarning } from './layout-settings';
import type { ConfigProblem } from './teleport-config';

export type FragmentSource = 'cluster.configFragment' | 'assignment.configFragment';

/** Largest fragment accepted, as JSON: a fragment is a few keys, not a second config file. */
export const MAX_FRAGMENT_BYTES = 16 * 1024;
const MAX_DEPTH = 12;

/** Values teleboot writes itself, each with the setting that controls it. */
const MANAGED: Readonly<Record<string, string>> = {
  version: 'none: teleboot writes config version v3',
  'teleport.nodename': 'assignment.nodename',
  'teleport.data_dir': "the agent's teleport.data_dir (agent.yaml)",
  'teleport.join_params': 'cluster.joinMethod (the token itself comes from SSM)',
  'teleport.auth_server': 'cluster.authAddr and joinVia',
  'teleport.proxy_server': 'cluster.joinVia and proxyPublicAddr',
  'teleport.ca_pin': 'none: the CA pin comes from SSM {ssmPrefix}/{cluster}/ca-pin-hash, published by the auth server',
  'teleport.advertise_ip': 'assignment.advertiseIp',
  'teleport.diag_addr': "the agent's diagnostic address (agent.yaml); teleboot waits on it for readiness",
  'teleport.connection_limits': 'cluster.maxConnections and maxUsers',
  'teleport.log': 'cluster.logSeverity and logFormat',
  'teleport.cache': 'cluster.cache',
  'teleport.storage': 'cluster.storage',
  'auth_service.enabled': 'assignment.roles',
  'auth_service.listen_addr': 'none: auth servers listen on 3025; cluster.authAddr is where others reach them',
  'auth_service.cluster_name': 'cluster.clusterName',
  'auth_service.public_addr': 'cluster.authAddr',
  'auth_service.proxy_listener_mode': 'cluster.proxyListenerMode',
  'auth_service.authentication.type': 'cluster.authType',
  'auth_service.authentication.second_factor': 'cluster.secondFactor',
  'auth_service.authentication.webauthn': "cluster.proxyPublicAddr (WebAuthn's rp_id is the proxy's domain)",
  'auth_service.proxy_protocol': 'cluster.proxyProtocol',
  'auth_service.keep_alive_interval': 'cluster.keepAliveInterval',
  'auth_service.keep_alive_count_max': 'cluster.keepAliveCountMax',
  'auth_service.license_file': 'cluster.enterprise (the license comes from SSM)',
  'ssh_service.enabled': 'assignment.roles',
  'ssh_service.listen_addr': 'none: nodes listen on 3022',
  'ssh_service.labels': 'assignment.labels',
  'ssh_service.commands': 'assignment.commandLabels',
  'proxy_service.enabled': 'assignment.roles',
  'proxy_service.listen_addr': 'cluster.proxyListenerMode',
  'proxy_service.tunnel_listen_addr': 'cluster.proxyListenerMode',
  'proxy_service.web_listen_addr': 'cluster.proxyWebListenPort',
  'proxy_service.public_addr': 'cluster.proxyPublicAddr',
  'proxy_service.ssh_public_addr': 'cluster.sshPublicAddr',
  'proxy_service.tunnel_public_addr': 'cluster.tunnelPublicAddr',
  'proxy_service.kube_listen_addr': 'cluster.kubePublicAddr',
  'proxy_service.kube_public_addr': 'cluster.kubePublicAddr',
  'proxy_service.mysql_listen_addr': 'cluster.mysqlPublicAddr',
  'proxy_service.mysql_public_addr': 'cluster.mysqlPublicAddr',
  'proxy_service.postgres_listen_addr': 'cluster.postgresPublicAddr',
  'proxy_service.postgres_public_addr': 'cluster.postgresPublicAddr',
  'proxy_service.mongo_listen_addr': 'cluster.mongoPublicAddr',
  'proxy_service.mongo_public_addr': 'cluster.mongoPublicAddr',
  'proxy_service.https_keypairs': 'cluster.tlsSource (the certificate comes from S3 live/{domain}/)',
  'proxy_service.trust_x_forwarded_for': 'cluster.tlsSource',
  'proxy_service.proxy_protocol': 'cluster.proxyProtocol',
  'kubernetes_service.enabled': 'assignment.roles',
  'kubernetes_service.listen_addr': 'assignment.joinVia',
  'kubernetes_service.resources': 'assignment.kube.resources',
  'kubernetes_service.labels': 'assignment.kube.labels',
  'app_service.enabled': 'assignment.roles',
  'app_service.apps': 'assignment.apps',
  'db_service.enabled': 'assignment.roles',
  'db_service.databases': 'assignment.databases',
  'discovery_service.enabled': 'assignment.roles',
  'discovery_service.aws': 'assignment.discovery.aws',
  'discovery_service.discovery_group': 'assignment.discovery.group',
};

type Check = (value: unknown) => string | undefined;
const oneOf =
  (...values: string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v) ? undefined : `must be one of ${values.join(', ')}`;
const bool: Check = (v) => (typeof v === 'boolean' ? undefined : 'must be true or false');
const durationRe = new RegExp(DURATION_PATTERN);
const duration: Check = (v) => (typeof v === 'string' && durationRe.test(v) ? undefined : 'must be a duration like 30m or 1h');
const text: Check = (v) => (typeof v === 'string' ? undefined : 'must be text');
const name: Check = (v) => (typeof v === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(v) ? undefined : 'must be a resource name');
const selectors: Check = (v) =>
  Array.isArray(v) && v.every((r) => isObject(r) && isObject(r.labels) && Object.values(r.labels).every((x) => typeof x === 'string'))
    ? undefined
    : 'must be a list of {labels: {key: value}} selectors';

/**
 * Keys of Teleport's config reference that teleboot does not set but knows
 * how to check. A fragment may set them; a wrong value is refused like any
 * other setting.
 */
const KNOWN: Readonly<Record<string, Check>> = {
  'auth_service.session_recording': oneOf('node', 'node-sync', 'proxy', 'proxy-sync', 'off'),
  'auth_service.message_of_the_day': text,
  'auth_service.disconnect_expired_cert': bool,
  'auth_service.client_idle_timeout': duration,
  'auth_service.routing_strategy': oneOf('unambiguous_match', 'most_recent'),
  'auth_service.authentication.connector_name': name,
  'auth_service.authentication.local_auth': bool,
  'ssh_service.enhanced_recording.enabled': bool,
  'ssh_service.pam.enabled': bool,
  'ssh_service.permit_user_env': bool,
  'app_service.resources': selectors,
  'db_service.resources': selectors,
};

/** Sections whose keys teleboot knows one by one: a key inside that is neither managed nor known draws a warning. */
const SECTIONS = new Set(['', ...[...Object.keys(MANAGED), ...Object.keys(KNOWN)].flatMap(ancestors)]);

/** Service sections: a fragment of the cluster applies to a service only where it runs. */
const SERVICES = ['auth_service', 'ssh_service', 'proxy_service', 'kubernetes_service', 'app_service', 'db_service', 'discovery_service'];

function ancestors(path: string): string[] {
  const parts = path.split('.');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export interface FragmentContext {
  /** With FIPS, local authentication stays off: Teleport refuses to start otherwise. */
  fips: boolean;
}

export interface MergeResult {
  problems: ConfigProblem[];
  warnings: RenderWarning[];
}

/** An own entry of a table: a key such as "__proto__" or "constructor" is no entry. */
const entry = <T>(table: Readonly<Record<string, T>>, path: string): T | undefined =>
  Object.hasOwn(table, path) ? table[path] : undefined;

const managedSetting = (path: string, ctx: FragmentContext): string | undefined =>
  path === 'auth_service.authentication.local_auth' && ctx.fips ? 'cluster.fips (FIPS mode needs local_auth false)' : entry(MANAGED, path);

/** The managed key at or below `path`, when a value at `path` would replace it. */
function managedBelow(path: string, ctx: FragmentContext): [string, string] | undefined {
  const own = managedSetting(path, ctx);
  if (own) return [path, own];
  const prefix = path === '' ? '' : `${path}.`;
  const below = Object.keys(MANAGED).find((k) => k.startsWith(prefix));
  return below ? [below, MANAGED[below]] : undefined;
}

/** A copy of `value` with own enumerable keys only (a key such as "__proto__" stays an ordinary key). */
function plainCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plainCopy);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) define(out, k, plainCopy(v));
  return out;
}

function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** An unknown value over what an earlier fragment wrote there: objects key by key, anything else replaces. */
function mergedUnknown(existing: unknown, value: unknown): unknown {
  if (!isObject(existing) || !isObject(value)) return plainCopy(value);
  const out = plainCopy(existing) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) define(out, k, mergedUnknown(out[k], v));
  return out;
}

/** Why a fragment's shape is unusable (not its keys): size, depth, nulls, key text. */
function shapeProblems(fragment: unknown, source: FragmentSource): ConfigProblem[] {
  if (!isObject(fragment))
    return [
      {
        path: source,
        setting: source,
        message: 'must be an object of teleport.yaml keys, like {"auth_service": {"session_recording": "node"}}',
      },
    ];
  const size = Buffer.byteLength(JSON.stringify(fragment));
  if (size > MAX_FRAGMENT_BYTES)
    return [{ path: source, setting: source, message: `is ${size} bytes of JSON; at most ${MAX_FRAGMENT_BYTES} are accepted` }];
  const problems: ConfigProblem[] = [];
  const walk = (v: unknown, path: string, depth: number) => {
    if (depth > MAX_DEPTH) return problems.push({ path, setting: source, message: `nests deeper than ${MAX_DEPTH} levels` });
    if (v === null || v === undefined)
      return problems.push({ path, setting: source, message: 'is null: a fragment sets values, it cannot remove them' });
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`, depth + 1));
    if (!isObject(v)) return;
    for (const [k, x] of Object.entries(v)) {
      // Teleport's keys are snake_case; label maps may hold "/" and "-" and ".". No control characters, no spaces at the ends.
      // eslint-disable-next-line no-control-regex -- matching control characters is the point
      if (k === '' || /[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(k) || k.trim() !== k) {
        problems.push({
          path: `${path}.${JSON.stringify(k)}`,
          setting: source,
          message: 'keys must be non-empty text without control characters or surrounding spaces',
        });
        continue;
      }
      walk(x, path ? `${path}.${k}` : k, depth + 1);
    }
  };
  walk(fragment, '', 0);
  return problems;
}

/**
 * Merges `fragment` into `config` in place. Refused parts are left out and
 * reported as problems; unknown keys are merged and reported as warnings.
 */
export function mergeFragment(
  config: Record<string, unknown>,
  fragment: ConfigFragment | undefined,
  source: FragmentSource,
  ctx: FragmentContext,
  out: MergeResult,
): void {
  if (fragment === undefined) return;
  const shape = shapeProblems(fragment, source);
  if (shape.length > 0) {
    out.problems.push(...shape);
    return;
  }
  const at = (path: string) => `${source}.${path}`;
  const merge = (target: Record<string, unknown>, value: Record<string, unknown>, path: string) => {
    for (const [key, v] of Object.entries(value)) {
      const child = path ? `${path}.${key}` : key;
      if (path === '' && SERVICES.includes(key)) {
        const section = target[key];
        const running = isObject(section) && section.enabled === true;
        if (!running) {
          // The cluster's fragment is for every host: a service this one does not run takes nothing from it.
          if (source === 'cluster.configFragment') continue;
          out.problems.push({
            path: child,
            setting: at(child),
            message: `${key} does not run on this instance (assignment.roles), so these keys would have no effect`,
          });
          continue;
        }
      }
      const managed = isObject(v) && !managedSetting(child, ctx) ? undefined : managedBelow(child, ctx);
      if (managed) {
        const [key2, setting] = managed;
        out.problems.push({
          path: child,
          setting: at(child),
          message: `would replace ${key2}, which teleboot manages; use ${setting} instead`,
        });
        continue;
      }
      const check = entry(KNOWN, child);
      if (check) {
        const why = check(v);
        if (why) {
          out.problems.push({ path: child, setting: at(child), message: why });
          continue;
        }
        define(target, key, plainCopy(v));
        continue;
      }
      if (SECTIONS.has(child)) {
        if (!isObject(v)) {
          out.problems.push({ path: child, setting: at(child), message: 'is a section of teleport.yaml: give it as an object of keys' });
          continue;
        }
        if (!isObject(target[key])) define(target, key, {});
        merge(target[key] as Record<string, unknown>, v, child);
        continue;
      }
      out.warnings.push({
        path: child,
        setting: at(child),
        message:
          'is not a key teleboot knows; it is written as given. Teleport refuses to start on a key it does not know: check it against the config reference of the Teleport version you run',
      });
      define(target, key, mergedUnknown(target[key], v));
    }
  };
  merge(config, fragment, '');
}
