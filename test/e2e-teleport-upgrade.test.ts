// Teleport itself installed and upgraded by the agent, end to end:
// teleboot-control and teleboot-agent as separate processes, stand-in
// Teleport releases served as tarballs (with their .sha256) by s3rver, the
// SSM and IMDS emulators, and the stand-in teleport supervised by the agent.
// An operator sets the release in the settings; the host installs it, is
// upgraded side by side with the previous release kept, refuses a tarball
// whose checksum is wrong (still running the release it had), and goes back
// to the kept release without a download. Under real systemd (in a private
// namespace): teleport.service restarts on an upgrade only, and an upgrade the
// agent was stopped in the middle of (switched, not restarted) is finished.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readlinkSync, renameSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { runningVersion } from '../agent/diag';
import { AGENT_BIN, AWS_ENV, startAgentProcess, until } from './support/harness';
import { canRunSystemdNamespace, startSystemdNamespace } from './support/systemd-ns';
import { makeStandinRelease, publishRelease, releaseLayout } from './support/teleport-releases';
import { CLUSTER, startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('e2e-teleport-upgrade');
});
t.teardown(() => world?.close());

const can = canRunSystemdNamespace();
const V1 = makeStandinRelease('15.4.2');
const V2 = makeStandinRelease('16.0.1');
const BROKEN = makeStandinRelease('16.0.2');

t.before(async () => {
  await publishRelease(world.s3, CLUSTER.s3Bucket, V1);
  await publishRelease(world.s3, CLUSTER.s3Bucket, V2);
  // The checksum published beside it is not the tarball's.
  await publishRelease(world.s3, CLUSTER.s3Bucket, BROKEN, V2.sha256);
});

const setRelease = (version: string) => world.control.rest('PATCH', '/v1/settings', { teleport: { version } });
const readyAt = (generation: number) => (i: any) =>
  i.health === 'ready' && i.appliedGeneration === i.generation && i.generation >= generation;
/** The version the running Teleport reports, once it is `version`. */
const runs = (diagAddr: string, version: string) =>
  until(`teleport ${version} to run`, async () => (await runningVersion(diagAddr)) === version && version, 30_000);

/**
 * A node host without Teleport: its commands go where the AMI would have
 * them (nothing there yet), releases under its own opt/teleport.
 */
async function nodeHost(t: Test, mode: 'process' | 'systemd') {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  t.equal((await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { roles: ['node'] })).status, 200);
  // Deregistered when the subtest ends, after its agent stops (tap runs teardowns last in, first out), as an operator
  // does for a terminated instance: a stopped host still counted online would hold up the next subtest's rollout.
  t.teardown(async () => {
    await world.control.rest('DELETE', `/v1/instances/${id}`);
  });
  const files = await world.agentConfig(imds, mode);
  const { bin, installDir } = releaseLayout(files);
  t.notOk(existsSync(join(bin, 'teleport')), 'no teleport on the host at first');
  const reports = () => execFileSync(join(bin, 'teleport'), ['version'], { encoding: 'utf8' });
  const current = () => readlinkSync(join(installDir, 'current'));
  return { id, files, bin, installDir, reports, current };
}

