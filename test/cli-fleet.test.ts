// teleboot health, audit, settings, rules and tokens against a real control
// server; agents are the real gRPC client enrolling and reporting status.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ControlClient } from '../agent/control-client';
import { testIdentity } from './support/fixtures';
import { until } from './support/harness';
import { CLI_BIN, startCliWorld, type CliWorld } from './support/cli';
import { EXIT } from '../cli/exit-codes';

let world: CliWorld;

t.before(async () => {
  world = await startCliWorld('cli-fleet');
});
t.teardown(() => world.close());

/** An agent (the real gRPC client) that enrolls `id`; `report` sends a status for the generation it was given. */
async function enrolledAgent(t: Test, id: string) {
  const client = new ControlClient({ endpoints: [`localhost:${world.control.server.grpcPort}`], caPem: world.control.server.caPem });
  t.teardown(() => client.close());
  const { assignment } = await client.enroll(testIdentity(id), world.control.joinToken, 'test');
  return {
    report: (state: 'ready' | 'degraded', message = '', certificateExpiresAt = 0) =>
      client.reportStatus({
        instanceId: id,
        appliedGeneration: assignment?.generation ?? 0,
        state,
        teleportUnitState: state === 'ready' ? 'active' : 'activating',
        teleportReady: state === 'ready',
        message,
        agentVersion: 'test',
        proxyCertificateExpiresUnixMs: certificateExpiresAt,
      }),
  };
}

const DAY_MS = 86_400_000;

t.test('health exits 0 for a healthy fleet and 2 for an unhealthy one; --strict counts pending instances', async (t) => {
  const empty = await world.run(['health']);
  t.equal(empty.code, EXIT.ok, empty.stderr);
  t.equal(empty.stdout, 'healthy: 0 instance(s)\n');

  await world.control.rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaa1/assignment', { role: 'node' });
  const expected = await world.run(['health']);
  t.equal(expected.code, EXIT.ok, 'an instance assigned ahead of time that has not booted yet is pending, not unhealthy');
  const strict = await world.run(['health', '--strict']);
  t.equal(strict.code, EXIT.unhealthy, '--strict: every assigned instance must be ready');
  t.match(strict.stdout, /^unhealthy: 1 expected of 1 instance\(s\)/);
  t.match(strict.stdout, /i-0aaaaaaaaaaaaaaa1\s+node\s+expected/);

  await (await enrolledAgent(t, 'i-0aaaaaaaaaaaaaaa1')).report('ready');
  const ready = await world.run(['health', '--strict', '-o', 'json']);
  t.equal(ready.code, EXIT.ok, ready.stdout);
  t.match(JSON.parse(ready.stdout), { total: 1, byHealth: { ready: 1 }, healthy: true, problems: [] });

  // Every instance ready, but a proxy serves a certificate close to expiry: an alert.
  await world.control.rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaa3/assignment', { role: 'proxy' });
  const edge = await enrolledAgent(t, 'i-0aaaaaaaaaaaaaaa3');
  await edge.report('ready', '', Date.now() + 2 * DAY_MS);
  const alerting = await world.run(['health']);
  t.equal(alerting.code, EXIT.unhealthy, 'an alert makes the fleet unhealthy');
  t.match(alerting.stdout, /^unhealthy: alerts of 2 instance\(s\)/);
  t.match(
    alerting.stdout,
    /^ALERTS\n {2}instance i-0aaaaaaaaaaaaaaa3 serves a certificate that expires .*\([\d.]+ days, alert below 14\)$/m,
  );
  await edge.report('ready', '', Date.now() + 60 * DAY_MS);
  t.equal((await world.run(['health'])).code, EXIT.ok, 'a renewed certificate clears it');

  await world.control.rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaa2/assignment', { role: 'proxy' });
  await (await enrolledAgent(t, 'i-0aaaaaaaaaaaaaaa2')).report('degraded', 'teleport /readyz: 503');
  const degraded = await world.run(['health']);
  t.equal(degraded.code, EXIT.unhealthy);
  t.match(degraded.stdout, /^unhealthy: 1 degraded of 3 instance\(s\)/);
  t.match(degraded.stdout, /^ROLE\s+READY\s+DEGRADED\s+TOTAL$/m);
  t.match(degraded.stdout, /^proxy\s+1\s+1\s+2$/m);
  t.match(degraded.stdout, /i-0aaaaaaaaaaaaaaa2\s+proxy\s+degraded\s+\d+s ago\s+teleport \/readyz: 503/);
  const asYaml = await world.run(['health', '-o', 'yaml']);
  t.equal(asYaml.code, EXIT.unhealthy);
  t.match(parseYaml(asYaml.stdout), { healthy: false, problems: ['1 degraded'], byRole: { proxy: { degraded: 1 } } });

  // Monitoring must tell "unhealthy" from "could not ask".
  const cannotAsk = await world.run(['health'], { TELEBOOT_TOKEN: 'tbk_nope' });
  t.equal(cannotAsk.code, EXIT.access);
});

