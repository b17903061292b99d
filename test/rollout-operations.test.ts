// What an operator does to a running rollout: pause and resume, resume after
// a halt, abort (the reached hosts go back, as a rollout of their own), and
// a change saved while a rollout runs (it supersedes the running one).
import t from 'tap';
import { advance, RolloutStateError, type Step } from '../control/rollout/engine';
import type { HostReport, Rollout } from '../control/rollout/model';
import { abort, pause, resume } from '../control/rollout/operations';
import { planRollout, type PlanHost } from '../control/rollout/plan';
import type { RolloutPolicy } from '../contract/settings';
import { supersede } from '../control/rollout/supersede';
import { changedHost, fleetRollout } from './support/rollout-sim';

const TIMEOUTS = { silentMs: 60_000 };
const host = (r: Rollout, id: string) => r.hosts.find((h) => h.instanceId === id)!;
const report = (r: Rollout, id: string, state: 'ready' | 'failed', at: number): HostReport => ({
  instanceId: id,
  generation: host(r, id).toGeneration,
  state,
  at,
  ...(state === 'failed' ? { message: 'teleport exited: bad config' } : {}),
});
const states = (r: Rollout) => Object.fromEntries(r.hosts.map((h) => [h.instanceId, h.state]));

t.test('pause stops releasing; hosts applying still report; resume goes on from there', async (t) => {
  let step: Step = advance(fleetRollout({ auth: 2, proxy: 1, other: 0 }), [], 0, TIMEOUTS);
  step = pause(step.rollout, 'alice', 10);
  t.equal(step.rollout.state, 'paused');
  t.equal(step.rollout.note, 'paused by alice');
  step = advance(step.rollout, [report(step.rollout, 'auth-0', 'ready', 20)], 20, TIMEOUTS);
  t.equal(host(step.rollout, 'auth-0').state, 'ready', 'the applying host reported ready');
  t.same(step.released, [], 'but no host is released while paused');
  t.throws(() => pause(step.rollout, 'alice', 30), RolloutStateError, 'a paused rollout cannot be paused again');
  step = resume(step.rollout, 'bob', 40);
  t.equal(step.rollout.state, 'running');
  t.equal(step.rollout.note, undefined);
  step = advance(step.rollout, [], 40, TIMEOUTS);
  t.same(
    step.released.map((r) => r.instanceId),
    ['auth-1'],
  );
});

t.test('a failure while paused halts it', async (t) => {
  let step: Step = advance(fleetRollout({ auth: 2, proxy: 0, other: 0 }), [], 0, TIMEOUTS);
  step = pause(step.rollout, 'alice', 1);
  step = advance(step.rollout, [report(step.rollout, 'auth-0', 'failed', 2)], 2, TIMEOUTS);
  t.equal(step.rollout.state, 'halted');
});

