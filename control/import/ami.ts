// The Teleport AMI's /etc/teleport.d/conf as teleboot settings, a rule and
// an assignment. The variables are those its teleport-generate-config reads
// (gravitational/teleport assets/aws/files/bin); what each becomes follows
// what that script writes into teleport.yaml.
import { AUTH_TYPES } from '../../contract/settings';
import type { AssignmentInput } from '../service';
import { emptyPlan, placeAssignment, type ImportPlan } from './plan';

const isTrue = (v: string | undefined) => v === 'true';

/** Variables the AMI's scripts use for themselves, not for teleport.yaml. */
const SCRIPT_ONLY: Record<string, string> = {
  DEBUG: 'a switch of the AMI scripts (set -x); teleboot logs with --log-level',
  TELEPORT_TEST_MODE: 'a test switch of the AMI scripts',
  TELEPORT_TEST_FIPS_MODE: 'a test switch of the AMI scripts; FIPS is the fips setting',
  TELEPORT_CONFIG_PATH: "the agent's teleport.config path (agent.yaml)",
  TELEPORT_CONFD_DIR: 'the AMI scripts read it; teleboot keeps its state in /var/lib/teleboot',
  TELEPORT_INFLUXDB_ADDRESS:
    "the AMI's telegraf pushes metrics there; teleboot serves GET /metrics and /v1/health, and Teleport's own metrics stay on its diag address",
  TELEPORT_DOMAIN_ADMIN_EMAIL: "the Let's Encrypt account: set acme.email in control.yaml (teleboot-control orders the certificate)",
  TELEPORT_JOIN_TOKEN:
    'a static join token: teleboot never writes one; the auth server holding the publisher lease mints tokens and publishes them to SSM',
  POSTGRES_HOSTNAME:
    'with it the AMI advertises PostgreSQL on the web port; set postgresPublicAddr to a separate listener, or leave it out',
};

/** Every variable this mapping reads. */
const KNOWN = new Set([
  'TELEPORT_ROLE',
  'TELEPORT_CLUSTER_NAME',
  'TELEPORT_DOMAIN_NAME',
  'TELEPORT_EXTERNAL_HOSTNAME',
  'TELEPORT_EXTERNAL_PORT',
  'TELEPORT_AUTH_SERVER_LB',
  'TELEPORT_PROXY_SERVER_LB',
  'TELEPORT_PROXY_SERVER_NLB_ALIAS',
  'TELEPORT_S3_BUCKET',
  'TELEPORT_DYNAMO_TABLE_NAME',
  'TELEPORT_DYNAMO_EVENTS_TABLE_NAME',
  'TELEPORT_LICENSE_PATH',
  'TELEPORT_AUTH_TYPE',
  'TELEPORT_ENABLE_FIPS',
  'TELEPORT_ENABLE_MYSQL',
  'TELEPORT_ENABLE_POSTGRES',
  'TELEPORT_ENABLE_MONGODB',
  'USE_LETSENCRYPT',
  'USE_ACM',
  'EC2_REGION',
  'TELEPORT_AGENT_SSH_ENABLED',
  'TELEPORT_AGENT_SSH_LABELS',
  'TELEPORT_AGENT_DB_ENABLED',
  'TELEPORT_AGENT_DB_NAME',
  'TELEPORT_AGENT_DB_DESCRIPTION',
  'TELEPORT_AGENT_DB_PROTOCOL',
  'TELEPORT_AGENT_DB_URI',
  'TELEPORT_AGENT_DB_REGION',
  'TELEPORT_AGENT_DB_REDSHIFT_CLUSTER_ID',
  'TELEPORT_AGENT_DB_LABELS',
  'TELEPORT_AGENT_APP_ENABLED',
  'TELEPORT_AGENT_APP_NAME',
  'TELEPORT_AGENT_APP_DESCRIPTION',
  'TELEPORT_AGENT_APP_URI',
  'TELEPORT_AGENT_APP_PUBLIC_ADDR',
  'TELEPORT_AGENT_APP_INSECURE_SKIP_VERIFY',
  'TELEPORT_AGENT_APP_LABELS',
]);