t.test('settings set and get', async (t) => {
  const set = await world.run(['settings', 'set', 'clusterName=prod', 'authAddr=auth.internal:3025', 'region=eu-west-1']);
  t.equal(set.code, 0, set.stderr);
  t.match(set.stdout, /^saved clusterName, authAddr, region/);
  const nested = await world.run(['settings', 'set', 'storage.type=dynamodb', 'storage.tableName=teleport-state']);
  t.equal(nested.code, 0, nested.stderr);
  const file = join(world.home, 'settings.yaml');
  // Proxies on 3080 behind a load balancer on 443 (without one, the public port must be the web listener's).
  writeFileSync(file, 'proxyPublicAddr: teleport.example.com:443\nbehindLoadBalancer: true\ns3Bucket: example-certs\n');
  const fromFile = await world.run(['settings', 'set', '--file', file, 'ssmPrefix=/tp']);
  t.equal(fromFile.code, 0, fromFile.stderr);

  const all = await world.run(['settings', 'get', '-o', 'json']);
  t.match(JSON.parse(all.stdout), {
    clusterName: 'prod',
    authAddr: 'auth.internal:3025',
    region: 'eu-west-1',
    storage: { type: 'dynamodb', tableName: 'teleport-state' },
    proxyPublicAddr: 'teleport.example.com:443',
    s3Bucket: 'example-certs',
    ssmPrefix: '/tp',
  });
  t.equal((await world.run(['settings', 'get', 'storage.tableName'])).stdout, 'teleport-state\n');
  const table = await world.run(['settings', 'get']);
  t.match(table.stdout, /^storage\.type:\s+dynamodb$/m);

  const refused = await world.run(['settings', 'set', 'authAddr=auth.internal']);
  t.equal(refused.code, EXIT.failed);
  t.match(refused.stderr, /refused PATCH \/v1\/settings \(400\): authAddr: "auth.internal" is not host:port/);
  const malformed = await world.run(['settings', 'set', 'clusterName']);
  t.equal(malformed.code, EXIT.usage);
  t.match(malformed.stderr, /"clusterName" is not key=value/);
  const unknown = await world.run(['settings', 'get', 'nothingLikeThis']);
  t.equal(unknown.code, EXIT.notFound);
});

