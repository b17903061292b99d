// A full boot with every kind of secret in play, then a search for each of
// them where they must never be: the logs of the control server and of the
// agents, the REST answers, and the control database. The agents run as
// separate processes: one enrolls with its signed EC2 identity document
// (DescribeInstances on) and becomes a proxy (join token from SSM, private
// key from S3), one with a join token created over REST.
import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { AGENT_BIN, AWS_ENV, runNode } from './support/harness';
import { startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('secrets', { ec2: { describe: true } });
});
t.teardown(() => world?.close());

/** The distinctive part of a secret: a PEM's first body line, or the value itself. */
function needles(secret: string): string[] {
  const pem = /-----BEGIN [A-Z ]+-----\s*([A-Za-z0-9+/=]{40,})/.exec(secret);
  return pem ? [pem[1].slice(0, 48)] : [secret.trim()];
}

t.test('no join token, private key, nonce or API token reaches a log, a REST answer or the database', async (t) => {
  const { control } = world;
  const apiToken = (await control.rest('POST', '/v1/api-tokens', { name: 'ops', scope: 'operator' })).body.token as string;
  const joinToken = (await control.rest('POST', '/v1/join-tokens', { name: 'lab', ttl: '1h', roles: ['node'] })).body.token as string;
  t.match(apiToken, /^tbk_/);
  t.match(joinToken, /^tbj_/);
  // The API token goes through the server's request handling, and so do refused ones.
  t.equal((await control.rest('GET', '/v1/instances', undefined, {}, apiToken)).status, 200);
  t.equal((await control.rest('GET', '/v1/instances', undefined, {}, apiToken + 'x')).status, 401);

  // Agent 1: EC2 identity, a proxy.
  const edge = await world.instance({ tags: { Name: 'edge' } });
  await control.rest('PUT', `/v1/instances/${edge.instance.instanceId}/assignment`, { role: 'proxy' });
  const edgeFiles = await world.agentConfig(edge, 'process');
  const first = await runNode(AGENT_BIN, ['once', '-c', edgeFiles.configFile], AWS_ENV);
  t.equal(first.code, 0, first.stderr + first.stdout);

  // Agent 2: the REST-created join token, a node.
  const lab = await world.instance();
  await control.rest('PUT', `/v1/instances/${lab.instance.instanceId}/assignment`, { role: 'node' });
  const labFiles = await world.agentConfig(lab, 'process');
  const tokenFile = join(labFiles.root, 'join-token');
  writeFileSync(tokenFile, joinToken + '\n', { mode: 0o600 });
  const doc = parse(readFileSync(labFiles.configFile, 'utf8'));
  doc.enrollment = { method: 'join_token', join_token_file: tokenFile };
  writeFileSync(labFiles.configFile, stringify(doc));
  const second = await runNode(AGENT_BIN, ['once', '-c', labFiles.configFile], AWS_ENV);
  t.equal(second.code, 0, second.stderr + second.stdout);

  // `once` has exited: the instance goes offline without heartbeats, so look at what it reported.
  const applied = (i: any) => i.status?.state === 'ready' && i.appliedGeneration === i.generation;
  const edgeView = await control.waitForInstance(edge.instance.instanceId, applied);
  t.equal(edgeView.enrolledVia, 'ec2');
  const labView = await control.waitForInstance(lab.instance.instanceId, applied);
  t.match(labView.enrolledVia, /^join-token:/);

  // The agent's own state: 0700 directory, 0600 files.
  const state = edgeFiles.stateDir;
  t.equal(statSync(state).mode & 0o777, 0o700, 'state dir 0700');
  for (const f of ['credentials.json', 'nonce']) t.equal(statSync(join(state, f)).mode & 0o777, 0o600, `${f} 0600`);
  for (const f of ['join-token', 'proxy-privkey.pem']) t.equal(statSync(join(edgeFiles.secretsDir, f)).mode & 0o777, 0o600, `${f} 0600`);

  const secrets: Record<string, string> = {
    'bootstrap join token': readFileSync(control.joinTokenFile, 'utf8'),
    'REST join token': joinToken,
    'operator API token': apiToken,
    'admin API token': control.adminToken,
    'Teleport proxy join token (SSM)': world.tokens.proxy,
    'Teleport node join token (SSM)': world.tokens.node,
    'proxy private key (S3)': readFileSync(join(edgeFiles.secretsDir, 'proxy-privkey.pem'), 'utf8'),
    'agent private key (EC2)': JSON.parse(readFileSync(join(state, 'credentials.json'), 'utf8')).keyPem,
    'agent private key (join token)': JSON.parse(readFileSync(join(labFiles.stateDir, 'credentials.json'), 'utf8')).keyPem,
    'EC2 enrollment nonce': readFileSync(join(state, 'nonce'), 'utf8'),
    'join-token enrollment nonce': readFileSync(join(labFiles.stateDir, 'nonce'), 'utf8'),
    'control CA key': readFileSync(join(control.dataDir, 'tls/ca-key.pem'), 'utf8'),
    'control server key': readFileSync(join(control.dataDir, 'tls/server-key.pem'), 'utf8'),
  };
  const logs = {
    'control server log': control.logs,
    'EC2 agent log': first.stdout + first.stderr,
    'join-token agent log': second.stdout + second.stderr,
  };
  t.match(control.logs, /"msg":"instance enrolled"/, 'the control server log was captured');
  t.match(first.stdout, /"msg":"enrolled"[\s\S]*"msg":"teleport ready"/, 'the EC2 agent log was captured');
  t.match(second.stdout, /"msg":"enrolled"/, 'the join-token agent log was captured');
  const rest = JSON.stringify([
    (await control.rest('GET', '/v1/instances?limit=1000')).body,
    (await control.rest('GET', '/v1/audit?limit=1000')).body,
    (await control.rest('GET', '/v1/api-tokens')).body,
    (await control.rest('GET', '/v1/join-tokens')).body,
  ]);
  const db = ['control.db', 'control.db-wal']
    .map((f) => join(control.dataDir, f))
    .filter(existsSync)
    .map((f) => readFileSync(f).toString('latin1'))
    .join('');
  for (const [what, secret] of Object.entries(secrets)) {
    for (const needle of needles(secret)) {
      t.ok(needle.length >= 16, `${what}: a real needle`);
      for (const [where, text] of Object.entries(logs)) t.notOk(text.includes(needle), `${what} is not in the ${where}`);
      t.notOk(rest.includes(needle), `${what} is not in a REST answer`);
      t.notOk(db.includes(needle), `${what} is not in the control database`);
    }
  }
});
