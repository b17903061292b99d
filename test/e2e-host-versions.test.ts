// Hosts report the Teleport version they run, and the version rules judge
// those versions, end to end: teleboot-control and teleboot-agent as
// separate processes, stand-in Teleport releases served as tarballs by
// s3rver. An auth server whose upgrade failed (a wrong checksum) still runs
// the old major version: a node may not go past it, although the plan says
// the auth server runs the new one; once it does, the node may follow.
import t, { type Test } from 'tap';
import { startAgentProcess } from './support/harness';
import { runCli } from './support/cli';
import { makeStandinRelease, publishRelease, releaseLayout } from './support/teleport-releases';
import { CLUSTER, startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('e2e-host-versions');
  await publishRelease(world.s3, CLUSTER.s3Bucket, makeStandinRelease('15.4.2'));
  await publishRelease(world.s3, CLUSTER.s3Bucket, makeStandinRelease('16.0.1'));
  // The checksum published beside it is another tarball's: the host refuses it and keeps its release.
  await publishRelease(world.s3, CLUSTER.s3Bucket, makeStandinRelease('16.0.2'), makeStandinRelease('16.0.1').sha256);
});
t.teardown(() => world?.close());

const assign = (id: string, body: Record<string, unknown>) => world.control.rest('PUT', `/v1/instances/${id}/assignment`, body);

/** A host without Teleport, assigned `roles`, its agent running. */
async function boot(t: Test, roles: string[]) {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  t.equal((await assign(id, { roles })).status, 200);
  const files = await world.agentConfig(imds, 'process');
  releaseLayout(files);
  const { logs } = startAgentProcess(t, files);
  return { id, logs };
}

t.test('hosts report the version they run; a node may not pass an auth server whose upgrade failed', async (t) => {
  t.equal((await world.control.rest('PATCH', '/v1/settings', { teleport: { version: '15.4.2' } })).status, 200);
  const auth = await boot(t, ['auth']);
  const node = await boot(t, ['node']);
  const fail = (h: { logs: () => string }) => (err: Error) => t.fail(`${err.message}\n${h.logs()}`);
  const runs = (version: string) => (i: any) => i.health === 'ready' && i.status?.teleportVersion === version;
  for (const h of [auth, node]) await world.control.waitForInstance(h.id, runs('15.4.2'), 90_000).catch(fail(h));

  // The version in the instance view, the list and the CLI.
  const listed = await world.control.rest('GET', '/v1/instances');
  t.same(
    listed.body.items.filter((i: any) => [auth.id, node.id].includes(i.instanceId)).map((i: any) => i.status.teleportVersion),
    ['15.4.2', '15.4.2'],
    'GET /v1/instances',
  );
  const env = {
    TELEBOOT_ADDR: `https://127.0.0.1:${world.control.restPort}`,
    TELEBOOT_CACERT: world.control.caFile,
    TELEBOOT_TOKEN: world.control.adminToken,
  };
  const shown = await runCli(['instances', 'show', node.id], env);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /^Teleport:\s+15\.4\.2$/m, 'teleboot instances show');
  const table = await runCli(['instances', 'ls'], { ...env, COLUMNS: '200' });
  const header = table.stdout.split('\n')[0];
  const row = table.stdout.split('\n').find((l) => l.startsWith(node.id)) ?? '';
  t.equal(row.slice(header.indexOf('TELEPORT')).split(/\s+/)[0], '15.4.2', 'teleboot instances ls: the TELEPORT column');

  // The auth server should run 16.0.2, but the tarball does not match its checksum: it keeps running 15.4.2.
  t.equal((await assign(auth.id, { roles: ['auth'], teleport: { version: '16.0.2' } })).status, 200);
  const failed = await world.control.waitForInstance(auth.id, (i) => i.status?.state === 'failed', 90_000).catch(fail(auth));
  t.match(failed.status.message, /refusing to install it/);
  t.equal(failed.status.teleportVersion, '15.4.2', 'the failed auth server reports the version it still runs');

  // Planned, the auth server runs 16; running, it is on 15: a node on 16 would be newer than it.
  const ahead = await assign(node.id, { roles: ['node'], teleport: { version: '16.0.1' } });
  t.equal(ahead.status, 400);
  t.match(
    JSON.stringify(ahead.body),
    new RegExp(
      `${node.id}: would run a newer major version \\(16\\.0\\.1\\) than the auth servers \\(v15\\); upgrade the auth servers first`,
    ),
  );

  // The auth server upgraded for real: the node may follow, and reports the version it then runs.
  t.equal((await assign(auth.id, { roles: ['auth'], teleport: { version: '16.0.1' } })).status, 200);
  await world.control.waitForInstance(auth.id, runs('16.0.1'), 90_000).catch(fail(auth));
  const follows = await assign(node.id, { roles: ['node'], teleport: { version: '16.0.1' } });
  t.equal(follows.status, 200, JSON.stringify(follows.body));
  await world.control.waitForInstance(node.id, runs('16.0.1'), 90_000).catch(fail(node));
});
