// Installing Teleport releases side by side, with real parts: stand-in
// release tarballs served by s3rver, the agent's S3 client (AwsSecretSource)
// streaming them, the host's tar unpacking them, and the unpacked
// `teleport version` run. What an operator checks on a host: where
// /usr/local/bin/teleport points, what it reports, which releases are kept.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { createLogger } from '../contract/log';
import { effectiveRelease, type EffectiveRelease } from '../contract/teleport-release';
import { AwsSecretSource } from '../agent/aws';
import { installDesiredRelease, ReleaseError, TeleportInstaller, type InstallLayout } from '../agent/teleport-install';
import { runningVersion } from '../agent/diag';
import { persistWith } from '../agent/persist';
import { DEFAULT_CLUSTER_SETTINGS } from '../contract/settings';
import { packageCommand } from '../agent/teleport-package';
import { parseChecksumFile } from '../agent/teleport-release';
import { AWS_ENV, freePort, removeDir, scratchDir, startS3, until, type S3Server } from './support/harness';
import { makeStandinRelease, publishRelease } from './support/teleport-releases';

const BUCKET = 'releases-bucket';
let s3: S3Server;
let dir: string;
t.before(async () => {
  Object.assign(process.env, AWS_ENV);
  dir = scratchDir('teleport-install');
  s3 = await startS3([BUCKET], join(dir, 's3'));
});
t.teardown(async () => {
  await s3?.close();
  if (dir) removeDir(dir);
});

const V1 = makeStandinRelease('15.4.2');
const V2 = makeStandinRelease('16.0.1');

const release = (version: string, extra: Partial<EffectiveRelease> = {}): EffectiveRelease => ({
  version,
  edition: 'oss',
  source: 's3',
  bucket: BUCKET,
  fips: false,
  ...extra,
});

/** agent.yaml's teleport section for a layout. */
const agentTeleport = (layout: InstallLayout) => ({
  binary: layout.links.teleport,
  tctl: layout.links.tctl,
  tsh: layout.links.tsh,
  installDir: layout.installDir,
  readyTimeoutMs: 20_000,
  user: 'root',
  group: 'root',
});

/** A host of its own: an install directory and bin links inside `root`. */
function host(name: string) {
  const root = join(dir, name);
  const layout: InstallLayout = {
    installDir: join(root, 'opt/teleport'),
    links: { teleport: join(root, 'bin/teleport'), tctl: join(root, 'bin/tctl'), tsh: join(root, 'bin/tsh') },
  };
  const source = new AwsSecretSource({ region: 'us-east-1', s3Endpoint: s3.endpoint, s3ForcePathStyle: true });
  const installer = new TeleportInstaller(layout, () => source, createLogger('test', 'silent'));
  const reports = (program = 'teleport') => execFileSync(layout.links[program as 'teleport'], ['version'], { encoding: 'utf8' }).trim();
  const kept = () => readdirSync(layout.installDir).sort();
  return { root, layout, installer, reports, kept };
}

t.before(async () => {
  await publishRelease(s3, BUCKET, V1);
  await publishRelease(s3, BUCKET, V2);
});