t.test(
  'under systemd: an upgrade restarts teleport.service, a refused one does not, an interrupted one is finished',
  { skip: !can.ok && `needs systemd in a namespace: ${can.reason}` },
  async (t) => {
    t.equal((await setRelease('15.4.2')).status, 200);
    const { id, files, installDir, reports, current } = await nodeHost(t, 'systemd');
    const ns = await startSystemdNamespace();
    t.teardown(() => ns.stop());
    let output = '';
    const startAgent = () => {
      const agent = ns.spawn([process.execPath, AGENT_BIN, 'run', '-c', files.configFile], {
        env: { ...AWS_ENV, NODE_OPTIONS: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      agent.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      agent.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      const stop = async () => {
        if (agent.exitCode !== null || agent.signalCode !== null) return;
        const exited = new Promise((r) => agent.once('exit', r));
        agent.kill('SIGTERM');
        await exited;
      };
      t.teardown(stop);
      return stop;
    };
    const fail = (err: Error) => t.fail(`${err.message}\n${output}`);
    const mainPid = async () => (await ns.show('teleport.service', ['MainPID'])).MainPID;

    const stopAgent = startAgent();
    let instance = await world.control.waitForInstance(id, readyAt(1), 60_000).catch(fail);
    t.match(reports(), /^Teleport v15\.4\.2 /);
    await runs(files.diagAddr, '15.4.2');
    const first = await mainPid();

    t.equal((await setRelease('16.0.1')).status, 200);
    instance = await world.control.waitForInstance(id, readyAt(instance.generation + 1), 60_000).catch(fail);
    await runs(files.diagAddr, '16.0.1');
    const upgraded = await mainPid();
    t.not(upgraded, first, 'teleport.service was restarted on the new release');

    t.equal((await setRelease('16.0.2')).status, 200);
    const failed = await world.control
      .waitForInstance(id, (i) => i.generation > instance.generation && i.status?.state === 'failed', 60_000)
      .catch(fail);
    t.match(failed.status.message, /refusing to install it/);
    t.equal(await mainPid(), upgraded, 'a refused release restarts nothing');
    t.equal(await runningVersion(files.diagAddr), '16.0.1');

    // The agent stops after switching to a release but before restarting Teleport (systemd keeps Teleport running).
    await stopAgent();
    t.equal((await setRelease('15.4.2')).status, 200);
    const tmp = join(installDir, '.current.interrupted');
    symlinkSync('15.4.2', tmp);
    renameSync(tmp, join(installDir, 'current'));
    t.match(reports(), /^Teleport v15\.4\.2 /, 'the binary is already the new release');
    t.equal(await runningVersion(files.diagAddr), '16.0.1', 'but teleport still runs the old one');
    startAgent();
    await world.control.waitForInstance(id, readyAt(failed.generation + 1), 60_000).catch(fail);
    await runs(files.diagAddr, '15.4.2');
    t.not(await mainPid(), upgraded, 'the agent restarted it on the installed release');
    t.equal(current(), '15.4.2');
  },
);

t.test('install, upgrade, a wrong checksum refused, rollback to the kept release', async (t) => {
  t.equal((await setRelease('15.4.2')).status, 200);
  const { id, files, bin, installDir, reports, current } = await nodeHost(t, 'process');
  // Links a killed switch left behind (symlink to a temporary name, not yet renamed): removed at start.
  const staleLinks = [join(bin, '.teleport.0123456789ab.tmp'), join(installDir, '.current.0123456789ab.tmp')];
  for (const link of staleLinks) {
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync('/nowhere', link);
  }

  const { logs } = startAgentProcess(t, files);
  const fail = (err: Error) => t.fail(`${err.message}\n${logs()}`);

  let instance = await world.control.waitForInstance(id, readyAt(1), 60_000).catch(fail);
  t.match(reports(), /^Teleport v15\.4\.2 /, 'the host installed the release the settings name');
  t.equal(current(), '15.4.2');
  t.equal(readlinkSync(join(bin, 'tctl')), join(installDir, 'current/tctl'), 'tctl and tsh switch with teleport');
  for (const link of staleLinks) t.throws(() => lstatSync(link), { code: 'ENOENT' }, `removed: ${link}`);
  t.equal(await runs(files.diagAddr, '15.4.2'), '15.4.2', 'and runs it');

  // An upgrade: a rollout of the release setting.
  t.equal((await setRelease('16.0.1')).status, 200);
  instance = await world.control.waitForInstance(id, readyAt(instance.generation + 1), 60_000).catch(fail);
  t.match(reports(), /^Teleport v16\.0\.1 /);
  t.equal(current(), '16.0.1');
  t.equal(readlinkSync(join(installDir, 'previous')), '15.4.2', 'the previous release is kept');
  t.equal(await runs(files.diagAddr, '16.0.1'), '16.0.1', 'teleport was restarted on the new release');

  // A tarball that does not match its published checksum: the host fails, and keeps running what it ran.
  t.equal((await setRelease('16.0.2')).status, 200);
  const failed = await world.control
    .waitForInstance(id, (i) => i.generation > instance.generation && i.status?.state === 'failed', 60_000)
    .catch(fail);
  t.match(
    failed.status.message,
    /teleport-v16\.0\.2-linux-\w+-bin\.tar\.gz has SHA-256 [0-9a-f]{64}, but .*\.sha256 says [0-9a-f]{64}: refusing to install it/,
  );
  t.equal(failed.appliedGeneration, instance.generation, 'the failed generation is not applied');
  t.equal(current(), '16.0.1', 'the release in use is unchanged');
  t.notOk(existsSync(join(installDir, '16.0.2')), 'nothing of the refused release is installed');
  t.equal(await runningVersion(files.diagAddr), '16.0.1', 'and teleport still runs it');

  // Back to the kept release: no download (the tarball is gone from the bucket).
  await world.s3.client.send(new DeleteObjectCommand({ Bucket: CLUSTER.s3Bucket, Key: V1.key }));
  t.equal((await setRelease('15.4.2')).status, 200);
  await world.control.waitForInstance(id, readyAt(failed.generation + 1), 60_000).catch(fail);
  t.match(reports(), /^Teleport v15\.4\.2 /, 'rolled back');
  t.equal(readlinkSync(join(installDir, 'previous')), '16.0.1');
  t.equal(await runs(files.diagAddr, '15.4.2'), '15.4.2');

  // Teleport's version rule, when saved: skipping a major version is refused, naming the host.
  const skip = await setRelease('17.0.0');
  t.equal(skip.status, 400);
  t.match(JSON.stringify(skip.body), new RegExp(`${id}[^:]*: would skip a major version \\(15\\.4\\.2 to 17\\.0\\.0\\)`));
  // With auth servers on 15 (a rule assigns them), a node may not go to 16 first.
  const rule = await world.control.rest('POST', '/v1/rules', { name: 'auth-servers', selector: { role: 'auth' }, role: 'auth' });
  t.equal(rule.status, 201, rule.status === 201 ? 'a rule assigns auth servers' : JSON.stringify(rule.body));
  const ahead = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { roles: ['node'], teleport: { version: '16.0.1' } });
  t.equal(ahead.status, 400);
  t.match(
    JSON.stringify(ahead.body),
    new RegExp(`${id}: would run a newer major version \\(16\\.0\\.1\\) than the auth servers \\(v15\\); upgrade the auth servers first`),
  );
});