/** The AMI's label lists: "key: value" items separated by "|" (it writes them as YAML lines). */
function labelsOf(text: string | undefined): Record<string, string> | undefined {
  if (!text) return undefined;
  const labels: Record<string, string> = {};
  for (const item of text.split('|')) {
    const m = /^\s*([^:]+?)\s*:\s*(.*?)\s*$/.exec(item);
    if (m) labels[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return labels;
}

export function planFromAmi(vars: Map<string, string>, instanceId?: string): ImportPlan {
  const plan = emptyPlan('Teleport AMI conf');
  const get = (name: string) => {
    const v = vars.get(name);
    if (v !== undefined) plan.mapped.push(name);
    return v === '' ? undefined : v;
  };
  for (const [name] of vars) {
    if (SCRIPT_ONLY[name] !== undefined) plan.unmapped.push({ variable: name, why: SCRIPT_ONLY[name] });
    else if (!KNOWN.has(name)) plan.unmapped.push({ variable: name, why: "not a variable of the AMI's teleport-generate-config" });
  }
  const s = plan.settings;
  const role = get('TELEPORT_ROLE') ?? '';
  const acm = isTrue(get('USE_ACM'));
  const letsencrypt = isTrue(get('USE_LETSENCRYPT'));
  const fips = isTrue(get('TELEPORT_ENABLE_FIPS'));

  const cluster = get('TELEPORT_CLUSTER_NAME');
  if (cluster) s.clusterName = cluster;
  const region = get('EC2_REGION');
  if (region) s.region = region;
  const bucket = get('TELEPORT_S3_BUCKET');
  if (bucket) s.s3Bucket = bucket;
  const authLb = get('TELEPORT_AUTH_SERVER_LB');
  if (authLb) s.authAddr = `${authLb}:3025`;

  // Storage: DynamoDB with events in their own table and recordings in S3 (the AMI's auth servers).
  const table = get('TELEPORT_DYNAMO_TABLE_NAME');
  const events = get('TELEPORT_DYNAMO_EVENTS_TABLE_NAME');
  if (table) {
    s.storage = {
      type: 'dynamodb',
      tableName: table,
      ...(events && events !== `${table}-events` ? { auditEventsUri: [`dynamodb://${events}`] } : {}),
    };
  }

  // The proxy's address and certificate.
  const domain = get('TELEPORT_DOMAIN_NAME');
  const externalHost = get('TELEPORT_EXTERNAL_HOSTNAME');
  const externalPort = get('TELEPORT_EXTERNAL_PORT');
  const proxyLb = get('TELEPORT_PROXY_SERVER_LB');
  const nlbAlias = get('TELEPORT_PROXY_SERVER_NLB_ALIAS');
  const starter = role === '' || role === 'auth,node,proxy';
  if (starter) {
    // The starter AMI: public_addr is the external host and port (3080 unless given), web on 3080.
    const host = externalHost ?? domain;
    const port = Number(externalPort ?? 3080);
    if (host) s.proxyPublicAddr = `${host}:${port}`;
    if (!acm && port !== 3080) s.proxyWebListenPort = port;
  } else if (domain) {
    // HA proxies: public_addr <domain>:443 with web on 3080 behind the load balancer.
    s.proxyPublicAddr = `${domain}:443`;
    if (!acm) s.behindLoadBalancer = true;
  }
  if (role === 'agent' && proxyLb && !domain) {
    // Agents join through the proxy's load balancer (proxy_server), which is where users reach it too.
    s.proxyPublicAddr = /:\d+$/.test(proxyLb) ? proxyLb : `${proxyLb}:443`;
    s.behindLoadBalancer = true;
  }
  if (acm) s.tlsSource = 'acm';
  else if (letsencrypt || role === 'proxy') s.tlsSource = 'letsencrypt';
  if (acm && (nlbAlias || proxyLb)) {
    // ACM: SSH and the tunnel go through the network load balancer, not the ALB.
    const nlb = nlbAlias ?? proxyLb;
    s.sshPublicAddr = `${nlb}:3023`;
    s.tunnelPublicAddr = `${nlb}:3024`;
  }
  const listenerHost = acm ? (nlbAlias ?? proxyLb) : starter ? (externalHost ?? domain) : domain;
  if (listenerHost && (starter || role === 'proxy')) {
    // The AMI opens the proxy's Kubernetes listener on every proxy, and the database listeners asked for.
    s.kubePublicAddr = `${listenerHost}:3026`;
    if (isTrue(get('TELEPORT_ENABLE_MYSQL'))) s.mysqlPublicAddr = `${listenerHost}:3036`;
    if (isTrue(get('TELEPORT_ENABLE_POSTGRES'))) s.postgresPublicAddr = `${listenerHost}:5432`;
    if (isTrue(get('TELEPORT_ENABLE_MONGODB'))) s.mongoPublicAddr = `${listenerHost}:27017`;
  }

  // auth_service as the AMI writes it.
  if (get('TELEPORT_LICENSE_PATH') || fips) s.enterprise = true;
  if (fips) s.fips = true;
  else if (starter || role === 'auth') s.secondFactor = 'otp';
  const authType = get('TELEPORT_AUTH_TYPE');
  if (authType) {
    if ((AUTH_TYPES as readonly string[]).includes(authType)) s.authType = authType as (typeof AUTH_TYPES)[number];
    else
      plan.unmapped.push({
        variable: 'TELEPORT_AUTH_TYPE',
        why: `"${authType}" is no auth type teleboot knows (${AUTH_TYPES.join(', ')})`,
      });
  }
  if (starter || role === 'auth') {
    s.keepAliveInterval = '1m';
    s.keepAliveCountMax = 3;
  }
  if (role === 'proxy') {
    // The AMI's proxies: an in-memory cache and these connection limits (teleboot applies limits on every host).
    s.cache = 'in-memory';
    s.maxConnections = 65000;
    s.maxUsers = 10000;
  }

  // The role.
  let assignment: AssignmentInput | undefined;
  if (starter) assignment = { role: 'all' };
  else if (role === 'auth' || role === 'proxy' || role === 'node') assignment = { role };
  else if (role === 'agent') assignment = agentAssignment(get, region, plan);
  else if (role === 'monitor')
    plan.unmapped.push({
      variable: 'TELEPORT_ROLE',
      why: 'monitor hosts run telegraf and InfluxDB; teleboot needs none: scrape GET /metrics',
    });
  else
    plan.unmapped.push({
      variable: 'TELEPORT_ROLE',
      why: `"${role}" is no role of the AMI (auth, proxy, node, agent, monitor or auth,node,proxy)`,
    });
  if (assignment) placeAssignment(plan, assignment, `ami ${assignment.role ?? assignment.roles?.join('+')}`, instanceId);
  return plan;
}

/** TELEPORT_ROLE=agent: SSH, a database and an app, each when enabled; agents join through the proxy. */
function agentAssignment(
  get: (name: string) => string | undefined,
  region: string | undefined,
  plan: ImportPlan,
): AssignmentInput | undefined {
  const roles: string[] = [];
  const a: AssignmentInput = {};
  if (isTrue(get('TELEPORT_AGENT_SSH_ENABLED'))) {
    roles.push('node');
    const labels = labelsOf(get('TELEPORT_AGENT_SSH_LABELS'));
    if (labels) a.labels = labels;
    a.joinVia = 'proxy';
  }
  if (isTrue(get('TELEPORT_AGENT_DB_ENABLED'))) {
    roles.push('db');
    const redshift = get('TELEPORT_AGENT_DB_REDSHIFT_CLUSTER_ID');
    const description = get('TELEPORT_AGENT_DB_DESCRIPTION');
    const labels = labelsOf(get('TELEPORT_AGENT_DB_LABELS'));
    // The AMI writes aws.region for every database; teleboot defaults it for AWS databases itself.
    const dbRegion = get('TELEPORT_AGENT_DB_REGION');
    a.databases = [
      {
        name: get('TELEPORT_AGENT_DB_NAME') ?? '',
        protocol: (get('TELEPORT_AGENT_DB_PROTOCOL') ?? '') as never,
        uri: get('TELEPORT_AGENT_DB_URI') ?? '',
        ...(description ? { description } : {}),
        ...(dbRegion && dbRegion !== region ? { awsRegion: dbRegion } : {}),
        ...(redshift ? { redshiftClusterId: redshift, awsRegion: dbRegion ?? region } : {}),
        ...(labels ? { staticLabels: labels } : {}),
      },
    ];
  }
  if (isTrue(get('TELEPORT_AGENT_APP_ENABLED'))) {
    roles.push('app');
    const description = get('TELEPORT_AGENT_APP_DESCRIPTION');
    const publicAddr = get('TELEPORT_AGENT_APP_PUBLIC_ADDR');
    const labels = labelsOf(get('TELEPORT_AGENT_APP_LABELS'));
    a.apps = [
      {
        name: get('TELEPORT_AGENT_APP_NAME') ?? '',
        uri: get('TELEPORT_AGENT_APP_URI') ?? '',
        ...(description ? { description } : {}),
        ...(publicAddr ? { publicAddr } : {}),
        ...(isTrue(get('TELEPORT_AGENT_APP_INSECURE_SKIP_VERIFY')) ? { insecureSkipVerify: true } : {}),
        ...(labels ? { labels } : {}),
      },
    ];
  }
  if (roles.length === 0) {
    plan.unmapped.push({ variable: 'TELEPORT_ROLE', why: 'agent with no TELEPORT_AGENT_*_ENABLED=true runs nothing' });
    return undefined;
  }
  return roles.length === 1 ? { role: roles[0], ...a } : { roles, ...a };
}
