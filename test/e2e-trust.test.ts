// Join tokens derived from the assignments, and trusted clusters (seed
// 000_*), end to end: two control servers as processes (the root cluster
// "example" of the world, and a leaf cluster "leaf"), one auth agent for
// each as a process, the stand-in tctl, the SSM emulator they share.
//   - The root's publisher mints what the assignments need, a combined token
//     for a host running discovery and kube as soon as it is assigned.
//   - A root publishes tokens/trusted_cluster; the leaf's auth server reads
//     it and creates its trusted_cluster resource with `tctl create -f`,
//     again when the leaf's settings change (a root token rotation leaves it alone);
//     a missing root token is a problem in the leaf's status.
//   - Bad trust settings are refused naming the field; no token in a log or
//     in a file of the agent.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ControlProcess, startAgentProcess, until, writeAgentConfig, type AgentFiles } from './support/harness';
import { CLUSTER, startWorld, type World } from './support/world';

const LEASE_MS = 2000;
const ROTATE_MS = 8000;
const CONTROL_ARGS = ['--heartbeat-interval', '1s', '--publisher-lease', `${LEASE_MS / 1000}s`];

const LEAF = {
  clusterName: 'leaf',
  authAddr: 'auth.leaf.internal:3025',
  proxyPublicAddr: 'leaf.example.com:443',
  // Proxies on 3080 behind a load balancer on 443.
  behindLoadBalancer: true,
  s3Bucket: 'leaf-teleport-certs',
  ssmPrefix: '/teleport',
  region: 'us-east-1',
  trustRole: 'leaf',
  rootClusterName: CLUSTER.clusterName,
  rootWebProxyAddr: 'teleport.example.com:443',
  rootTunnelAddr: 'teleport.example.com:3024',
  rootRoleMap: [{ remote: 'access', local: ['access'] }],
};

let world: World;
let leafControl: ControlProcess;
let tctlDir: string;
// Agents outlive the subtest that starts them: they stop when the file's tests end.
const root = t;
t.before(async () => {
  world = await startWorld('e2e-trust', { controlArgs: CONTROL_ARGS });
  tctlDir = join(world.dir, 'tctl');
  // Inherited by the agents, and by the tctl they run: the root's and the leaf's tctl share
  // it, so the stand-in checks the leaf's token against what the root minted.
  process.env.TCTL_STANDIN_DIR = tctlDir;
  leafControl = new ControlProcess(join(world.dir, 'leaf-control'), CONTROL_ARGS);
  await leafControl.start();
});
t.teardown(async () => {
  await leafControl?.stop();
  await world?.close();
});

interface Minted {
  token: string;
  roles: string[];
  cluster: string;
  config: string;
  at: number;
}
const lines = <T>(file: string): T[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as T)
    : [];
const minted = () => lines<Minted>(join(tctlDir, 'tokens.jsonl'));
interface TrustedClusterOp {
  op: 'create' | 'update' | 'rm';
  cluster: string;
  name: string;
  resource?: any;
  config: string;
  at: number;
}
const trustOps = () => lines<TrustedClusterOp>(join(tctlDir, 'trusted_clusters.jsonl'));
/** The trusted clusters the stand-in holds for the leaf cluster. */
const leafTrusted = () => {
  const file = join(tctlDir, 'trusted_clusters.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')).leaf ?? {}) : {};
};
const param = (cluster: string, name: string) => `/teleport/${cluster}/tokens/${name}`;
const pinParam = `/teleport/${CLUSTER.clusterName}/ca-pin-hash`;
/** The stand-in's record of the token SSM holds under `name` in the root cluster, if the stand-in minted it. */
const published = (name: string) => minted().find((m) => m.token === world.ssm.get(param(CLUSTER.clusterName, name))?.value);

/** An auth agent for `control`, publishing only what the control server derives (no publisher.roles). */
async function startAuthAgent(control: ControlProcess): Promise<{ id: string; files: AgentFiles; logs: () => string }> {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  const put = await control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'auth' });
  if (put.status !== 200) throw new Error(JSON.stringify(put.body));
  const files = await writeAgentConfig({
    control,
    imdsEndpoint: imds.endpoint,
    ssmEndpoint: world.ssm.endpoint,
    s3Endpoint: world.s3.endpoint,
    serviceManager: 'process',
    heartbeat: '500ms',
    root: join(world.dir, id),
  });
  const config = parse(readFileSync(files.configFile, 'utf8'));
  config.publisher = { token_ttl: '1m', rotate_every: `${ROTATE_MS / 1000}s` };
  writeFileSync(files.configFile, stringify(config));
  return { id, files, ...startAgentProcess(root, files) };
}

