// `npm run package` as a whole: both packages in both formats, the control
// package's private Node.js running its bundle with the SQLite addon from
// the packaged tree, and the Packer template validated against them.
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAll, prepare } from '../packaging/build/main';
import { CONTROL_NODE_FLAGS } from '../packaging/build/packages';
import { REPO, removeDir, scratchDir } from './support/harness';

const missing = ['dpkg-deb', 'rpmbuild', 'packer'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

t.test(
  'npm run package: .deb and .rpm of both programs',
  { skip: missing.length ? `not installed: ${missing.join(', ')} (.ci/run installs them)` : false },
  async (t) => {
    const dir = scratchDir('package-build');
    t.teardown(() => removeDir(dir));
    const specs = await prepare(join(dir, 'work'), '0.1.0');
    const out = join(dir, 'packages');
    const built = buildAll(specs, '0.1.0', out, join(dir, 'work'));
    t.equal(built.deb.length, 2);
    t.equal(built.rpm.length, 2);

    const controlDeb = built.deb.find((f) => f.includes('teleboot-control'))!;
    const listing = execFileSync('dpkg-deb', ['-c', controlDeb], { encoding: 'utf8' });
    for (const file of [
      './opt/teleboot-control/bin/node',
      './opt/teleboot-control/lib/teleboot-control.js',
      './opt/teleboot-control/lib/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      './opt/teleboot-control/control/data/aws-identity-certs/dsa-default.pem',
      './usr/bin/teleboot-control',
      './usr/lib/systemd/system/teleboot-control.service',
      './etc/teleboot/control.yaml',
    ])
      t.match(listing, ` ${file}\n`, file);
    t.equal(
      execFileSync('dpkg-deb', ['-f', controlDeb, 'Depends'], { encoding: 'utf8' }).trim(),
      'libc6, libstdc++6',
      'no nodejs dependency',
    );
    t.match(
      execFileSync('rpm', ['-qpc', built.rpm.find((f) => f.includes('teleboot-control'))!], { encoding: 'utf8' }),
      /^\/etc\/teleboot\/control\.yaml$/m,
    );

    // The packaged tree runs on its own: private node, bundle, native addon, shipped AWS certificates.
    const tree = join(dir, 'control-tree');
    execFileSync('dpkg-deb', ['-x', controlDeb, tree]);
    const prefix = join(tree, 'opt/teleboot-control');
    t.match(
      readFileSync(join(tree, 'usr/bin/teleboot-control'), 'utf8'),
      `exec /opt/teleboot-control/bin/node ${CONTROL_NODE_FLAGS.join(' ')} /opt/teleboot-control/lib/teleboot-control.js "$@"`,
      'the wrapper runs the server with its V8 flags',
    );
    const server = spawn(
      join(prefix, 'bin/node'),
      [
        join(prefix, 'lib/teleboot-control.js'),
        'serve',
        '--data-dir',
        join(dir, 'data'),
        '--grpc-listen',
        '127.0.0.1:0',
        '--rest-listen',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
    );
    t.teardown(() => void server.kill('SIGKILL'));
    let log = '';
    const serving = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 60_000);
      const onData = (c: Buffer) => {
        log += c.toString();
        if (log.includes('teleboot-control serving')) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      server.stdout.on('data', onData);
      server.stderr.on('data', onData);
      server.once('exit', () => resolve(false));
    });
    t.ok(
      serving,
      serving ? 'the packaged control server serves on its SQLite store' : `the packaged control server did not start:\n${log}`,
    );
    t.match(log, /"store":"sqlite"/);
    t.match(
      execFileSync(join(prefix, 'bin/node'), [join(prefix, 'lib/teleboot-control.js'), 'version'], { encoding: 'utf8' }),
      /^teleboot-control 0\.1\.0$/m,
    );

    // Packer: the template validates against these packages (and a CA), and notices a missing one.
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n');
    const validate = (...vars: string[]) =>
      spawnSync(
        'packer',
        [
          'validate',
          '-var',
          `control_ca_file=${ca}`,
          '-var',
          `packages_dir=${out}`,
          ...vars.flatMap((v) => ['-var', v]),
          'packaging/packer',
        ],
        {
          cwd: REPO,
          encoding: 'utf8',
        },
      );
    const good = validate();
    t.equal(good.status, 0, `packer validate\n${good.stdout}${good.stderr}`);
    const wrongVersion = validate('agent_version=9.9.9');
    t.not(wrongVersion.status, 0, 'a package that was not built fails validation');
    t.match(wrongVersion.stdout + wrongVersion.stderr, /teleboot-agent-9\.9\.9-1\.\w+\.rpm/);
  },
);