t.test('installs a release, upgrades side by side, keeps the previous one and goes back to it without a download', async (t) => {
  const h = host('upgrade');
  const first = await h.installer.ensure(release('15.4.2'));
  t.match(first, { changed: true, downloaded: true, from: undefined });
  t.match(h.reports(), /^Teleport v15\.4\.2 /, 'teleport reports the release');
  t.match(h.reports('tsh'), /^Teleport v15\.4\.2 /, 'tsh is of the same release');
  t.equal(realpathSync(h.layout.links.tctl), join(realpathSync(h.layout.installDir), '15.4.2/tctl'), 'so is tctl');
  t.equal(readlinkSync(h.layout.links.teleport), join(h.layout.installDir, 'current/teleport'), 'the command goes through current');

  t.match(await h.installer.ensure(release('15.4.2')), { changed: false, downloaded: false }, 'the same release again: nothing to do');

  const up = await h.installer.ensure(release('16.0.1'));
  t.match(up, { changed: true, downloaded: true, from: { version: '15.4.2' } });
  t.match(h.reports(), /^Teleport v16\.0\.1 /);
  t.equal(readlinkSync(join(h.layout.installDir, 'current')), '16.0.1');
  t.equal(readlinkSync(join(h.layout.installDir, 'previous')), '15.4.2', 'the previous release is kept');
  t.same(h.kept(), ['15.4.2', '16.0.1', 'current', 'previous']);

  // Going back needs no download: the tarball is gone from the bucket.
  await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: V1.key }));
  t.teardown(() => publishRelease(s3, BUCKET, V1));
  const back = await h.installer.ensure(release('15.4.2'));
  t.match(back, { changed: true, downloaded: false, from: { version: '16.0.1' } });
  t.match(h.reports(), /^Teleport v15\.4\.2 /);
  t.equal(readlinkSync(join(h.layout.installDir, 'previous')), '16.0.1', 'the release rolled back from is now the kept one');
});

t.test('a third release prunes the oldest, keeping current and previous', async (t) => {
  const h = host('prune');
  const V3 = makeStandinRelease('16.1.0');
  await publishRelease(s3, BUCKET, V3);
  for (const v of ['15.4.2', '16.0.1', '16.1.0']) await h.installer.ensure(release(v));
  t.same(h.kept(), ['16.0.1', '16.1.0', 'current', 'previous']);
  t.match(h.reports(), /^Teleport v16\.1\.0 /);
});

/** A host on 15.4.2, then `attempt`; the host must still run 15.4.2 with nothing half-installed. */
async function refused(t: Test, name: string, attempt: EffectiveRelease, why: RegExp) {
  const h = host(name);
  await h.installer.ensure(release('15.4.2'));
  await t.rejects(h.installer.ensure(attempt), why);
  const err = await h.installer.ensure(attempt).catch((e: unknown) => e);
  t.ok(err instanceof ReleaseError, 'a ReleaseError: the host is failed, not retried');
  t.match(h.reports(), /^Teleport v15\.4\.2 /, 'the host still runs the release it had');
  t.same(h.kept(), ['15.4.2', 'current'], 'nothing of the refused release is left, not even a scratch directory');
}

t.test('a release directory that fails its check is replaced by a fresh download, and only once that succeeded', async (t) => {
  const h = host('damaged');
  await h.installer.ensure(release('15.4.2'));
  // Changed by hand: the binary no longer reports the release its directory is named after.
  const binary = join(h.layout.installDir, '15.4.2/teleport');
  writeFileSync(binary, '#!/bin/sh\necho "Teleport v15.4.1 git: go1.22"\n');
  await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: V1.key }));
  await t.rejects(h.installer.ensure(release('15.4.2')), /teleport-v15\.4\.2-linux-\w+-bin\.tar\.gz does not exist/);
  t.match(h.reports(), /^Teleport v15\.4\.1 /, 'a failed download leaves the directory as it was, no dangling link');
  await publishRelease(s3, BUCKET, V1);
  t.match(await h.installer.ensure(release('15.4.2')), { changed: true, downloaded: true });
  t.match(h.reports(), /^Teleport v15\.4\.2 /, 'replaced');
  t.same(h.kept(), ['15.4.2', 'current']);
});

t.test('a tarball whose checksum does not match its .sha256 is refused', async (t) => {
  const bad = makeStandinRelease('16.0.2');
  await publishRelease(s3, BUCKET, bad, 'ab'.repeat(32));
  await refused(
    t,
    'checksum',
    release('16.0.2'),
    /has SHA-256 [0-9a-f]{64}, but s3:\/\/releases-bucket\/teleport\/teleport-v16\.0\.2-linux-.*\.sha256 says abab/,
  );
});

t.test('a release that is not in the bucket is refused, naming the object', async (t) => {
  await refused(
    t,
    'missing',
    release('16.9.9'),
    /s3:\/\/releases-bucket\/teleport\/teleport-v16\.9\.9-linux-\w+-bin\.tar\.gz\.sha256 does not exist/,
  );
});

