// What GET /v1/rollouts/{id}, the list, /v1/health and /metrics will show of
// a rollout (control/rollout/progress.ts): counts per group and role, the
// wave under way, each failed host's last message.
import t from 'tap';
import { advance } from '../control/rollout/engine';
import { metricSamples, progressOf, summaryOf } from '../control/rollout/progress';
import { fleetRollout } from './support/rollout-sim';

const TIMEOUTS = { silentMs: 60_000 };

t.test('progress of a rollout halfway through its proxies, one failed', async (t) => {
  const policy = { proxy: { maxUnavailable: 2, failureThreshold: 2 } };
  let step = advance(fleetRollout({ auth: 1, proxy: 4, other: 10 }, { policy }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [{ instanceId: 'auth-0', generation: 2, state: 'ready', at: 1 }], 1, TIMEOUTS);
  const logTail = 'teleport: ERROR: failed to load https_keypairs: open /var/lib/teleboot/secrets/proxy-fullchain.pem: no such file';
  step = advance(step.rollout, [{ instanceId: 'proxy-0', generation: 2, state: 'failed', message: logTail, at: 2 }], 2, TIMEOUTS);
  const view = progressOf(step.rollout);
  t.equal(view.state, 'running');
  t.equal(view.currentWave, 'proxy');
  t.same(
    view.waves.map((w) => [w.group, w.instanceIds.length, w.status]),
    [
      ['auth', 1, 'done'],
      ['proxy', 4, 'current'],
      ['other', 10, 'waiting'],
    ],
  );
  t.same(view.hosts, { pending: 11, applying: 2, ready: 1, failed: 1, skipped: 0, total: 15 });
  t.same(view.groups.proxy, { pending: 1, applying: 2, ready: 0, failed: 1, skipped: 0, total: 4, maxUnavailable: 2, failureThreshold: 2 });
  t.same(view.roles.node, { pending: 10, applying: 0, ready: 0, failed: 0, skipped: 0, total: 10 });
  t.same(
    view.hostStates.find((h) => h.instanceId === 'proxy-0'),
    {
      instanceId: 'proxy-0',
      role: 'proxy',
      group: 'proxy',
      state: 'failed',
      fromGeneration: 1,
      toGeneration: 2,
      releasedAt: 1,
      finishedAt: 2,
      message: logTail,
    },
  );
  t.same(summaryOf(step.rollout).hosts, view.hosts, 'the list entry counts the same');
  const samples = metricSamples(step.rollout);
  t.equal(samples.length, 15, 'a sample per group and state');
  t.same(
    samples.find((s) => s.labels.group === 'proxy' && s.labels.state === 'failed'),
    { labels: { group: 'proxy', state: 'failed' }, value: 1 },
  );
});

t.test('a completed rollout has no current wave', async (t) => {
  let step = advance(fleetRollout({ auth: 1, proxy: 0, other: 0 }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [{ instanceId: 'auth-0', generation: 2, state: 'ready', at: 1 }], 1, TIMEOUTS);
  t.equal(step.rollout.state, 'completed');
  t.equal(summaryOf(step.rollout).currentWave, undefined);
});
