// The agent's .deb, installed as a host installs it: `dpkg -i` on a Debian 12
// machine (a debootstrap'd root booted with its own systemd in a private
// namespace) that has no Node.js. It boots against the emulated AWS world
// and reports ready; an upgrade keeps the config and state and restarts the
// agent; removing it stops the agent and leaves Teleport running.
import t from 'tap';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildAgentExecutable } from '../packaging/build/main';
import { buildDeb } from '../packaging/build/deb';
import { agentSpec } from '../packaging/build/packages';
import { setTimeout as sleep } from 'node:timers/promises';
import { AWS_ENV, freePort, removeDir, scratchDir, TCTL_STANDIN, TELEPORT_STANDIN, until } from './support/harness';
import { debianRoot, nodeInto } from './support/debian-root';
import { canRunSystemdNamespace, startSystemdNamespace, type SystemdNamespace } from './support/systemd-ns';
import { startWorld, type World } from './support/world';

const can = canRunSystemdNamespace();
const tools = ['dpkg-deb'].filter((tool) => !process.env.PATH?.split(':').some((d) => existsSync(join(d, tool))));
const root = can.ok && tools.length === 0 ? debianRoot() : {};
const skip = !can.ok ? `needs systemd in a namespace: ${can.reason}` : tools.length ? `${tools.join(', ')} not installed` : root.reason;

