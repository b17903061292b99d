// Semantic checks of what operators save, so that a mistake is refused at
// the REST call instead of at boot on every instance. Shape and types are
// checked earlier by the REST schemas. Beyond the field rules here, every
// assignment is rendered with the shared renderer (contract/render) against
// the cluster settings before it is saved, and a settings change is rendered
// against every distinct assignment already stored.
import { isHostName, isHostOrIp, isHostPort } from '../contract/address';
import { isAwsRegion } from '../contract/aws-region';
import { DURATION_PATTERN } from '../contract/duration';
import { roleNameOf, type Assignment } from '../contract/model';
import { DEFAULT_HOST_PATHS, proxyEnvironmentOf, renderFilesOf } from '../contract/render/plan';
import {
  DEFAULT_CLUSTER_SETTINGS,
  OPTIONAL_CLUSTER_SETTINGS,
  SEPARATE_LISTENER_ADDRS,
  type ClusterSettings,
  type ClusterSettingsPatch,
  type OptionalClusterSetting,
} from '../contract/settings';
import { webListenPortOf } from '../contract/render/layout-settings';
import { RenderError, renderProblems, type ConfigProblem, type RenderInput } from '../contract/render/render';
import { InputError } from './errors';
import { checkSettingsRelease, validateReleaseFields, type RunningVersions } from './release-rules';
import type { Store } from './store/store';

const durationRe = new RegExp(DURATION_PATTERN);

function check(ok: boolean, field: string, reason: string): void {
  if (!ok) throw new InputError(field, reason);
}

const CLUSTER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const CLUSTER_NAME_RULE = 'letters, digits, ".", "_" and "-" only, starting with a letter or digit';
/** Settings of a leaf cluster only. */
const ROOT_SETTINGS = ['rootClusterName', 'rootWebProxyAddr', 'rootTunnelAddr', 'rootRoleMap'] as const;

export function validateClusterSettings(s: ClusterSettings): void {
  check(s.clusterName === '' || CLUSTER_NAME_RE.test(s.clusterName), 'clusterName', CLUSTER_NAME_RULE);
  check(
    s.authAddr === '' || isHostPort(s.authAddr),
    'authAddr',
    `"${s.authAddr}" is not host:port, for example auth.example.internal:3025`,
  );
  check(
    s.proxyPublicAddr === '' || isHostPort(s.proxyPublicAddr),
    'proxyPublicAddr',
    `"${s.proxyPublicAddr}" is not host:port, for example teleport.example.com:443`,
  );
  check(
    s.s3Bucket === '' || /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s.s3Bucket),
    's3Bucket',
    'an S3 bucket name: 3 to 63 lower-case letters, digits, "." and "-"',
  );
  check(
    /^\/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.-]$/.test(s.ssmPrefix) && !s.ssmPrefix.includes('//'),
    'ssmPrefix',
    'an SSM path such as /teleport: starts with "/", no trailing "/"',
  );
  check(s.region === '' || isAwsRegion(s.region), 'region', `"${s.region}" is not an AWS region name such as us-east-1`);
  if (s.storage.type === 'dynamodb') {
    check(
      !!s.storage.tableName && /^[A-Za-z0-9_.-]{3,255}$/.test(s.storage.tableName),
      'storage.tableName',
      'DynamoDB storage needs a table name (3-255 of A-Z a-z 0-9 _ . -)',
    );
    check(!s.storage.region || isAwsRegion(s.storage.region), 'storage.region', 'not an AWS region name');
  }

  // Joining (seeds 002_*, 003_*).
  if (s.joinMethod === 'iam') {
    check(
      !!s.iamTokenName,
      'iamTokenName',
      'joinMethod iam needs the name of the IAM join token resource (tctl create a token with join_method: iam)',
    );
  }
  check(
    s.iamTokenName === undefined || /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s.iamTokenName),
    'iamTokenName',
    'a token resource name: letters, digits, ".", "_" and "-"',
  );

  // Proxy listeners.
  for (const key of SEPARATE_LISTENER_ADDRS) {
    const value = s[key];
    if (value === undefined) continue;
    check(isHostPort(value), key, `"${value}" is not host:port, for example teleport.example.com:3024`);
    check(
      s.proxyListenerMode !== 'multiplex',
      key,
      'is for separate listeners; with TLS routing (proxyListenerMode multiplex) every protocol uses the web port at proxyPublicAddr',
    );
  }

  // auth_service options (the counts are positive integers by the schema).
  check(s.keepAliveInterval === undefined || durationRe.test(s.keepAliveInterval), 'keepAliveInterval', 'a duration such as 1m or 5m');
  check(
    !(s.authType === 'oidc' || s.authType === 'saml') || s.enterprise === true,
    'authType',
    `${s.authType} connectors need Teleport Enterprise: set enterprise to true`,
  );

  validateTrust(s);
  validateLayout(s);
  validateReleaseFields(s.teleport, s.enterprise === true);

  // /etc/default/teleport.
  try {
    proxyEnvironmentOf(s);
  } catch (err) {
    if (!(err instanceof RenderError)) throw err;
    const p = err.problems[0];
    throw new InputError(fieldOf(p.setting) ?? 'httpsProxy', p.message);
  }
}

