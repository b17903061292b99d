// `teleboot-agent plan`: what would be written, with secrets masked, and
// nothing written or started.
import t from 'tap';
import { existsSync } from 'node:fs';
import { AGENT_BIN, AWS_ENV, runNode } from './support/harness';
import { CLUSTER, startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('plan');
});
t.teardown(() => world?.close());

const plan = (configFile: string) => runNode(AGENT_BIN, ['plan', '-c', configFile], AWS_ENV);

t.test('plan prints the files a proxy would get, masks secrets, and writes nothing', async (t) => {
  const imds = await world.instance();
  await world.control.rest('PUT', `/v1/instances/${imds.instance.instanceId}/assignment`, { role: 'proxy' });
  const files = await world.agentConfig(imds, 'process');
  const r = await plan(files.configFile);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`instance ${imds.instance.instanceId}: roles proxy, generation 1`));
  t.match(r.stdout, /create\s+\S+\/join-token \(mode 600\) \[secret, \d+ bytes, not shown\]/);
  t.match(r.stdout, /create\s+\S+\/proxy-privkey\.pem \(mode 600\) \[secret/);
  t.match(r.stdout, /create\s+\S+\/etc\/teleport\.yaml \(mode 600\)/);
  t.match(r.stdout, new RegExp(`public_addr:\\s+- ${CLUSTER.proxyPublicAddr.replace('.', '\\.')}`));
  t.match(r.stdout, /--- teleport.service[\s\S]*ExecStart=/);
  t.notMatch(r.stdout + r.stderr, new RegExp(world.tokens.proxy), 'the join token is not printed');
  t.notMatch(r.stdout, /BEGIN (EC )?PRIVATE KEY/, 'the private key is not printed');
  t.notOk(existsSync(files.teleportConfig), 'teleport.yaml not written');
  t.notOk(existsSync(files.secretsDir), 'no secrets written');
  t.notOk(existsSync(files.stateDir), 'not even the agent state');
  const reads = imds.requests.filter((r) => r.method === 'GET');
  t.ok(reads.length >= 3, 'identity read from instance metadata');
  t.ok(
    reads.every((r) => r.token),
    'every metadata read carried an IMDSv2 session token',
  );
  t.ok(imds.requests.filter((r) => r.method === 'PUT').length < reads.length, 'one session token serves several reads');
});

t.test('plan for an instance without a role says so', async (t) => {
  const imds = await world.instance();
  const r = await plan((await world.agentConfig(imds, 'process')).configFile);
  t.equal(r.code, 0);
  t.match(r.stdout, /has no assignment yet; nothing would be written/);
});
