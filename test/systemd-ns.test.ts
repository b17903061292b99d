// End-to-end check of the systemd namespace harness: a real systemd 252 as
// PID 1, driven with systemctl exactly as teleboot-agent will drive it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { canRunSystemdNamespace, mkSharedTempDir, startSystemdNamespace } from './support/systemd-ns';

const can = canRunSystemdNamespace();
const skip = can.ok ? false : `systemd namespace unavailable: ${can.reason}`;

// The recipe hides the host's /tmp behind a tmpfs; a mistake there empties it.
const marker = `/tmp/teleboot-systemd-ns-marker-${process.pid}`;
if (can.ok) fs.writeFileSync(marker, 'still here\n');

t.test('unit lifecycle: enable --now, restart, stop', { skip }, async (t) => {
  const ns = await startSystemdNamespace();
  t.teardown(() => ns.stop());
  t.comment(`booted (${ns.bootState}) in ${ns.bootMs} ms, systemd host pid ${ns.pid}, log ${ns.logFile}`);

  t.equal((await ns.exec(['cat', '/proc/1/comm'])).stdout.trim(), 'systemd', 'systemd is PID 1 inside');

  // A script in a shared directory (outside /tmp): the service writes back into it.
  const shared = mkSharedTempDir('systemd-ns-');
  t.teardown(() => fs.rmSync(shared, { recursive: true, force: true }));
  const script = path.join(shared, 'demo.sh');
  // Records its pid and every SIGHUP (ExecReload) in the shared dir.
  fs.writeFileSync(
    script,
    [
      '#!/bin/sh',
      'echo "demo started as $$"',
      'echo $$ > "$1/started"',
      'trap \'echo $$ >> "$1/reloads"\' HUP',
      'while :; do sleep 1 & wait $!; done',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );

  await ns.writeFile(
    '/etc/systemd/system/demo.service',
    `[Unit]\nDescription=teleboot harness demo\n\n[Service]\nExecStart=${script} ${shared}\nExecReload=/bin/kill -HUP $MAINPID\n\n[Install]\nWantedBy=multi-user.target\n`,
  );
  t.equal((await ns.systemctl('daemon-reload')).code, 0, 'daemon-reload');
  const enable = await ns.systemctl('enable', '--now', 'demo.service');
  t.equal(enable.code, 0, 'enable --now', { stderr: enable.stderr });
  await ns.waitForUnitState('demo.service', 'active');

  const first = await ns.show('demo.service', ['ActiveState', 'SubState', 'UnitFileState', 'MainPID']);
  t.match(first, { ActiveState: 'active', SubState: 'running', UnitFileState: 'enabled' }, 'active, running, enabled');
  t.ok(Number(first.MainPID) > 1, `MainPID ${first.MainPID}`);
  t.equal(fs.readFileSync(path.join(shared, 'started'), 'utf8').trim(), first.MainPID, 'service wrote to the shared dir');

  t.equal((await ns.systemctl('reload', 'demo.service')).code, 0, 'reload');
  const reloads = path.join(shared, 'reloads');
  for (let i = 0; i < 100 && !fs.existsSync(reloads); i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(fs.readFileSync(reloads, 'utf8').trim(), first.MainPID, 'reload sent SIGHUP to the main process');

  t.equal((await ns.systemctl('restart', 'demo.service')).code, 0, 'restart');
  await ns.waitForUnitState('demo.service', 'active');
  const second = await ns.show('demo.service', ['MainPID']);
  t.not(second.MainPID, first.MainPID, 'restart gives a new MainPID');
  t.ok(Number(second.MainPID) > 1, `new MainPID ${second.MainPID}`);

  t.match(await ns.journal('demo.service'), `demo started as ${second.MainPID}`, 'service output is in the journal');

  t.equal((await ns.systemctl('stop', 'demo.service')).code, 0, 'stop');
  await ns.waitForUnitState('demo.service', 'inactive');

  // Isolation: the unit and its enablement symlink exist only inside.
  t.match(await ns.readFile('/etc/systemd/system/multi-user.target.wants/demo.service'), 'ExecStart=', 'enabled inside');
  t.notOk(fs.existsSync('/etc/systemd/system/demo.service'), "host's /etc/systemd/system has no demo.service");
  t.notOk(fs.existsSync('/etc/systemd/system/multi-user.target.wants/demo.service'), 'nor its enablement');

  await ns.stop();
  await ns.stop(); // idempotent
  t.notOk(fs.existsSync(`/proc/${ns.pid}`), 'systemd is gone after stop()');
});

t.test('a unit that exits 1 ends up failed', { skip }, async (t) => {
  const ns = await startSystemdNamespace();
  t.teardown(() => ns.stop());
  await ns.writeFile('/etc/systemd/system/broken.service', `[Service]\nExecStart=/bin/sh -c 'echo boom >&2; exit 1'\n`);
  await ns.systemctl('daemon-reload');
  await ns.systemctl('start', 'broken.service'); // Type=simple: start succeeds, the process then fails
  await ns.waitForUnitState('broken.service', 'failed');
  t.match(
    await ns.show('broken.service', ['Result', 'ExecMainStatus']),
    { Result: 'exit-code', ExecMainStatus: '1' },
    'exit status 1 recorded',
  );
  t.match(await ns.journal('broken.service'), 'boom', 'stderr is in the journal');
});

t.test('spawn(): a daemon inside the namespace, signalled through nsenter', { skip }, async (t) => {
  const ns = await startSystemdNamespace();
  t.teardown(() => ns.stop());
  const child = ns.spawn(['sh', '-c', 'echo "pid1=$(cat /proc/1/comm)"; exec sleep infinity']);
  const firstLine = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(String(d))));
  t.equal(firstLine.trim(), 'pid1=systemd', 'runs in the pid namespace');
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  t.ok(child.kill('SIGTERM'), 'kill() found the inner process');
  t.equal(await exited, 'SIGTERM', 'SIGTERM reached the inner process and nsenter reported it');

  // stop() takes down whatever still runs inside, including processes started with spawn().
  const orphan = ns.spawn(['sleep', 'infinity'], { stdio: 'ignore' });
  const orphanExit = new Promise<void>((resolve) => orphan.on('exit', () => resolve()));
  await ns.stop();
  await orphanExit;
  t.pass('spawned process ended with the namespace');
});

// Subtests run in order: this one comes after every namespace has been stopped.
t.test("the host's /tmp survived", { skip }, async (t) => {
  t.equal(fs.readFileSync(marker, 'utf8'), 'still here\n', 'marker file intact');
  fs.rmSync(marker, { force: true });
});
