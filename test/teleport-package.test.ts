// The package route of Teleport releases, with a real package manager: a
// Debian 12 machine (the debootstrap'd root, booted with its own systemd in
// a private namespace) whose apt source is a local repository holding
// stand-in `teleport` packages built with dpkg-deb. The agent's installer
// runs on that machine and installs, upgrades and rolls back with apt-get,
// pinned; a version the repository does not have fails with apt's words.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { releaseArchOf } from '../contract/teleport-release';
import { REPO, removeDir, scratchDir } from './support/harness';
import { debianRoot, nodeInto } from './support/debian-root';
import { canRunSystemdNamespace, startSystemdNamespace, type SystemdNamespace } from './support/systemd-ns';

const can = canRunSystemdNamespace();
const tools = ['dpkg-deb'].filter((tool) => !process.env.PATH?.split(':').some((d) => existsSync(join(d, tool))));
const root = can.ok && tools.length === 0 ? debianRoot() : {};
const skip = !can.ok ? `needs systemd in a namespace: ${can.reason}` : tools.length ? `${tools.join(', ')} not installed` : root.reason;

/** A `teleport` package as Teleport's repository ships it, its programs in /usr/local/bin; teleport reports `version`. Returns its Packages stanza. */
function buildTeleportDeb(repo: string, version: string): string {
  const arch = releaseArchOf(process.arch);
  const tree = join(repo, `build-${version}`);
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
  mkdirSync(join(tree, 'usr/local/bin'), { recursive: true });
  writeFileSync(
    join(tree, 'DEBIAN/control'),
    `Package: teleport\nVersion: ${version}\nArchitecture: ${arch}\nMaintainer: teleboot tests <tests@example.com>\nDescription: stand-in Teleport ${version}\n`,
  );
  const say = (text: string) => `#!/bin/sh\necho "${text}"\n`;
  writeFileSync(join(tree, 'usr/local/bin/teleport'), say(`Teleport v${version} git:v${version}-0-gstandin go1.22`), { mode: 0o755 });
  for (const p of ['tctl', 'tsh']) writeFileSync(join(tree, 'usr/local/bin', p), say(`Teleport v${version} go1.22`), { mode: 0o755 });
  const name = `teleport_${version}_${arch}.deb`;
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', tree, join(repo, name)], { stdio: 'ignore' });
  removeDir(tree);
  // The repository's index entry, as dpkg-scanpackages writes it: the control fields, where the file is, its size and hash.
  const deb = readFileSync(join(repo, name));
  const fields = execFileSync('dpkg-deb', ['--field', join(repo, name)], { encoding: 'utf8' }).trimEnd();
  return `${fields}\nFilename: ./${name}\nSize: ${deb.length}\nSHA256: ${createHash('sha256').update(deb).digest('hex')}\n`;
}

/** Runs the agent's installer (dist/agent/teleport-install.js) for one release, as the agent would: JSON of the outcome or the error. */
const PROBE = `
const { TeleportInstaller } = require(${JSON.stringify(join(REPO, 'dist/agent/teleport-install.js'))});
const { createLogger } = require(${JSON.stringify(join(REPO, 'dist/contract/log.js'))});
const [version] = process.argv.slice(2);
const layout = {
  installDir: '/opt/teleport',
  links: { teleport: '/usr/local/bin/teleport', tctl: '/usr/local/bin/tctl', tsh: '/usr/local/bin/tsh' },
};
const noS3 = () => { throw new Error('the package route reads nothing from S3'); };
new TeleportInstaller(layout, noS3, createLogger('probe', 'silent'))
  .ensure({ version, edition: 'oss', source: 'package', bucket: '', fips: false })
  .then((o) => console.log(JSON.stringify(o)), (e) => console.log(JSON.stringify({ name: e.name, error: e.message })));
`;

t.test(
  'Teleport from the OS package repository, pinned: install, upgrade, roll back, a missing version',
  { skip, timeout: 600_000 },
  async (t) => {
    const dir = scratchDir('teleport-package');
    t.teardown(() => removeDir(dir));
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    for (const version of ['15.4.2', '16.0.1']) buildTeleportDeb(repo, version);
    writeFileSync(
      join(repo, 'Packages'),
      execFileSync('dpkg-scanpackages', ['--multiversion', '.'], { cwd: repo, stdio: ['ignore', 'pipe', 'ignore'] }),
    );
    // The installer runs under Node.js, linked in where only this test looks (the machine has none).
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const node = nodeInto(bin);
    writeFileSync(join(dir, 'probe.js'), PROBE);

    const ns: SystemdNamespace = await startSystemdNamespace({ osRoot: root.root, bootTimeoutMs: 60_000 });
    t.teardown(() => ns.stop());
    const sh = (cmd: string) => ns.exec(['sh', '-c', cmd], { timeoutMs: 300_000 });
    // The machine's only apt source: the local repository (what Teleport's apt repository is to a real host).
    await ns.writeFile('/etc/apt/sources.list', `deb [trusted=yes] file:${repo} ./\n`, 0o644);
    const update = await sh('apt-get update');
    t.equal(update.code, 0, update.code === 0 ? 'apt-get update' : `apt-get update: ${update.stdout}${update.stderr}`);

    const install = async (version: string) => {
      const r = await sh(`${node} ${join(dir, 'probe.js')} ${version}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() || '{}');
    };
    const installed = async () => (await sh("dpkg-query -W -f '${Version}' teleport")).stdout;
    const reports = async () => (await sh('/usr/local/bin/teleport version')).stdout;

    t.match(await install('15.4.2'), { changed: true, from: undefined });
    t.equal(await installed(), '15.4.2');
    t.match(await reports(), /^Teleport v15\.4\.2 /);
    t.match(await install('15.4.2'), { changed: false }, 'already there: apt is not run');

    t.match(await install('16.0.1'), { changed: true, from: { version: '15.4.2' } });
    t.equal(await installed(), '16.0.1', 'upgraded');
    t.match(await install('15.4.2'), { changed: true, from: { version: '16.0.1' } });
    t.equal(await installed(), '15.4.2', 'rolled back (apt-get --allow-downgrades)');

    const missing = await install('16.9.9');
    t.match(missing, {
      name: 'ReleaseError',
      error: /apt-get install -y --allow-downgrades teleport=16\.9\.9 failed: .*Version '16\.9\.9' for 'teleport' was not found/,
    });
    t.equal(await installed(), '15.4.2', 'the host keeps the release it had');
    t.match(await reports(), /^Teleport v15\.4\.2 /);
  },
);