t.test('resume after a halt tries the failed hosts again', async (t) => {
  let step: Step = advance(fleetRollout({ auth: 2, proxy: 0, other: 0 }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [report(step.rollout, 'auth-0', 'failed', 1)], 1, TIMEOUTS);
  t.equal(step.rollout.state, 'halted');
  step = resume(step.rollout, 'alice', 2);
  t.match(step.events[0].message, /1 failed hosts will be tried again/);
  t.equal(host(step.rollout, 'auth-0').state, 'pending');
  step = advance(step.rollout, [], 3, TIMEOUTS);
  t.same(step.released, [{ instanceId: 'auth-0', generation: 2 }], 'the failed host first, again at the pace');
});

t.test('abort rolls back the reached hosts only, as a rollout of its own', async (t) => {
  // 20 nodes, 2 at once: two ready, one failed, one applying, the rest never reached.
  let step: Step = advance(fleetRollout({ auth: 0, proxy: 0, other: 20 }, { policy: { other: { failureThreshold: 5 } } }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [report(step.rollout, 'other-0', 'ready', 1)], 1, TIMEOUTS);
  step = advance(step.rollout, [report(step.rollout, 'other-1', 'ready', 2)], 2, TIMEOUTS);
  step = advance(step.rollout, [report(step.rollout, 'other-2', 'failed', 3)], 3, TIMEOUTS);
  t.same(
    Object.entries(states(step.rollout)).filter(([, s]) => s !== 'pending'),
    [
      ['other-0', 'ready'],
      ['other-1', 'ready'],
      ['other-2', 'failed'],
      ['other-3', 'applying'],
      ['other-4', 'applying'],
    ],
  );
  const { aborted, rollback, released } = abort(step.rollout, { by: 'alice', now: 4, rollbackId: 'r-2' });
  t.equal(aborted.state, 'aborted');
  t.ok(rollback, 'a rollback rollout');
  t.equal(rollback!.kind, 'rollback');
  t.equal(rollback!.rollbackOf, 'r-1');
  t.same(
    rollback!.hosts.map((h) => [h.instanceId, h.state, h.fromGeneration, h.toGeneration]),
    [
      ['other-3', 'applying', 2, 1],
      ['other-4', 'applying', 2, 1],
      ['other-2', 'pending', 2, 1],
      ['other-0', 'pending', 2, 1],
      ['other-1', 'pending', 2, 1],
    ],
    'hosts caught applying go back at once, then the broken one, then the ready ones; nobody else',
  );
  t.same(released, [
    { instanceId: 'other-3', generation: 1 },
    { instanceId: 'other-4', generation: 1 },
  ]);
  t.equal(rollback!.diffs[0].hosts, 5, 'the rollback’s diff covers the reached hosts');
  t.match(rollback!.diffs[0].changes[0].files[0].diff, /- {4}severity: DEBUG\n\+ {4}severity: INFO/, 'and shows the old files coming back');
  // The rollback runs like any rollout; the carried hosts count against the pace.
  let back = advance(rollback!, [], 5, TIMEOUTS);
  t.same(back.released, [], 'two applying already: the pace of 2 is full');
  back = advance(back.rollout, [report(back.rollout, 'other-3', 'ready', 6)], 6, TIMEOUTS);
  t.same(
    back.released.map((r) => r.instanceId),
    ['other-2'],
  );
  t.throws(
    () => abort(aborted, { by: 'alice', now: 7, rollbackId: 'r-3' }),
    RolloutStateError,
    'an aborted rollout cannot be aborted again',
  );
});

t.test('abort before any host was reached leaves nothing to roll back', async (t) => {
  const step = pause(fleetRollout({ auth: 1, proxy: 0, other: 0 }), 'alice', 0);
  const { aborted, rollback } = abort(step.rollout, { by: 'alice', now: 1, rollbackId: 'r-2' });
  t.equal(aborted.state, 'aborted');
  t.equal(rollback, undefined);
});

/** A second change (severity DEBUG to WARN) for `ids`, planned against what each host has been released. */
function secondChange(r: Rollout, ids: string[], touched: (id: string) => boolean, policy?: RolloutPolicy): Rollout {
  const yaml = (id: string, severity: string) => `teleport:\n  nodename: ${id}\n  log:\n    severity: ${severity}\n`;
  const hosts: PlanHost[] = ids.map((id) => {
    const h = host(r, id);
    const gen = h.state === 'pending' ? h.fromGeneration : h.toGeneration;
    const now = gen === 1 ? 'INFO' : 'DEBUG';
    const base = changedHost(id, h.group === 'auth' ? ['auth'] : h.group === 'proxy' ? ['proxy'] : ['node']);
    return {
      ...base,
      current: { generation: gen, files: [{ path: '/etc/teleport.yaml', content: yaml(id, now), secret: false }] },
      next: { generation: 3, files: [{ path: '/etc/teleport.yaml', content: yaml(id, touched(id) ? 'WARN' : 'DEBUG'), secret: false }] },
    };
  });
  return planRollout({
    id: 'r-2',
    startedBy: 'bob',
    reason: 'PATCH /v1/settings logSeverity',
    now: 10,
    hosts,
    ...(policy ? { policy } : {}),
  })!;
}

t.test('a change saved during a rollout supersedes it: reached hosts go straight to the newest files', async (t) => {
  let step: Step = advance(fleetRollout({ auth: 2, proxy: 0, other: 4 }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [report(step.rollout, 'auth-0', 'ready', 1)], 1, TIMEOUTS);
  t.same(states(step.rollout), {
    'auth-0': 'ready',
    'auth-1': 'applying',
    'other-0': 'pending',
    'other-1': 'pending',
    'other-2': 'pending',
    'other-3': 'pending',
  });
  const ids = step.rollout.hosts.map((h) => h.instanceId);
  const next = secondChange(step.rollout, ids, () => true);
  const { superseded, next: successor, released } = supersede(step.rollout, next, 10);
  t.equal(superseded.state, 'superseded');
  t.equal(superseded.supersededBy, 'r-2');
  t.equal(successor.supersedes, 'r-1');
  t.same(
    successor.hosts.map((h) => [h.instanceId, h.state, h.fromGeneration, h.toGeneration]),
    [
      ['auth-1', 'applying', 1, 3],
      ['auth-0', 'pending', 2, 3],
      ['other-0', 'pending', 1, 3],
      ['other-1', 'pending', 1, 3],
      ['other-2', 'pending', 1, 3],
      ['other-3', 'pending', 1, 3],
    ],
    'the applying auth server goes on to generation 3 at once; pending nodes go from 1 to 3 in one step',
  );
  t.same(released, [{ instanceId: 'auth-1', generation: 3 }]);
  let s = advance(successor, [], 11, TIMEOUTS);
  t.same(s.released, [], 'the carried auth server holds the auth pace');
  t.same(
    advance(superseded, [report(superseded, 'auth-1', 'ready', 12)], 12, TIMEOUTS).rollout,
    superseded,
    'the superseded rollout no longer changes',
  );
  s = advance(s.rollout, [{ instanceId: 'auth-1', generation: 3, state: 'ready', at: 12 }], 12, TIMEOUTS);
  t.same(
    s.released.map((r) => r.instanceId),
    ['auth-0'],
  );
});

t.test('superseding keeps hosts the new change leaves alone out, but still awaits or counts them', async (t) => {
  const policy = { proxy: { maxUnavailable: 2, failureThreshold: 2 } };
  let step: Step = advance(fleetRollout({ auth: 0, proxy: 2, other: 2 }, { policy }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [report(step.rollout, 'proxy-0', 'failed', 1)], 1, TIMEOUTS);
  t.same(states(step.rollout), { 'proxy-0': 'failed', 'proxy-1': 'applying', 'other-0': 'pending', 'other-1': 'pending' });
  // The new change only touches the nodes.
  const next = secondChange(step.rollout, ['other-0', 'other-1'], () => true, policy);
  const { next: successor } = supersede(step.rollout, next, 10);
  t.same(
    successor.hosts.map((h) => [h.instanceId, h.state, h.toGeneration]),
    [
      ['proxy-1', 'applying', 2],
      ['proxy-0', 'failed', 2],
      ['other-0', 'pending', 3],
      ['other-1', 'pending', 3],
    ],
    'the applying proxy is still awaited on its generation, the failed one still counts',
  );
  const s = advance(successor, [], 11, TIMEOUTS);
  t.same(s.released, [], 'nodes wait for the proxies');
  const done = advance(s.rollout, [{ instanceId: 'proxy-1', generation: 2, state: 'ready', at: 12 }], 12, TIMEOUTS);
  t.equal(done.released.length, 1, 'then the nodes go');
  const strict = supersede(
    step.rollout,
    secondChange(step.rollout, ['other-0', 'other-1'], () => true),
    10,
  ).next;
  t.equal(
    advance(strict, [], 11, TIMEOUTS).rollout.state,
    'halted',
    'with the default proxy threshold of 1 the carried failure halts the new rollout',
  );
});

t.test('a change saved while a rollout is paused supersedes it and starts paused', async (t) => {
  const step = pause(advance(fleetRollout({ auth: 1, proxy: 0, other: 2 }), [], 0, TIMEOUTS).rollout, 'alice', 1);
  const next = secondChange(
    step.rollout,
    step.rollout.hosts.map((h) => h.instanceId),
    () => true,
  );
  const { next: successor } = supersede(step.rollout, next, 2);
  t.equal(successor.state, 'paused');
  t.match(successor.note, /took over r-1, which was paused/);
  t.throws(() => supersede({ ...step.rollout, state: 'completed' }, next, 3), RolloutStateError, 'a finished rollout is not superseded');
});

t.test('hosts carried in applying may exceed the new rollout’s pace; nothing is released until the group is below it', async (t) => {
  // 40 nodes at 10 %: 4 applying. The new change touches 3 of them and 2 pending nodes: its pace is 1.
  const step = advance(fleetRollout({ auth: 0, proxy: 0, other: 40 }), [], 0, TIMEOUTS);
  const applying = step.rollout.hosts.filter((h) => h.state === 'applying').map((h) => h.instanceId);
  t.equal(applying.length, 4);
  const ids = [...applying.slice(0, 3), 'other-20', 'other-21'];
  const { next } = supersede(
    step.rollout,
    secondChange(step.rollout, ids, () => true),
    10,
  );
  t.equal(next.pace.other.maxUnavailable, 1, '10 % of the 5 hosts it plans');
  let s = advance(next, [], 11, TIMEOUTS);
  t.same(s.released, [], 'four applying: nothing released');
  for (const [i, id] of applying.entries()) {
    s = advance(
      s.rollout,
      [{ instanceId: id, generation: host(s.rollout, id).toGeneration, state: 'ready', at: 12 + i }],
      12 + i,
      TIMEOUTS,
    );
    t.same(s.released.length, i === 3 ? 1 : 0, `${3 - i} still applying: ${i === 3 ? 'one released' : 'none released'}`);
  }
});