t.test('rules add, ls, rm', async (t) => {
  const added = await world.run(['rules', 'add', 'edges', '--selector', 'TeleportRole=proxy', '--role', 'proxy', '-o', 'json']);
  t.equal(added.code, 0, added.stderr);
  const rule = JSON.parse(added.stdout);
  t.match(rule, { name: 'edges', selector: { TeleportRole: 'proxy' }, role: 'proxy' });
  const first = await world.run([
    'rules',
    'add',
    'nodes',
    '--selector',
    'TeleportRole=node',
    '--roles',
    'node',
    '--label',
    'env=prod',
    '--position',
    '0',
  ]);
  t.equal(first.code, 0, first.stderr);
  const listed = await world.run(['rules', 'ls']);
  const lines = listed.stdout.trimEnd().split('\n');
  t.match(lines[0], /^#\s+NAME\s+SELECTOR\s+ROLE\s+LABELS\s+ID$/);
  t.match(lines[1], /^0\s+nodes\s+TeleportRole=node\s+node\s+env=prod\s/, '--position 0 puts it first');
  t.match(lines[2], new RegExp(`^1\\s+edges\\s+TeleportRole=proxy\\s+proxy\\s+-\\s+${rule.id}$`));

  t.equal((await world.run(['rules', 'rm', 'nodes'])).code, 0, 'by name');
  t.equal((await world.run(['rules', 'rm', rule.id])).code, 0, 'by id');
  t.same(JSON.parse((await world.run(['rules', 'ls', '-o', 'json'])).stdout), []);
  const gone = await world.run(['rules', 'rm', rule.id]);
  t.equal(gone.code, EXIT.notFound);
  t.match(gone.stderr, /rule .* not found; "teleboot rules ls" lists them/);
  const noRole = await world.run(['rules', 'add', 'x', '--selector', 'a=b']);
  t.equal(noRole.code, EXIT.usage);
});

t.test('tokens: the secret is printed once, on creation', async (t) => {
  const created = await world.run(['tokens', 'api', 'create', '--name', 'grafana', '--scope', 'monitor']);
  t.equal(created.code, 0, created.stderr);
  const secret = /^Token:\s+(\S+)$/m.exec(created.stdout)?.[1] ?? '';
  t.match(secret, /^tbk_/);
  t.match(created.stdout, 'shown this once');
  const listed = await world.run(['tokens', 'api', 'ls', '-o', 'json']);
  t.match(JSON.parse(listed.stdout), [
    { name: 'admin', scope: 'admin' },
    { name: 'grafana', scope: 'monitor' },
  ]);
  t.notMatch(listed.stdout, secret, 'lists never show a secret');
  t.notMatch((await world.run(['tokens', 'api', 'ls'])).stdout, secret);

  t.equal((await world.run(['instances', 'ls'], { TELEBOOT_TOKEN: secret })).code, 0, 'the token works');
  const asMonitor = await world.run(['tokens', 'api', 'ls'], { TELEBOOT_TOKEN: secret });
  t.equal(asMonitor.code, EXIT.access);
  t.match(asMonitor.stderr, /needs an API token with scope admin \(yours has monitor\)/);
  t.equal((await world.run(['tokens', 'api', 'rm', 'grafana'])).code, 0);
  t.equal((await world.run(['instances', 'ls'], { TELEBOOT_TOKEN: secret })).code, EXIT.access, 'revoked');

  const join = await world.run([
    'tokens',
    'join',
    'create',
    '--name',
    'lab',
    '--ttl',
    '1h',
    '--uses',
    '2',
    '--roles',
    'node',
    '-o',
    'json',
  ]);
  t.equal(join.code, 0, join.stderr);
  const joinToken = JSON.parse(join.stdout);
  t.match(joinToken, { name: 'lab', roles: ['node'], maxUses: 2, token: /^tbj_/ });
  const joins = await world.run(['tokens', 'join', 'ls']);
  t.match(joins.stdout, /^lab\s+node\s+active\s+0\/2\s/m);
  t.notMatch(joins.stdout, joinToken.token);
  t.equal((await world.run(['tokens', 'join', 'rm', joinToken.id])).code, 0);
  t.match((await world.run(['tokens', 'join', 'ls'])).stdout, /^lab\s+node\s+revoked/m);
  const badTtl = await world.run(['tokens', 'join', 'create', '--name', 'x', '--ttl', 'forever']);
  t.equal(badTtl.code, EXIT.failed);
  t.match(badTtl.stderr, /ttl/);
});

t.test('audit lists events and --follow prints new ones as they happen', async (t) => {
  const all = await world.run(['audit', '--last', '0', '-o', 'json']);
  const events = JSON.parse(all.stdout);
  t.ok(events.length > 5);
  t.same(
    events.map((e: { id: number }) => e.id),
    [...events.map((e: { id: number }) => e.id)].sort((a: number, b: number) => a - b),
    'oldest first',
  );
  const last = await world.run(['audit', '--last', '2', '-o', 'json']);
  t.same(JSON.parse(last.stdout), events.slice(-2));
  const target = await world.run(['audit', '--target', 'settings', '-o', 'yaml']);
  t.ok(parseYaml(target.stdout).every((e: { target: string }) => e.target === 'settings'));

  const follow = spawn(process.execPath, [CLI_BIN, 'audit', '--follow', '--last', '1', '--interval', '100ms', '-o', 'json'], {
    env: { ...process.env, ...world.env, HOME: world.home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => follow.kill('SIGKILL'));
  let out = '';
  follow.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await until('the last event', () => out.includes('\n'), 20_000);
  await world.control.rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaa9/assignment', { role: 'node' });
  await until('the new event', () => out.includes('i-0aaaaaaaaaaaaaaa9'), 20_000);
  const lines = out
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.equal(lines[0].id, events[events.length - 1].id, 'first the last event so far');
  t.match(lines[lines.length - 1], { action: 'assignment.set', target: 'i-0aaaaaaaaaaaaaaa9', actor: 'rest:admin' });
  const code = await new Promise((done) => {
    follow.once('exit', done);
    follow.kill('SIGINT');
  });
  t.equal(code, 0, 'Ctrl-C ends --follow cleanly');
});
