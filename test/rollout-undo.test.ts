// An abort puts back what the change stored, also for the hosts the change
// moved outside its rollout: a host offline when the change was saved is
// served the newest at once; after the abort it is served a new generation
// with the settings from before. A real control server (in this process,
// heartbeat 1 s); the agents are the real gRPC client.
import t from 'tap';
import { testIdentity } from './support/fixtures';
import { enrolledAgent } from './support/grpc-agent';
import { waitFor } from './support/rollout-fleet';
import { startInProcessControl, type InProcessControl } from './support/in-process';
import { CLUSTER } from './support/world';

let control: InProcessControl;
t.before(async () => {
  control = await startInProcessControl('rollout-undo', { 'heartbeat-interval': '1s' });
  await control.rest('PATCH', '/v1/settings', { ...CLUSTER, logSeverity: 'INFO' });
});
t.teardown(() => control.close());

t.test('abort: a host the change reached outside its rollout (offline) is served the settings from before again', async (t) => {
  const ids = ['i-0ddddddddddddddd1', 'i-0ddddddddddddddd2'];
  const [online, offline] = await Promise.all(
    ids.map(async (id) => {
      await control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
      const agent = await enrolledAgent(t, control, testIdentity(id));
      return { ...agent, applied: await agent.report() };
    }),
  );
  // The second host stops reporting; the first keeps heartbeating on what it applied (it will not be ready on the change).
  const beating = setInterval(() => void online.report(online.applied).catch(() => undefined), 500);
  t.teardown(() => clearInterval(beating));
  await waitFor('the silent host to be offline', async () => {
    const i = (await control.rest('GET', `/v1/instances/${ids[1]}`)).body;
    return i.health === 'offline' ? i : undefined;
  });
  const before = await offline.state();
  t.equal(before.cluster?.logSeverity, 'INFO');

  const patched = await control.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' });
  t.equal(patched.status, 200, JSON.stringify(patched.body));
  const [rollout] = (await control.rest('GET', '/v1/rollouts?limit=1')).body.items;
  t.match(rollout, { hosts: { total: 1 } }, 'the offline host is not in the rollout');
  const during = await offline.state();
  t.equal(during.cluster?.logSeverity, 'DEBUG', 'it is served the newest at once');

  const aborted = await control.rest('POST', `/v1/rollouts/${rollout.id}/abort`);
  t.equal(aborted.status, 200, JSON.stringify(aborted.body));
  const after = await offline.state();
  t.equal(after.cluster?.logSeverity, 'INFO', 'after the abort it is served the settings from before');
  t.ok(Number(after.generation) > Number(during.generation), 'as a new generation (its agent applies it when back)');
  t.equal((await control.rest('GET', '/v1/settings')).body.logSeverity, 'INFO');
});