/**
 * Trusted clusters (seed 000_*): a leaf names its root and maps the root's
 * roles, as Teleport's trusted_cluster resource requires (role_map entries
 * with a remote role and local roles, no wildcard among the local ones).
 */
function validateTrust(s: ClusterSettings): void {
  if (s.trustRole !== 'leaf') {
    for (const key of ROOT_SETTINGS)
      check(s[key] === undefined, key, `is for a leaf cluster: set trustRole to leaf, or remove ${key} (null)`);
    return;
  }
  check(!!s.rootClusterName, 'rootClusterName', "trustRole leaf needs the root cluster's name (its cluster_name)");
  check(CLUSTER_NAME_RE.test(s.rootClusterName!), 'rootClusterName', CLUSTER_NAME_RULE);
  check(s.rootClusterName !== s.clusterName, 'rootClusterName', "is this cluster's own name; a leaf trusts another cluster");
  check(!!s.rootWebProxyAddr, 'rootWebProxyAddr', "trustRole leaf needs the root's web proxy address, for example root.example.com:443");
  for (const key of ['rootWebProxyAddr', 'rootTunnelAddr'] as const) {
    const value = s[key];
    check(
      value === undefined || isHostPort(value),
      key,
      `"${value}" is not host:port, for example root.example.com:${key === 'rootTunnelAddr' ? 3024 : 443}`,
    );
  }
  const map = s.rootRoleMap ?? [];
  check(
    map.length > 0,
    'rootRoleMap',
    'trustRole leaf needs at least one mapping of a root role to local roles, for example {"remote": "access", "local": ["access"]}',
  );
  const seen = new Set<string>();
  map.forEach((m, i) => {
    const at = `rootRoleMap[${i}]`;
    // Control characters are refused by the schema.
    check(m.remote.trim() !== '', `${at}.remote`, 'the root\'s role: a name, "*" or a regular expression such as ^(.*)$');
    check(!seen.has(m.remote), `${at}.remote`, `"${m.remote}" is mapped twice`);
    seen.add(m.remote);
    if (/^\^.*\$$/.test(m.remote)) {
      let ok = true;
      try {
        new RegExp(m.remote);
      } catch {
        ok = false;
      }
      check(ok, `${at}.remote`, `"${m.remote}" is not a valid regular expression`);
    }
    check(m.local.length > 0, `${at}.local`, 'lists the local roles the remote role maps to; at least one');
    m.local.forEach((role, j) => {
      check(role !== '*', `${at}.local[${j}]`, 'a wildcard is not allowed among local roles (Teleport refuses it)');
      check(/^\S+$/.test(role), `${at}.local[${j}]`, 'a local role name (or a $1 substitution), without spaces');
    });
  });
}