/** Returns early in a rotation period (so that what a test sees next cannot be the rotation), waiting for the next one if needed. */
async function earlyInRotation(): Promise<void> {
  const sinceMs = () => Date.now() - world.ssm.get(pinParam)!.lastModified.getTime();
  if (sinceMs() < ROTATE_MS / 3) return;
  const version = world.ssm.get(pinParam)!.version;
  await until('the next rotation', () => world.ssm.get(pinParam)!.version > version, ROTATE_MS + LEASE_MS + 3000);
}

const holdsLease = (i: any) => i.health === 'ready' && /publisher: holds the lease/.test(i.status?.message ?? '');
let rootAuth: Awaited<ReturnType<typeof startAuthAgent>>;
let leafAuth: Awaited<ReturnType<typeof startAuthAgent>>;

t.test('the lease holder mints the join tokens the assignments need; a new one at once, not at the next rotation', async (t) => {
  rootAuth = await startAuthAgent(world.control);
  await world.control.waitForInstance(rootAuth.id, holdsLease);
  await until('the CA pin of the first publication', () => world.ssm.get(pinParam)!.version > 1);
  t.same(minted(), [], 'auth servers alone need no join token: none is minted');

  const assigned = await world.control.rest('PUT', '/v1/instances/i-0node000000000001/assignment', { role: 'node' });
  t.equal(assigned.status, 200);
  await until('the node token', () => published('node'));
  t.same(published('node')!.roles, ['Node']);

  await earlyInRotation();
  const pinVersion = world.ssm.get(pinParam)!.version;
  const nodeToken = world.ssm.get(param(CLUSTER.clusterName, 'node'))!.value;
  const at = Date.now();
  const kube = await world.control.rest('PUT', '/v1/instances/i-0kube000000000001/assignment', {
    roles: ['kube', 'discovery'],
    kube: { resources: [{ labels: { env: 'prod' } }] },
    discovery: { aws: [{ types: ['eks'], regions: ['*'] }] },
  });
  t.equal(kube.status, 200, JSON.stringify(kube.body));
  const combined = await until('the discovery-kube token', () => published('discovery-kube'), ROTATE_MS);
  const tookMs = Date.now() - at;
  t.comment(`discovery-kube published ${tookMs} ms after the assignment (rotation every ${ROTATE_MS} ms, lease ${LEASE_MS} ms)`);
  t.same(combined.roles, ['Discovery', 'Kube'], 'one token allowing both services: tctl tokens add --type=discovery,kube');
  t.equal(combined.config, rootAuth.files.teleportConfig, 'minted by the auth server holding the lease');
  t.equal(world.ssm.get(param(CLUSTER.clusterName, 'discovery-kube'))!.type, 'SecureString');
  t.ok(tookMs < LEASE_MS + 1500, `within a lease renewal (${tookMs} ms)`);
  t.equal(world.ssm.get(pinParam)!.version, pinVersion, 'not by a rotation: the CA pin was not published again');
  t.equal(world.ssm.get(param(CLUSTER.clusterName, 'node'))!.value, nodeToken, 'and the node token was not minted again');
});

t.test('a leaf whose root publishes no trusted_cluster token shows the problem in its status and the fleet health', async (t) => {
  const saved = await leafControl.rest('PATCH', '/v1/settings', LEAF);
  t.equal(saved.status, 200, JSON.stringify(saved.body));
  t.match(saved.body, { trustRole: 'leaf', rootClusterName: 'example', rootRoleMap: LEAF.rootRoleMap });
  leafAuth = await startAuthAgent(leafControl);
  const degraded = await leafControl.waitForInstance(
    leafAuth.id,
    (i) => i.health === 'degraded' && /trusted cluster/.test(i.status?.message ?? ''),
  );
  t.match(
    degraded.status.message,
    /publisher: trusted cluster example failed \(attempt \d+\): the root's token \/teleport\/example\/tokens\/trusted_cluster is not in SSM/,
  );
  await until('retries', () => (leafAuth.logs().match(/trusted cluster example failed; retrying/g) ?? []).length >= 2);
  t.same(trustOps(), [], 'nothing was created');
});

