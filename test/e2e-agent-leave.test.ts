// Leave on a clean stop (like `consul leave`): teleboot-agent.service under
// real systemd in a private namespace, stopped with `systemctl stop` as an
// instance shutdown does. Its last report says "stopped", and the control
// server counts the host offline at once, long before three missed
// heartbeats (a 60 s heartbeat here: offline by silence only after 180 s),
// keeping its record. Started again, it reports and is online again.
import t from 'tap';
import { AGENT_BIN, AWS_ENV } from './support/harness';
import { canRunSystemdNamespace, startSystemdNamespace } from './support/systemd-ns';
import { startWorld, type World } from './support/world';

const can = canRunSystemdNamespace();
if (!can.ok) {
  t.skip(`needs systemd in a namespace: ${can.reason}`, () => {});
} else {
  let world: World;
  t.before(async () => {
    world = await startWorld('e2e-agent-leave', { controlArgs: ['--heartbeat-interval', '60s'] });
  });
  t.teardown(() => world?.close());

  /** Well under the three heartbeats (180 s) after which silence alone makes a host offline. */
  const WITHIN_MS = 45_000;

  t.test(
    'systemctl stop: the host is offline at once and keeps its record; started again, it is online; with the control server down the stop is not held up',
    async (t) => {
      const imds = await world.instance();
      const id = imds.instance.instanceId;
      t.equal((await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' })).status, 200);
      const files = await world.agentConfig(imds, 'systemd', '60s');
      const ns = await startSystemdNamespace();
      t.teardown(() => ns.stop());
      const environment = Object.entries({ ...AWS_ENV, NODE_OPTIONS: '' })
        .map(([k, v]) => `Environment=${k}=${v}`)
        .join('\n');
      // As packaging/teleboot-agent.service runs it, with this test's paths.
      await ns.writeFile(
        '/etc/systemd/system/teleboot-agent.service',
        `[Unit]\nDescription=teleboot agent\n\n[Service]\nType=simple\nExecStart=${process.execPath} ${AGENT_BIN} run --config=${files.configFile}\n${environment}\nTimeoutStopSec=30\n`,
        0o644,
      );
      const ok = async (...args: string[]) => {
        const r = await ns.systemctl(...args);
        t.equal(r.code, 0, `systemctl ${args.join(' ')} ${r.stderr}`);
      };
      await ok('daemon-reload');
      await ok('start', 'teleboot-agent.service');
      const journal = async (err: Error) => t.fail(`${err.message}\n${await ns.journal('teleboot-agent.service')}`);
      const ready = await world.control.waitForInstance(id, (i) => i.health === 'ready', 90_000).catch(journal);
      const health = async () => (await world.control.rest('GET', '/v1/health')).body;
      t.equal((await health()).byHealth.ready, 1);

      await ok('stop', 'teleboot-agent.service');
      const stopped = await world.control.waitForInstance(id, (i) => i.health === 'offline', WITHIN_MS).catch(journal);
      t.equal(stopped.status.state, 'stopped', 'the last report says the agent stopped');
      t.ok(stopped.lastSeenAt >= ready.lastSeenAt, 'the stop was a report, not silence');
      t.same(stopped.assignment.roles, ['node'], 'the record and its assignment are kept');
      const counted = await health();
      t.equal(counted.byHealth.offline, 1, `/v1/health counts it offline: ${JSON.stringify(counted.byHealth)}`);
      t.notOk(counted.byHealth.ready, 'and not ready');
      t.equal((await ns.systemctl('is-active', 'teleport.service')).stdout.trim(), 'active', 'Teleport itself runs on');

      await ok('start', 'teleboot-agent.service');
      const back = await world.control
        .waitForInstance(id, (i) => i.health === 'ready' && i.status?.state === 'ready', 90_000)
        .catch(journal);
      t.ok(back.lastSeenAt > stopped.lastSeenAt, 'it reported again');
      t.equal((await health()).byHealth.ready, 1, 'and is online again');
      t.notOk((await health()).byHealth.offline);

      // The control server unreachable: the last report is given up after its short deadline, and the stop
      // completes by itself (without the deadline, systemd would kill the agent at TimeoutStopSec).
      await world.control.stop();
      try {
        await ok('stop', 'teleboot-agent.service');
        const unit = await ns.show('teleboot-agent.service', ['ActiveState', 'Result']);
        t.same(unit, { ActiveState: 'inactive', Result: 'success' }, 'the agent exited on its own, not killed');
        t.match(await ns.journal('teleboot-agent.service'), /the control server was not told that this agent stops/);
      } finally {
        await world.control.start();
      }
    },
  );
}
