// The seed's Ansible variables (vars/main.yaml, or the JSON of --extra-vars;
// seed 000_* and its PARAMETERS.md) as teleboot settings, a rule and an
// assignment. The roles wrote teleport.yaml from these on each host.
import type { StorageSettings } from '../../contract/settings';
import { TELEPORT_PORTS } from '../../contract/render/teleport-config';
import { isTeleportVersion } from '../../contract/teleport-release';
import { emptyPlan, placeAssignment, type ImportPlan } from './plan';

const TYPES: Record<string, string> = { auth: 'auth', proxy: 'proxy', node: 'node', 'auth-proxy': 'auth-proxy' };

/** The listeners teleboot binds on fixed ports, by the Ansible variable that chose them. */
const FIXED_PORTS: Array<[variable: string, port: number, what: string]> = [
  ['teleport_node_ssh_service_port', TELEPORT_PORTS.ssh, "nodes' SSH listener"],
  ['teleport_proxy_ssh_listen_port', TELEPORT_PORTS.proxySsh, "the proxy's SSH listener"],
  ['teleport_proxy_tunnel_listen_port', TELEPORT_PORTS.proxyTunnel, "the proxy's tunnel listener"],
  ['teleport_auth_api_listen_port', TELEPORT_PORTS.auth, "the auth servers' listener"],
];

const asText = (v: unknown): string | undefined =>
  typeof v === 'string' ? (v === '' ? undefined : v) : typeof v === 'number' ? String(v) : undefined;

/** Values with "{{ name }}" replaced by the variable's value, as Ansible would (the roles' default teleport_storage uses them). */
function resolveTemplates(vars: Record<string, unknown>): Record<string, unknown> {
  const resolve = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string')
      return v.replace(/\{\{\s*(\w+)\s*\}\}/g, (whole, name: string) => {
        const ref = vars[name];
        return depth < 4 && (typeof ref === 'string' || typeof ref === 'number') ? String(resolve(ref, depth + 1)) : whole;
      });
    if (Array.isArray(v)) return v.map((x) => resolve(x, depth));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x, depth)]));
    return v;
  };
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, resolve(v, 0)]));
}

export function planFromAnsible(given: Record<string, unknown>, instanceId?: string): ImportPlan {
  const plan = emptyPlan('Ansible variables');
  const vars = resolveTemplates(given);
  const used = new Set<string>();
  const get = (name: string) => {
    used.add(name);
    return asText(vars[name]);
  };
  const s = plan.settings;
  const note = (variable: string, why: string) => {
    used.add(variable);
    if (vars[variable] !== undefined) plan.unmapped.push({ variable, why });
  };

  const cluster = get('teleport_cluster_name');
  if (cluster) s.clusterName = cluster;
  const region = get('teleport_region');
  if (region) s.region = region;
  const bucket = get('teleport_bucket');
  if (bucket) s.s3Bucket = bucket;

  const authPort = Number(get('teleport_auth_api_listen_port') ?? TELEPORT_PORTS.auth);
  const authAddr = get('teleport_auth_server_addr');
  if (authAddr) s.authAddr = /:\d+$/.test(authAddr) ? authAddr : `${authAddr}:${authPort}`;

  // The proxy terminated TLS itself with the certificate from S3 (push-cert), on its web port: no load balancer.
  const webPort = Number(get('teleport_proxy_web_listen_port') ?? TELEPORT_PORTS.proxyWeb);
  const domain = get('teleport_proxy_domain');
  if (domain) s.proxyPublicAddr = `${domain}:${webPort}`;
  if (webPort !== TELEPORT_PORTS.proxyWeb) s.proxyWebListenPort = webPort;

  const edition = get('teleport_edition');
  if (edition === 'enterprise') s.enterprise = true;
  else if (edition && edition !== 'oss')
    plan.unmapped.push({ variable: 'teleport_edition', why: `"${edition}" is neither enterprise nor oss` });

  const storage = storageOf(vars.teleport_storage, get('teleport_dynamodb_table'), bucket, plan);
  used.add('teleport_storage');
  if (storage) s.storage = storage;

  for (const [variable, port, what] of FIXED_PORTS) {
    const given = get(variable);
    if (given !== undefined && Number(given) !== port) {
      plan.unmapped.push({
        variable,
        why: `teleboot binds ${what} on ${port}; ${given} cannot be kept (open ${port} in the security groups)`,
      });
    }
  }
  // The roles installed this release from its tarball; the agents do now (the `teleport` setting, from {bucket}/teleport/).
  const version = get('teleport_version');
  if (version && isTeleportVersion(version)) s.teleport = { version };
  else if (version) plan.unmapped.push({ variable: 'teleport_version', why: `"${version}" is not a Teleport version such as 15.4.2` });
  note('teleport_architecture', "not needed: each agent installs the build for its host's architecture");
  note('teleport_license', 'put the license in SSM {ssmPrefix}/{cluster}/license (SecureString): the auth servers read it there');
  note('teleport_data_dir', "the agent's teleport.data_dir (agent.yaml), /var/lib/teleport by default");
  note('teleport_email', "the Let's Encrypt account: set acme.email in control.yaml (teleboot-control orders the certificate)");
  note('host_name', 'an Ansible inventory host; name the instance with --instance-id, or tag it (see the rule)');

  const type = get('teleport_type');
  if (type && TYPES[type]) placeAssignment(plan, { role: TYPES[type] }, `ansible ${type}`, instanceId);
  else
    plan.unmapped.push({
      variable: 'teleport_type',
      why: `${type ? `"${type}"` : 'nothing'} is no type of the roles (auth, proxy, node, auth-proxy)`,
    });

  for (const name of Object.keys(vars)) {
    if (!used.has(name)) plan.unmapped.push({ variable: name, why: 'not a variable of the seed Ansible roles' });
  }
  plan.mapped = Object.keys(vars).filter((name) => !plan.unmapped.some((u) => u.variable === name));
  return plan;
}

/** teleport_storage as the roles wrote it (their default: DynamoDB, events in <table>-events, recordings in S3). */
function storageOf(value: unknown, table: string | undefined, bucket: string | undefined, plan: ImportPlan): StorageSettings | undefined {
  if (value === undefined) return table ? { type: 'dynamodb', tableName: table } : undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    plan.unmapped.push({ variable: 'teleport_storage', why: 'must be a mapping like {type: dynamodb, table_name: ...}' });
    return undefined;
  }
  const v = value as Record<string, unknown>;
  const type = asText(v.type);
  if (type === 'dir') return { type: 'dir' };
  if (type !== 'dynamodb') {
    plan.unmapped.push({ variable: 'teleport_storage', why: `type ${JSON.stringify(v.type)}: teleboot writes dir or dynamodb storage` });
    return undefined;
  }
  const tableName = asText(v.table_name) ?? table;
  const events = Array.isArray(v.audit_events_uri)
    ? v.audit_events_uri.map(String)
    : asText(v.audit_events_uri)
      ? [String(v.audit_events_uri)]
      : undefined;
  const sessions = asText(v.audit_sessions_uri);
  return {
    type: 'dynamodb',
    ...(tableName ? { tableName } : {}),
    ...(asText(v.region) ? { region: asText(v.region) } : {}),
    // The roles' defaults are teleboot's: spell them out only when they differ.
    ...(events && !(events.length === 1 && events[0] === `dynamodb://${tableName}-events`) ? { auditEventsUri: events } : {}),
    ...(sessions && sessions !== `s3://${bucket}/records` ? { auditSessionsUri: sessions } : {}),
  };
}