t.test('a root publishes tokens/trusted_cluster; the leaf creates its trusted_cluster resource with it', async (t) => {
  await earlyInRotation();
  const pinVersion = world.ssm.get(pinParam)!.version;
  const patched = await world.control.rest('PATCH', '/v1/settings', { trustRole: 'root' });
  t.equal(patched.status, 200, JSON.stringify(patched.body));
  const token = await until('the trusted_cluster token', () => published('trusted_cluster'), ROTATE_MS);
  t.same(token.roles, ['Trusted_cluster'], 'tctl tokens add --type=trusted_cluster');
  t.equal(world.ssm.get(param('example', 'trusted_cluster'))!.type, 'SecureString');
  t.equal(world.ssm.get(pinParam)!.version, pinVersion, 'at once, not at the next rotation');

  const value = world.ssm.get(param('example', 'trusted_cluster'))!.value;
  const created = await until("the leaf's trusted cluster", () => leafTrusted().example);
  t.same(
    created,
    {
      kind: 'trusted_cluster',
      version: 'v2',
      metadata: { name: 'example' },
      spec: {
        enabled: true,
        token: value,
        web_proxy_addr: 'teleport.example.com:443',
        tunnel_addr: 'teleport.example.com:3024',
        role_map: [{ remote: 'access', local: ['access'] }],
      },
    },
    'created with the root token from SSM and the leaf settings',
  );
  t.match(
    trustOps(),
    [{ op: 'create', cluster: 'leaf', name: 'example', config: leafAuth.files.teleportConfig }],
    "by the leaf's auth server",
  );
  const ready = await leafControl.waitForInstance(
    leafAuth.id,
    (i) => i.health === 'ready' && /trusts root cluster example/.test(i.status?.message ?? ''),
  );
  t.notMatch(ready.status.message, /failed/, 'the problem is gone');
});

t.test('a rotation of the root token leaves the established trust alone; a settings change is applied', async (t) => {
  const first = world.ssm.get(param('example', 'trusted_cluster'))!.value;
  const opsBefore = trustOps().length;
  const rotated = await until(
    'a rotation of the root token',
    () => {
      const v = world.ssm.get(param('example', 'trusted_cluster'))!.value;
      return v !== first && v;
    },
    ROTATE_MS + LEASE_MS + 3000,
  );
  t.equal(published('trusted_cluster')?.config, rootAuth.files.teleportConfig, "rotated by the root's auth server");
  // Two more lease renewals: time enough for the leaf to act, if it did.
  await new Promise((r) => setTimeout(r, LEASE_MS));
  t.same(trustOps().slice(opsBefore), [], 'the leaf does not touch its trusted cluster: the token only served the first handshake');
  t.equal(leafTrusted().example.spec.token, first, 'which keeps the token it was created with');
  t.not(rotated, first);

  const roleMap = [
    { remote: 'access', local: ['access'] },
    { remote: '^admin-(.*)$', local: ['leaf-admin-$1'] },
  ];
  const patched = await leafControl.rest('PATCH', '/v1/settings', { rootRoleMap: roleMap });
  t.equal(patched.status, 200, JSON.stringify(patched.body));
  await until('the new role map', () => JSON.stringify(leafTrusted().example?.spec.role_map) === JSON.stringify(roleMap), 10_000);
  t.equal(trustOps().pop()!.op, 'update', 'a new role map is an update Teleport allows (tctl create -f)');

  const moved = await leafControl.rest('PATCH', '/v1/settings', { rootWebProxyAddr: 'root-proxy.example.com:443' });
  t.equal(moved.status, 200, JSON.stringify(moved.body));
  await until('the new root address', () => leafTrusted().example?.spec.web_proxy_addr === 'root-proxy.example.com:443', 10_000);
  // Teleport refuses to change the addresses of an existing trusted cluster: removed and created again.
  t.same(
    trustOps()
      .slice(-2)
      .map((o) => o.op),
    ['rm', 'create'],
    'new root addresses re-create the trusted cluster',
  );
  t.equal(leafTrusted().example.spec.token, world.ssm.get(param('example', 'trusted_cluster'))!.value, "with the root's current token");
  t.ok(
    trustOps().every((o) => o.config === leafAuth.files.teleportConfig),
    "each by the leaf's auth server",
  );
});

