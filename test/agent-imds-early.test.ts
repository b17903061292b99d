// The packaged agent starts its instance metadata reads before its modules
// load (agent/imds-early.ts); the identity source takes them over. Against
// the IMDSv2 emulator: the identity is the same as read by the SDK client
// alone, with one session token and each path read once; reads started for
// another endpoint are not used; a read that failed early is read again.
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImdsIdentitySource } from '../agent/identity';
import { configuredEndpoint, startEarlyImds, takeEarlyImds } from '../agent/imds-early';
import { fakeInstance, startImdsEmulator, type ImdsEmulator } from './emulators/imds';
import { removeDir, scratchDir } from './support/harness';

const dir = scratchDir('imds-early');
t.teardown(() => removeDir(dir));

async function emulator(t: Test, tags?: Record<string, string>): Promise<ImdsEmulator> {
  const imds = await startImdsEmulator(fakeInstance({ tags }));
  t.teardown(() => imds.close());
  return imds;
}

/** agent.yaml naming this endpoint, as an operator writes it (other sections around it). */
function agentYaml(name: string, endpoint: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `control:\n  endpoints: [control.internal:7443]\n  ca_file: /etc/teleboot/ca.pem\n` +
      `aws:\n  region: us-east-1 # the instance's own\n  imds_endpoint: "${endpoint}"\nlog_level: info\n`,
  );
  return file;
}

const reads = (imds: ImdsEmulator, method: string, path: string) =>
  imds.requests.filter((r) => r.method === method && r.path === path).length;

t.test('reads started early become the identity: one token, each path read once', async (t) => {
  const imds = await emulator(t, { TeleportRole: 'node', Name: 'web 1' });
  startEarlyImds(['node', 'teleboot-agent', 'once', '-c', agentYaml('early', imds.endpoint)]);
  const identity = await new ImdsIdentitySource(imds.endpoint).identity();
  t.equal(identity.instanceId, imds.instance.instanceId);
  t.equal(identity.hostname, imds.instance.hostname);
  t.same(identity.tags, { TeleportRole: 'node', Name: 'web 1' });
  t.equal(reads(imds, 'PUT', '/latest/api/token'), 1, 'one session token');
  t.equal(reads(imds, 'GET', '/latest/dynamic/instance-identity/document'), 1, 'the document read once');
  t.equal(reads(imds, 'GET', '/latest/meta-data/tags/instance'), 1, 'the tag keys read once');
  t.ok(
    imds.requests.every((r) => r.method === 'PUT' || r.token),
    'every read carries the session token',
  );
});

t.test('started twice (the packaged loader, then the bundle): the reads under way are kept, not sent again', async (t) => {
  const imds = await emulator(t);
  const argv = ['node', 'teleboot-agent', 'once', '-c', agentYaml('twice', imds.endpoint)];
  startEarlyImds(argv);
  startEarlyImds(argv);
  const identity = await new ImdsIdentitySource(imds.endpoint).identity();
  t.equal(identity.instanceId, imds.instance.instanceId);
  t.equal(reads(imds, 'PUT', '/latest/api/token'), 1, 'one session token');
  t.equal(reads(imds, 'GET', '/latest/dynamic/instance-identity/document'), 1, 'the document read once');
});

t.test('an instance without tags in its metadata: no tags, as read by the SDK client', async (t) => {
  const imds = await emulator(t);
  startEarlyImds(['node', 'teleboot-agent', 'run', `--config=${agentYaml('untagged', imds.endpoint)}`]);
  const identity = await new ImdsIdentitySource(imds.endpoint).identity();
  t.same(identity.tags, {});
  t.equal(reads(imds, 'GET', '/latest/meta-data/tags/instance'), 1, 'its 404 is final, as for the SDK client');
});

t.test('reads started for another endpoint are not used', async (t) => {
  const named = await emulator(t);
  const used = await emulator(t);
  startEarlyImds(['node', 'teleboot-agent', 'once', '--config', agentYaml('other', named.endpoint)]);
  const identity = await new ImdsIdentitySource(used.endpoint).identity();
  t.equal(identity.instanceId, used.instance.instanceId, 'the identity comes from the endpoint the agent uses');
  t.equal(reads(used, 'PUT', '/latest/api/token'), 1);
});

t.test('a failed early token: the SDK client fetches one, and the reads follow', async (t) => {
  const imds = await emulator(t);
  imds.failNext(1, 503);
  startEarlyImds(['node', 'teleboot-agent', 'once', '-c', agentYaml('failed', imds.endpoint)]);
  const identity = await new ImdsIdentitySource(imds.endpoint).identity();
  t.equal(identity.instanceId, imds.instance.instanceId);
  t.equal(reads(imds, 'PUT', '/latest/api/token'), 2, 'the early token request failed; one more');
});

t.test('nothing is read for commands that need no identity, or without a readable agent.yaml', async (t) => {
  const imds = await emulator(t);
  startEarlyImds(['node', 'teleboot-agent', 'version', '-c', agentYaml('version', imds.endpoint)]);
  startEarlyImds(['node', 'teleboot-agent', 'once', '-c', join(dir, 'missing.yaml')]);
  await new Promise((r) => setTimeout(r, 200));
  t.same(imds.requests, []);
});

t.test('an endpoint this reader cannot follow: nothing is sent early, never to the default address', async (t) => {
  const imds = await emulator(t);
  const file = join(dir, 'flow.yaml');
  writeFileSync(file, `aws: {region: us-east-1, imds_endpoint: "${imds.endpoint}"}\n`);
  startEarlyImds(['node', 'teleboot-agent', 'once', '-c', file]);
  t.equal(takeEarlyImds('http://169.254.169.254'), undefined, 'no reads started for the default address');
  t.equal(takeEarlyImds(imds.endpoint), undefined, 'nor for the configured one (the SDK client reads it)');
  await new Promise((r) => setTimeout(r, 200));
  t.same(imds.requests, []);
});

t.test("agent.yaml's aws.imds_endpoint, read without the YAML library", async (t) => {
  t.equal(configuredEndpoint('aws:\n  imds_endpoint: http://127.0.0.1:1338\n'), 'http://127.0.0.1:1338');
  t.equal(configuredEndpoint("aws:\n  region: x\n  imds_endpoint: 'http://[fd00:ec2::254]' # IPv6\n"), 'http://[fd00:ec2::254]');
  t.equal(configuredEndpoint('other:\n  imds_endpoint: http://a\naws:\n  region: x\n'), undefined, 'only under aws');
  t.equal(configuredEndpoint('aws: {imds_endpoint: http://a}\n'), undefined, 'flow style: not read here (the SDK reads)');
});
