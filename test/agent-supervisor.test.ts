// The agent's supervisor: a duty that throws is restarted with backoff and
// shows in the status the control server receives, until it runs cleanly.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createLogger } from '../contract/log';
import { AssignmentFeed } from '../agent/assignment-feed';
import { loadAgentConfig } from '../agent/config';
import { ControlClient } from '../agent/control-client';
import { Credentials } from '../agent/credentials';
import { persistWith } from '../agent/persist';
import { Reporter } from '../agent/reporter';
import { Supervisor, type Duty } from '../agent/supervisor';
import { testIdentity } from './support/fixtures';
import { startInProcessControl, type InProcessControl } from './support/in-process';
import { removeDir, scratchDir, until } from './support/harness';

const log = createLogger('test', 'silent');
const backoff = { initialMs: 20, maxMs: 100 };

/** A duty that throws `failures` times, then runs until aborted; counts its starts. */
function flaky(name: string, failures: number): Duty & { starts: number } {
  const duty = {
    name,
    starts: 0,
    run: (signal: AbortSignal) => {
      duty.starts++;
      if (duty.starts <= failures) return Promise.reject(new Error(`${name} broke (start ${duty.starts})`));
      return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
  return duty;
}

t.test('a duty that throws is restarted with backoff, reported while failing, and forgotten once it runs', async (t) => {
  let changes = 0;
  const supervisor = new Supervisor({ log, backoff, stableMs: 300, onChange: () => changes++ });
  const controller = new AbortController();
  const steady = flaky('steady', 0);
  const broken = flaky('broken', 3);
  const running = supervisor.run([steady, broken], controller.signal);
  await until('three restarts', () => broken.starts >= 4, 5000);
  const failing = supervisor.status().find((d) => d.name === 'broken')!;
  t.equal(failing.restarts, 3, 'restarted after each of its three failures');
  t.equal(failing.failing, 3, 'three failures in a row');
  t.equal(failing.lastError, 'broken broke (start 3)');
  t.match(supervisor.problem(), /duty broken failed 3 time\(s\) in a row, restarting: broken broke \(start 3\)/);
  t.equal(steady.starts, 1, 'the other duty runs on untouched');
  t.ok(changes >= 3, 'each failure was told (the agent reports at once)');
  await until('the duty counts as recovered', () => supervisor.problem() === undefined, 5000);
  t.equal(supervisor.status().find((d) => d.name === 'broken')!.restarts, 3, 'its restarts stay counted');
  controller.abort();
  await running;
  t.same(
    supervisor.status().map((d) => d.state),
    ['stopped', 'stopped'],
    'every duty ended with the supervisor',
  );
});

t.test('a duty that never stops failing waits longer each time', async (t) => {
  const supervisor = new Supervisor({ log, backoff: { initialMs: 40, maxMs: 400 } });
  const controller = new AbortController();
  const starts: number[] = [];
  const running = supervisor.run(
    [
      {
        name: 'hopeless',
        run: () => {
          starts.push(Date.now());
          return Promise.reject(new Error('still broken'));
        },
      },
    ],
    controller.signal,
  );
  await until('five starts', () => starts.length >= 5, 10_000);
  controller.abort();
  await running;
  const gaps = starts.slice(1).map((at, i) => at - starts[i]);
  // Equal jitter: the n-th wait is between half and all of min(400, 40 * 2^(n-1)).
  t.ok(gaps[3] >= 150, `the fourth wait is at least 160 ms less timer slack: ${gaps.join(', ')} ms`);
});

t.test('a failing duty shows in the status the control server receives', async (t) => {
  const control: InProcessControl = await startInProcessControl('agent-supervisor');
  const dir = scratchDir('agent-supervisor-agent');
  const controller = new AbortController();
  const running: Array<Promise<void>> = [];
  t.teardown(async () => {
    controller.abort();
    await Promise.all(running);
    await control.close();
    removeDir(dir);
  });
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, control.server.caPem);
  const tokenFile = join(dir, 'join-token');
  writeFileSync(tokenFile, control.joinToken);
  const configFile = join(dir, 'agent.yaml');
  writeFileSync(
    configFile,
    stringify({
      control: { endpoints: [`localhost:${control.server.grpcPort}`], ca_file: caFile },
      enrollment: { join_token_file: tokenFile },
      paths: { state_dir: join(dir, 'state') },
      retry: { initial_delay: '20ms', max_delay: '100ms' },
    }),
  );
  const config = loadAgentConfig(configFile);
  const id = 'i-0supervised00001';
  const client = new ControlClient(config.control);
  t.teardown(() => client.close());
  const feed = new AssignmentFeed();
  const persist = persistWith(log, config.retry);
  const credentials = new Credentials({
    config,
    log,
    identity: { identity: () => Promise.resolve(testIdentity(id)) },
    control: client,
    persist,
    onEnrolled: (e) => e.assignment && feed.set(e.assignment),
  });
  await credentials.start();
  const supervisor: Supervisor = new Supervisor({
    log,
    backoff: { initialMs: 200, maxMs: 1000 },
    stableMs: 60_000,
    onChange: (signal) => void reporter.report(signal).catch(() => {}),
  });
  const reporter = new Reporter({
    log,
    control: client,
    credentials,
    feed,
    facts: () => Promise.resolve(null),
    heartbeatMs: 1000,
    status: () => ({
      state: 'ready',
      appliedGeneration: 0,
      teleportReady: true,
      teleportUnitState: 'active',
      message: 'teleport is ready',
    }),
    degraded: () => supervisor.problem() !== undefined,
    notes: () => [supervisor.problem()],
  });
  running.push(supervisor.run([flaky('publisher', 1000)], controller.signal));
  const seen = await until(
    'the failure in the instance status',
    async () => {
      const res = await control.rest('GET', `/v1/instances/${id}`);
      return /duty publisher failed/.test(res.body?.status?.message ?? '') ? res.body : undefined;
    },
    10_000,
  );
  t.equal(seen.status.state, 'degraded', 'a ready instance with a failing duty reports degraded');
  t.match(seen.status.message, /teleport is ready; duty publisher failed \d+ time\(s\) in a row, restarting: publisher broke/);
});