t.test('bad trust settings are refused with a 400 naming the field', async (t) => {
  const before = (await leafControl.rest('GET', '/v1/settings')).body;
  const refused: Array<[string, ControlProcess, unknown, RegExp]> = [
    [
      'a root web proxy that is no host:port',
      leafControl,
      { rootWebProxyAddr: 'teleport.example.com' },
      /^rootWebProxyAddr: "teleport\.example\.com" is not host:port/,
    ],
    [
      'a wildcard among local roles',
      leafControl,
      { rootRoleMap: [{ remote: 'access', local: ['*'] }] },
      /^rootRoleMap\[0\]\.local\[0\]: a wildcard is not allowed/,
    ],
    [
      'a remote role mapped twice',
      leafControl,
      {
        rootRoleMap: [
          { remote: 'a', local: ['x'] },
          { remote: 'a', local: ['y'] },
        ],
      },
      /^rootRoleMap\[1\]\.remote: "a" is mapped twice/,
    ],
    [
      'a mapping without local roles',
      leafControl,
      { rootRoleMap: [{ remote: 'a', local: [] }] },
      /^rootRoleMap\[0\]\.local: lists the local roles/,
    ],
    [
      'a bad regular expression',
      leafControl,
      { rootRoleMap: [{ remote: '^(a$', local: ['x'] }] },
      /^rootRoleMap\[0\]\.remote: "\^\(a\$" is not a valid regular expression/,
    ],
    ['an empty role map', leafControl, { rootRoleMap: [] }, /^rootRoleMap: trustRole leaf needs at least one mapping/],
    ['a leaf trusting itself', leafControl, { rootClusterName: 'leaf' }, /^rootClusterName: is this cluster's own name/],
    ['a leaf without its root', leafControl, { rootClusterName: null }, /^rootClusterName: trustRole leaf needs the root cluster's name/],
    ['root settings on a cluster that is no leaf', leafControl, { trustRole: 'standalone' }, /^rootClusterName: is for a leaf cluster/],
    ['root settings on a root', world.control, { rootClusterName: 'other' }, /^rootClusterName: is for a leaf cluster/],
    ['a mapping without local (schema)', leafControl, { rootRoleMap: [{ remote: 'a' }] }, /^body\.rootRoleMap\.0\.local: is required/],
    [
      'an unknown trust role (schema)',
      leafControl,
      { trustRole: 'primary' },
      /^body\.trustRole: must be equal to one of the allowed values/,
    ],
  ];
  for (const [name, control, body, message] of refused) {
    const res = await control.rest('PATCH', '/v1/settings', body);
    t.equal(res.status, 400, name);
    t.match(res.body.message, message, name);
  }
  t.same((await leafControl.rest('GET', '/v1/settings')).body, before, 'nothing was saved');
});

t.test('no token reaches a log, nor a file of the agents', async (t) => {
  const tokens = minted().map((m) => m.token);
  t.ok(minted().filter((m) => m.roles.includes('Trusted_cluster')).length >= 2, 'trusted_cluster tokens were minted');
  const logs = {
    'root control server': world.control.logs,
    'leaf control server': leafControl.logs,
    'root auth agent': rootAuth.logs(),
    'leaf auth agent': leafAuth.logs(),
  };
  t.match(leafAuth.logs(), /trusted cluster created/, 'the creation is logged');
  for (const [where, text] of Object.entries(logs))
    t.notOk(
      tokens.some((tok) => text.includes(tok)),
      `no token in the ${where} log`,
    );
  // The trusted_cluster document went to tctl over a pipe: nothing under the agents' directories holds a token.
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
  for (const agent of [rootAuth, leafAuth]) {
    const found = files(agent.files.root).filter((f) => tokens.some((tok) => readFileSync(f).includes(tok)));
    t.same(found, [], `no token in a file under ${agent.files.root}`);
  }
});