t.test('a release whose teleport reports another version is refused', async (t) => {
  const liar = makeStandinRelease('16.0.3', { reports: '16.0.4' });
  await publishRelease(s3, BUCKET, liar);
  await refused(t, 'liar', release('16.0.3'), /: teleport\/teleport reports Teleport v16\.0\.4, expected Teleport v16\.0\.3/);
});

t.test('a tarball that is no Teleport release (no teleport/ directory) is refused', async (t) => {
  const staging = join(dir, 'not-a-release');
  mkdirSync(join(staging, 'other'), { recursive: true });
  writeFileSync(join(staging, 'other/readme'), 'hello\n');
  execFileSync('tar', ['-czf', join(staging, 'r.tgz'), '-C', staging, 'other']);
  const tarball = readFileSync(join(staging, 'r.tgz'));
  const key = makeStandinRelease('16.0.5').key;
  await publishRelease(s3, BUCKET, {
    version: '16.0.5',
    edition: 'oss',
    key,
    tarball,
    sha256: createHash('sha256').update(tarball).digest('hex'),
  });
  await refused(
    t,
    'not-a-release',
    release('16.0.5'),
    /holds no teleport\/ or teleport-ent\/ directory: is it a Teleport release tarball\?/,
  );
});

t.test('an enterprise release comes from teleport-ent-v...; an OSS binary does not pass for it', async (t) => {
  const ent = makeStandinRelease('16.0.1', { edition: 'enterprise' });
  t.match(ent.key, /^teleport\/teleport-ent-v16\.0\.1-linux-\w+-bin\.tar\.gz$/);
  await publishRelease(s3, BUCKET, ent);
  const h = host('enterprise');
  await h.installer.ensure(release('16.0.1'));
  const up = await h.installer.ensure(release('16.0.1', { edition: 'enterprise' }));
  t.match(up, { changed: true, downloaded: true, from: { edition: 'oss' } });
  t.match(h.reports(), /^Teleport Enterprise v16\.0\.1 /);
  t.same(h.kept(), ['16.0.1', '16.0.1-ent', 'current', 'previous']);
});

t.test('a host whose Teleport came with the AMI keeps it for a rollback', async (t) => {
  const h = host('ami');
  mkdirSync(join(h.root, 'bin'), { recursive: true });
  const baked = makeStandinRelease('15.4.2');
  // Plain files, as an AMI build leaves them.
  const unpack = join(h.root, 'unpack');
  mkdirSync(unpack);
  writeFileSync(join(unpack, 'r.tgz'), baked.tarball);
  execFileSync('tar', ['-xzf', join(unpack, 'r.tgz'), '-C', unpack]);
  for (const p of ['teleport', 'tctl', 'tsh']) execFileSync('cp', [join(unpack, 'teleport', p), join(h.root, 'bin', p)]);
  chmodSync(join(h.root, 'bin/teleport'), 0o755);
  await h.installer.ensure(release('16.0.1'));
  t.equal(readlinkSync(join(h.layout.installDir, 'previous')), '15.4.2', "the AMI's release is kept");
  await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: V1.key }));
  t.teardown(() => publishRelease(s3, BUCKET, V1));
  t.match(await h.installer.ensure(release('15.4.2')), { changed: true, downloaded: false });
  t.match(h.reports(), /^Teleport v15\.4\.2 /);
});