/** Label keys are checked by the schema (propertyNames); these rules need more than a pattern. */
export function validateAssignment(a: Assignment): void {
  check(a.nodename === undefined || isHostName(a.nodename), 'nodename', 'a host name: letters, digits, "-" and "."');
  check(
    a.advertiseIp === undefined || a.advertiseIp === 'private-ip' || isHostOrIp(a.advertiseIp),
    'advertiseIp',
    'an IP address, a host name, or "private-ip" for the instance\'s private IPv4',
  );
  validateReleaseFields(a.teleport, false);
}

// ---- rendering at save time ----------------------------------------------------------

const PLACEHOLDER_PIN = `sha256:${'0'.repeat(64)}`;

/**
 * Settings with every empty required value filled with a placeholder. Saving
 * happens step by step (a role may be assigned before the proxy address is
 * known), so an unset value is not an error at the REST call; the preview
 * route and the agent report it. What is set must fit together.
 */
function withPlaceholders(s: ClusterSettings): ClusterSettings {
  return {
    ...s,
    clusterName: s.clusterName || 'placeholder',
    authAddr: s.authAddr || 'auth.placeholder.invalid:3025',
    // On the port the proxies listen on, so that a missing address is not also a wrong port.
    proxyPublicAddr: s.proxyPublicAddr || `proxy.placeholder.invalid:${webListenPortOf(s)}`,
    s3Bucket: s.s3Bucket || 'placeholder-bucket',
    region: s.region || 'us-east-1',
  };
}

/** A render input for checking an assignment: placeholder instance facts and the agent's default paths. */
export function checkInput(assignment: Assignment, settings: ClusterSettings): RenderInput {
  return {
    assignment,
    cluster: withPlaceholders(settings),
    instance: {
      instanceId: 'i-00000000000000000',
      hostname: 'ip-10-0-0-1.ec2.internal',
      privateIp: '10.0.0.1',
      region: settings.region || 'us-east-1',
    },
    files: renderFilesOf(DEFAULT_HOST_PATHS, true),
    caPins: [PLACEHOLDER_PIN],
    diagAddr: DEFAULT_HOST_PATHS.diagAddr,
  };
}

/** A host running auth, proxy and node: every cluster-wide rule of the layout applies to it. */
const EVERY_SERVICE: Assignment = { roles: ['auth', 'proxy', 'node'], labels: {} };

/**
 * The layout settings of issue 15 judged on their own, whatever is assigned:
 * FIPS (Enterprise, no local authentication), a public address a listener
 * serves, the web port, and the cluster's teleport.yaml fragment. The
 * renderer's own rules decide, so the save says what the preview says.
 */
function validateLayout(s: ClusterSettings): void {
  const layoutSetting = (setting = '') =>
    setting === 'cluster.fips' ||
    setting.startsWith('cluster.configFragment') ||
    setting === 'cluster.proxyWebListenPort' ||
    (s.fips === true && (setting === 'cluster.authType' || setting === 'cluster.secondFactor'));
  const problems = problemsOf(EVERY_SERVICE, s).filter(
    (p) => layoutSetting(p.setting) || (p.setting === 'cluster.proxyPublicAddr' && p.path === 'proxy_service.public_addr'),
  );
  const [p] = problems;
  if (p) throw new InputError(fieldOf(p.setting) ?? 'settings', describe(p));
}

/** "cluster.kubePublicAddr" -> "kubePublicAddr", "assignment.apps[0].name" -> "apps[0].name". */
export function fieldOf(setting: string | undefined): string | undefined {
  if (!setting) return undefined;
  const first = setting.split(' or ')[0].split(' and ')[0];
  return first.replace(/^(cluster|assignment)\./, '');
}

const describe = (p: ConfigProblem) => `${p.message} (teleport.yaml: ${p.path})`;

/** Problems of an assignment under the settings, with placeholders for unset values. */
export function problemsOf(assignment: Assignment, settings: ClusterSettings): ConfigProblem[] {
  return renderProblems(checkInput(assignment, settings));
}

/** Refuses an assignment the renderer would refuse under the current settings; the error names the field. */
export function checkAssignmentRenders(assignment: Assignment, settings: ClusterSettings): void {
  const [p] = problemsOf(assignment, settings);
  if (!p) return;
  const field = fieldOf(p.setting) ?? 'roles';
  const where = p.setting?.startsWith('cluster.') ? ' with the current cluster settings' : '';
  throw new InputError(field, `${describe(p)}${where}`);
}

