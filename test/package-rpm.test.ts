// The agent's .rpm (Amazon Linux 2023 and the like) with rpm itself:
// installed, upgraded and erased with `rpm --root` in an empty root with its
// own rpm database. The root has no shell, so the scriptlets are not run
// here (--noscripts); they are read back from the package instead. The
// files are the same as the .deb's, which package-deb.test.ts boots.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildAgentExecutable } from '../packaging/build/main';
import { buildRpm } from '../packaging/build/rpm';
import { agentSpec } from '../packaging/build/packages';
import { removeDir, scratchDir } from './support/harness';

const hasRpm = spawnSync('sh', ['-c', 'command -v rpmbuild && command -v rpm']).status === 0;

t.test(
  'the agent .rpm: files, %config(noreplace) on upgrade, scriptlets',
  { skip: hasRpm ? false : 'rpm and rpmbuild are not installed (apt-get install rpm; .ci/run does)' },
  async (t) => {
    const dir = scratchDir('package-rpm');
    t.teardown(() => removeDir(dir));
    const built = await buildAgentExecutable(join(dir, 'build'), '0.1.0');
    const spec = agentSpec(built);
    const rpms = ['0.1.0', '0.1.1'].map((v) => buildRpm(spec, v, join(dir, 'packages'), join(dir, `work-${v}`)));
    const root = join(dir, 'root');
    const rpm = (...args: string[]) => execFileSync('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', ...args], { encoding: 'utf8' });

    t.match(
      rpm('-qp', '--qf', '%{NAME} %{VERSION} %{ARCH} %{LICENSE}\\n', rpms[0]),
      /^teleboot-agent 0\.1\.0 (x86_64|aarch64) Apache-2\.0$/m,
    );
    t.match(rpm('-qp', '--requires', rpms[0]), /^libstdc\+\+$/m, 'needs the C++ runtime, not Node.js');
    t.notMatch(rpm('-qp', '--requires', rpms[0]), /node/i);
    const scripts = rpm('-qp', '--scripts', rpms[0]);
    t.match(
      scripts,
      /postinstall scriptlet[\s\S]*install -d -m 0700 -o root -g root \/var\/lib\/teleboot\n/,
      '%post makes the state directory, root only',
    );
    t.match(
      scripts,
      /preuninstall scriptlet[\s\S]*"\$1" -eq 0[\s\S]*systemctl disable --now teleboot-agent\.service/,
      '%preun stops the agent on erase only',
    );
    t.match(
      scripts,
      /postuninstall scriptlet[\s\S]*"\$1" -ge 1[\s\S]*systemctl try-restart teleboot-agent\.service/,
      '%postun restarts it after an upgrade',
    );
    t.notMatch(scripts, /teleport\.service/, 'nothing touches Teleport');

    execFileSync('rpm', ['--root', root, '--initdb']);
    rpm('-i', '--nodeps', '--noscripts', rpms[0]);
    t.match(rpm('-q', 'teleboot-agent'), /^teleboot-agent-0\.1\.0-1/);
    t.equal(statSync(join(root, 'usr/bin/teleboot-agent')).mode & 0o777, 0o755);
    t.ok(existsSync(join(root, 'usr/lib/systemd/system/teleboot-agent.service')));
    t.ok(existsSync(join(root, 'usr/lib/teleboot-agent/release-memory.node')), 'the addon that releases boot-only pages');
    t.match(rpm('-qc', 'teleboot-agent'), /^\/etc\/teleboot\/agent\.yaml$/m, 'agent.yaml is a config file');
    t.match(execFileSync(join(root, 'usr/bin/teleboot-agent'), ['version'], { encoding: 'utf8' }), /^teleboot-agent 0\.1\.0$/m);

    const mine = 'control:\n  endpoints: [control.example.com:7443]\n  ca_file: /etc/teleboot/control-ca.pem\n';
    writeFileSync(join(root, 'etc/teleboot/agent.yaml'), mine);
    rpm('-U', '--nodeps', '--noscripts', rpms[1]);
    t.match(rpm('-q', 'teleboot-agent'), /^teleboot-agent-0\.1\.1-1/);
    t.equal(readFileSync(join(root, 'etc/teleboot/agent.yaml'), 'utf8'), mine, "an upgrade keeps the operator's agent.yaml");
    t.notOk(existsSync(join(root, 'etc/teleboot/agent.yaml.rpmnew')), 'the shipped example did not change: no .rpmnew');

    rpm('-e', '--nodeps', '--noscripts', 'teleboot-agent');
    t.notOk(existsSync(join(root, 'usr/bin/teleboot-agent')), 'erase removes the executable');
    t.equal(readFileSync(join(root, 'etc/teleboot/agent.yaml.rpmsave'), 'utf8'), mine, 'and keeps the edited config as .rpmsave');
  },
);