t.test('a Teleport still running the release it replaced is restarted, although the binary is already right', async (t) => {
  // As after an agent stopped between the switch and the restart (systemd keeps Teleport running).
  const h = host('stale-process');
  await h.installer.ensure(release('15.4.2'));
  const diagAddr = `127.0.0.1:${await freePort()}`;
  const config = join(h.root, 'teleport.yaml');
  writeFileSync(
    config,
    `version: v3\nteleport:\n  diag_addr: ${diagAddr}\n  auth_token: ${join(h.root, 'token')}\nauth_service: {enabled: true}\nproxy_service: {enabled: false}\nssh_service: {enabled: false}\n`,
  );
  writeFileSync(join(h.root, 'token'), 'x\n');
  const old = spawn(h.layout.links.teleport, ['start', `--config=${config}`], { stdio: 'ignore' });
  t.teardown(() => {
    old.kill('SIGKILL');
  });
  t.equal(await until('the old teleport to answer', () => runningVersion(diagAddr)), '15.4.2');
  await h.installer.ensure(release('16.0.1'));

  const log = createLogger('test', 'silent');
  const deps = {
    config: { teleport: { ...agentTeleport(h.layout), diagAddr } },
    log,
    persist: persistWith(log, { initialMs: 10, maxMs: 100 }),
    secrets: () => new AwsSecretSource({ region: 'us-east-1', s3Endpoint: s3.endpoint, s3ForcePathStyle: true }),
  };
  const desired = (version: string) => ({
    assignment: { roles: ['node' as const], labels: {} },
    cluster: { ...DEFAULT_CLUSTER_SETTINGS, s3Bucket: BUCKET, teleport: { version } },
  });
  t.match(await installDesiredRelease(desired('16.0.1'), deps, undefined, () => {}), { changed: true, downloaded: false }, 'restart');
  t.match(await installDesiredRelease(desired('15.4.2'), deps, undefined, () => {}), { changed: true, downloaded: false });
  t.match(h.reports(), /^Teleport v15\.4\.2 /);
  t.match(
    await installDesiredRelease(desired('15.4.2'), deps, undefined, () => {}),
    { changed: false },
    'running what is installed: left alone',
  );
  const none = await installDesiredRelease({ ...desired('1.0.0'), cluster: { ...DEFAULT_CLUSTER_SETTINGS } }, deps, undefined, () => {});
  t.match(none, { changed: false, downloaded: false }, 'no release named: nothing done');
});

t.test('the release a host runs: the assignment overrides the cluster key by key', async (t) => {
  const cluster = { s3Bucket: 'certs', teleport: { version: '15.4.2', edition: 'enterprise' as const } };
  t.equal(effectiveRelease({ cluster: { s3Bucket: 'certs' } }), undefined, 'no release named: the binary is left alone');
  t.same(effectiveRelease({ cluster, assignment: { teleport: { version: '16.0.1' } } }), {
    version: '16.0.1',
    edition: 'enterprise',
    source: 's3',
    bucket: 'certs',
    fips: false,
  });
  t.match(effectiveRelease({ cluster: { s3Bucket: 'b', enterprise: true, teleport: { version: '15.4.2' } } }), { edition: 'enterprise' });
});

t.test('.sha256 files as sha256sum writes them', async (t) => {
  const hex = 'a'.repeat(64);
  t.equal(parseChecksumFile(`${hex}  x.tar.gz\n`, 'x.tar.gz', 'f'), hex);
  t.equal(parseChecksumFile(`${hex}\n`, 'x.tar.gz', 'f'), hex);
  t.throws(() => parseChecksumFile(`${hex}  y.tar.gz\n`, 'x.tar.gz', 'f'), /is the checksum of y\.tar\.gz, not of x\.tar\.gz/);
  t.throws(() => parseChecksumFile('not a sum', 'x.tar.gz', 'f'), /does not hold a SHA-256 checksum/);
});

t.test('the package route pins the version (apt, dnf, yum; downgrade when going back)', async (t) => {
  // Only the command is checked here: installing a package needs a host (or root) whose repository serves Teleport.
  const r = release('15.4.2', { source: 'package' });
  t.same(packageCommand('apt', r), ['/usr/bin/apt-get', 'install', '-y', '--allow-downgrades', 'teleport=15.4.2']);
  t.same(packageCommand('dnf', { ...r, edition: 'enterprise' }), ['/usr/bin/dnf', '-y', 'install', 'teleport-ent-15.4.2']);
  t.same(packageCommand('yum', r, { version: '16.0.1', edition: 'oss' }), ['/usr/bin/yum', '-y', 'downgrade', 'teleport-15.4.2']);
  t.throws(() => packageCommand('apt', { ...r, fips: true, edition: 'enterprise' }), /FIPS build is installed from its tarball/);
});