export interface StoredAssignment {
  assignment: Assignment;
  /** Instances (and rules, as "rule <name>") that hold it. */
  holders: string[];
}

/**
 * Refuses a settings change that makes a stored assignment impossible, naming
 * the setting and the instances it would break. Problems the assignment
 * already had under the current settings do not block the change.
 */
export function checkSettingsAgainst(
  before: ClusterSettings,
  after: ClusterSettings,
  stored: StoredAssignment[],
  patched: string[],
  running?: RunningVersions,
): void {
  // Teleport's version rule over the whole fleet, on the versions hosts run (control/release-rules.ts).
  checkSettingsRelease(before, after, stored, patched, running);
  const key = (p: ConfigProblem) => `${p.path}\n${p.message}`;
  for (const { assignment, holders } of stored) {
    const old = new Set(problemsOf(assignment, before).map(key));
    const p = problemsOf(assignment, after).find((x) => !old.has(key(x)));
    if (!p) continue;
    const settingField = p.setting?.startsWith('cluster.') ? fieldOf(p.setting) : undefined;
    const field = settingField ?? patched[0] ?? 'settings';
    const shown = holders.slice(0, 3).join(', ') + (holders.length > 3 ? ` and ${holders.length - 3} more` : '');
    throw new InputError(
      field,
      `would break ${holders.length === 1 ? 'the assignment' : `${holders.length} assignments`} with roles ${roleNameOf(assignment.roles)} (${shown}): ${describe(p)}`,
    );
  }
}

/** A settings PATCH: null removes an optional setting (it falls back to its default). */
export type SettingsPatch = ClusterSettingsPatch;

const isOptionalSetting = (key: string): key is OptionalClusterSetting => (OPTIONAL_CLUSTER_SETTINGS as readonly string[]).includes(key);

/** The settings after `patch`: storage is merged key by key (type "dir" resets it), null removes an optional setting. */
export function applySettingsPatch(current: ClusterSettings, patch: SettingsPatch): ClusterSettings {
  const next: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (key === 'storage') continue;
    if (value === null) {
      if (!isOptionalSetting(key)) throw new InputError(key, 'is required and cannot be removed');
      // Back to the default where there is one (joinMethod "token", ...), otherwise unset.
      const fallback = DEFAULT_CLUSTER_SETTINGS[key];
      if (fallback === undefined) delete next[key];
      else next[key] = fallback;
    } else if (value !== undefined) {
      next[key] = value;
    }
  }
  const storage: unknown = patch.storage;
  if (storage === null) throw new InputError('storage', 'is required and cannot be removed');
  next.storage = patch.storage?.type === 'dir' ? { type: 'dir' } : { ...current.storage, ...(patch.storage ?? {}) };
  // Each key came from the settings or from a patch the schema (ClusterSettingsPatch) accepted, nulls removed.
  return next as ClusterSettings;
}

/** Every distinct assignment in the store (instances and rules), with who holds it. */
export async function storedAssignments(store: Pick<Store, 'listInstances' | 'listRules'>): Promise<StoredAssignment[]> {
  const byKey = new Map<string, StoredAssignment>();
  const add = (assignment: Assignment, holder: string) => {
    const key = JSON.stringify(assignment);
    const entry = byKey.get(key) ?? { assignment, holders: [] };
    entry.holders.push(holder);
    byKey.set(key, entry);
  };
  // Health does not matter here; a clock at zero is enough.
  const clock = { now: 0, offlineBefore: 0 };
  let after: string | undefined;
  do {
    const page = await store.listInstances({ limit: 1000, ...(after ? { after } : {}) }, clock);
    for (const r of page.items) if (r.assignment) add(r.assignment, r.instanceId);
    after = page.next;
  } while (after);
  for (const rule of await store.listRules()) add({ roles: rule.roles, labels: rule.labels }, `rule "${rule.name}"`);
  return [...byKey.values()];
}