t.test('the agent .deb on a Debian 12 host: install, boot, upgrade, remove', { skip, timeout: 600_000 }, async (t) => {
  const dir = scratchDir('package-deb');
  t.teardown(() => removeDir(dir));
  // Two versions of the package, each with its own executable (the version is compiled in).
  const debs: Record<string, string> = {};
  for (const version of ['0.1.0', '0.1.1']) {
    const built = await buildAgentExecutable(join(dir, `build-${version}`), version);
    debs[version] = buildDeb(agentSpec(built), version, join(dir, 'packages'), join(dir, `build-${version}`));
  }

  const world: World = await startWorld('package-deb-world');
  t.teardown(() => world.close());
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  t.equal((await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' })).status, 200);

  // Teleport's stand-in is a Node.js script: it gets a Node.js of its own at a path
  // no one else looks at, so the machine still has no `node` for the agent to lean on.
  const standin = join(dir, 'standin');
  mkdirSync(standin);
  nodeInto(standin);
  for (const [name, script] of [
    ['teleport', TELEPORT_STANDIN],
    ['tctl', TCTL_STANDIN],
  ])
    writeFileSync(join(standin, name), `#!/bin/sh\nexec ${join(standin, 'node')} ${script} "$@"\n`, { mode: 0o755 });

  const ns: SystemdNamespace = await startSystemdNamespace({ osRoot: root.root, bootTimeoutMs: 60_000 });
  t.teardown(() => ns.stop());
  const sh = (cmd: string) => ns.exec(['sh', '-c', cmd], { timeoutMs: 120_000 });
  const ok = async (cmd: string) => {
    const r = await sh(cmd);
    if (r.code === 0) t.pass(cmd);
    else t.fail(`${cmd} exited with ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  t.equal((await sh('! command -v node && ! command -v nodejs')).code, 0, 'the machine has no Node.js');
  // debootstrap leaves no /etc/hosts; every real machine has one (gRPC resolves the control server's "localhost" with it).
  await ns.writeFile('/etc/hosts', '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n', 0o644);
  t.match(await ok('. /etc/os-release; echo $PRETTY_NAME'), /Debian GNU\/Linux 12/);

  // ---- install
  await ok(`dpkg -i ${debs['0.1.0']}`);
  t.match(await ok("dpkg-query -W -f '${Status} ${Version}' teleboot-agent"), 'install ok installed 0.1.0');
  t.match(await ok("dpkg-query -W -f '${Conffiles}' teleboot-agent"), /\/etc\/teleboot\/agent\.yaml [0-9a-f]{32}/);
  t.equal(
    (await ok('stat -c "%a %U" /var/lib/teleboot /var/lib/teleboot/secrets')).trim(),
    '700 root\n700 root',
    'state directories, root only',
  );
  t.match(await ok('/usr/bin/teleboot-agent version'), /^teleboot-agent 0\.1\.0$/m);
  t.equal(
    (await sh('systemctl is-enabled teleboot-agent.service')).stdout.trim(),
    'disabled',
    'the image baker enables it, not the package',
  );

  // ---- what Packer does: agent.yaml from variables, the unit enabled
  const control = world.control;
  const agentYaml = stringify({
    control: { endpoints: [control.grpcAddr], ca_file: control.caFile },
    enrollment: { join_token_file: control.joinTokenFile },
    teleport: {
      binary: join(standin, 'teleport'),
      tctl: join(standin, 'tctl'),
      diag_addr: `127.0.0.1:${await freePort()}`,
      ready_timeout: '30s',
    },
    aws: { imds_endpoint: imds.endpoint, ssm_endpoint: world.ssm.endpoint, s3_endpoint: world.s3.endpoint, s3_force_path_style: true },
    retry: { initial_delay: '100ms', max_delay: '1s' },
  });
  await ns.writeFile('/etc/teleboot/agent.yaml', agentYaml, 0o644);
  // The emulators' credentials (an instance profile on EC2).
  const env = Object.entries(AWS_ENV)
    .map(([k, v]) => `Environment=${k}=${v}`)
    .join('\n');
  await ns.writeFile('/etc/systemd/system/teleboot-agent.service.d/aws.conf', `[Service]\n${env}\n`, 0o644);
  await ok('systemctl daemon-reload && systemctl enable --now teleboot-agent.service');

  const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;
  const booted = await world.control.waitForInstance(id, ready, 60_000).catch(async (err: Error) => {
    t.fail(`${err.message}\n${await ns.journal('teleboot-agent.service')}`);
  });
  t.match(booted, { status: { state: 'ready', teleportReady: true, teleportUnitState: 'active', agentVersion: '0.1.0' } });
  const teleportBefore = await ns.show('teleport.service', ['ActiveState', 'MainPID']);
  t.equal(teleportBefore.ActiveState, 'active', 'teleport.service runs');
  const agentBefore = await ns.show('teleboot-agent.service', ['MainPID']);
  // The boot's last step (after the report with the first host facts): the executable's boot-only pages released.
  const released = await until(
    'the release of boot-only pages',
    async () => {
      await sleep(250);
      const journal = await ns.journal('teleboot-agent.service');
      return /boot over: released the boot's memory/.test(journal) && journal;
    },
    30_000,
  ).catch(async () => {
    t.fail(`no release of boot-only pages logged\n${await ns.journal('teleboot-agent.service')}`);
    return undefined;
  });
  if (released) {
    const record = JSON.parse(
      released
        .split('\n')
        .find((l) => l.includes('boot over: released'))!
        .replace(/^[^{]*/, ''),
    );
    t.ok(record.afterMiB < record.beforeMiB / 2, `the executable's resident pages: ${record.beforeMiB} MiB -> ${record.afterMiB} MiB`);
  }
  const stateBefore = await ok('cd /var/lib/teleboot && find . -type f | sort | xargs sha256sum');
  t.match(stateBefore, /\S/, 'the agent keeps its state in /var/lib/teleboot');

  // ---- upgrade
  await ok(`dpkg -i ${debs['0.1.1']}`);
  t.match(await ok("dpkg-query -W -f '${Version}' teleboot-agent"), '0.1.1');
  t.equal(await ns.readFile('/etc/teleboot/agent.yaml'), agentYaml, "the operator's agent.yaml is kept");
  t.equal(await ok('cd /var/lib/teleboot && find . -type f | sort | xargs sha256sum'), stateBefore, 'the state is kept');
  const agentAfter = await ns.show('teleboot-agent.service', ['MainPID', 'ActiveState', 'NRestarts', 'Result']);
  t.not(agentAfter.MainPID, agentBefore.MainPID, 'the agent was restarted');
  t.match(agentAfter, { ActiveState: 'active', NRestarts: '0', Result: 'success' }, 'cleanly');
  const upgraded = await world.control.waitForInstance(id, (i) => ready(i) && i.status?.agentVersion === '0.1.1', 60_000);
  t.match(upgraded, { status: { state: 'ready', teleportReady: true } }, 'the new version reports ready');
  t.equal((await ns.show('teleport.service', ['MainPID'])).MainPID, teleportBefore.MainPID, 'Teleport was not restarted');

  // ---- removal
  await ok('dpkg -r teleboot-agent');
  t.not((await sh('systemctl is-active teleboot-agent.service')).stdout.trim(), 'active', 'the agent is stopped');
  t.equal((await sh('test -e /usr/bin/teleboot-agent')).code, 1, 'its executable is gone');
  const teleportAfter = await ns.show('teleport.service', ['ActiveState', 'MainPID']);
  t.same(teleportAfter, teleportBefore, 'Teleport keeps running, untouched');
  t.equal(await ns.readFile('/etc/teleboot/agent.yaml'), agentYaml, 'removal keeps the configuration (purge removes it)');
  await ok('dpkg --purge teleboot-agent');
  t.equal((await sh('test -e /etc/teleboot/agent.yaml || test -e /var/lib/teleboot')).code, 1, 'purge removes configuration and state');
});
