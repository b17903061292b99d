// The rollout engine (control/rollout/engine.ts) as a specification: waves
// in Teleport's upgrade order, the pace per group, the halt at the failure
// threshold with unreached hosts untouched, silent hosts, booting hosts and
// the all-at-once escape. Pure code: the reports are what agents would say.
import t from 'tap';
import { advance, type Step } from '../control/rollout/engine';
import { abort } from '../control/rollout/operations';
import type { HostReport, Rollout } from '../control/rollout/model';
import { admitBooted, releasedGeneration } from '../control/rollout/release-gate';
import { fleetRollout, seededRandom, simulate } from './support/rollout-sim';

const TIMEOUTS = { silentMs: 60_000 };
const ready = (r: Rollout, id: string, at: number): HostReport => ({
  instanceId: id,
  generation: host(r, id).toGeneration,
  state: 'ready',
  at,
});
const failed = (r: Rollout, id: string, at: number, message = 'teleport did not become ready'): HostReport => ({
  instanceId: id,
  generation: host(r, id).toGeneration,
  state: 'failed',
  message,
  at,
});
const host = (r: Rollout, id: string) => r.hosts.find((h) => h.instanceId === id)!;
const idsIn = (r: Rollout, state: string) => r.hosts.filter((h) => h.state === state).map((h) => h.instanceId);
const releasedIds = (s: Step) => s.released.map((x) => x.instanceId);

t.test('auth servers go first, one at a time, then proxies, then everything else', async (t) => {
  let step = advance(fleetRollout({ auth: 2, proxy: 2, other: 3, authProxy: 1 }), [], 0, TIMEOUTS);
  t.same(releasedIds(step), ['auth-0'], 'one auth server at a time (maxUnavailable 1)');
  t.equal(host(step.rollout, 'auth-0').state, 'applying');
  step = advance(step.rollout, [], 1000, TIMEOUTS);
  t.same(step.released, [], 'nothing more while it applies');
  step = advance(step.rollout, [ready(step.rollout, 'auth-0', 2000)], 2000, TIMEOUTS);
  t.same(releasedIds(step), ['auth-1'], 'the next auth server once the first is ready on the new generation');
  step = advance(step.rollout, [ready(step.rollout, 'auth-1', 3000)], 3000, TIMEOUTS);
  t.same(releasedIds(step), ['authProxy-0'], 'an auth-proxy host goes with the auth wave');
  step = advance(step.rollout, [ready(step.rollout, 'authProxy-0', 4000)], 4000, TIMEOUTS);
  t.same(releasedIds(step), ['proxy-0'], 'proxies only after every auth host is ready');
  step = advance(step.rollout, [ready(step.rollout, 'proxy-0', 5000)], 5000, TIMEOUTS);
  step = advance(step.rollout, [ready(step.rollout, 'proxy-1', 6000)], 6000, TIMEOUTS);
  t.same(releasedIds(step), ['other-0'], 'then the rest: 10 % of 3 nodes rounds up to 1');
  step = advance(step.rollout, [ready(step.rollout, 'other-0', 7000)], 7000, TIMEOUTS);
  step = advance(step.rollout, [ready(step.rollout, 'other-1', 8000)], 8000, TIMEOUTS);
  t.equal(step.rollout.state, 'running');
  step = advance(step.rollout, [ready(step.rollout, 'other-2', 9000)], 9000, TIMEOUTS);
  t.equal(step.rollout.state, 'completed', 'completed when every host is ready');
  t.ok(
    step.events.some((e) => e.kind === 'completed'),
    'and says so',
  );
});

t.test('a report about an older generation leaves the host applying', async (t) => {
  let step = advance(fleetRollout({ auth: 1, proxy: 0, other: 1 }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [{ instanceId: 'auth-0', generation: 1, state: 'ready', at: 10 }], 10, TIMEOUTS);
  t.equal(host(step.rollout, 'auth-0').state, 'applying', 'ready on its old files is not ready on the new ones');
  t.same(step.released, [], 'so the next wave waits');
  step = advance(step.rollout, [{ instanceId: 'auth-0', generation: 1, state: 'failed', message: 'old', at: 20 }], 20, TIMEOUTS);
  t.equal(host(step.rollout, 'auth-0').state, 'applying', 'a failure on the old generation is not this rollout’s');
});

t.test('a failed auth server halts the rollout; hosts not reached keep their old files', async (t) => {
  let step = advance(fleetRollout({ auth: 2, proxy: 2, other: 5 }), [], 0, TIMEOUTS);
  step = advance(
    step.rollout,
    [failed(step.rollout, 'auth-0', 500, 'journal: listen tcp 0.0.0.0:3025: bind: address already in use')],
    500,
    TIMEOUTS,
  );
  t.equal(step.rollout.state, 'halted', 'failureThreshold 1 for auth');
  t.match(step.rollout.note, /1 of 2 auth hosts failed \(threshold 1\); auth-0: journal: listen tcp/, 'the note says which host and why');
  t.same(step.released, [], 'nothing else is released');
  t.same(idsIn(step.rollout, 'pending').sort(), ['auth-1', 'other-0', 'other-1', 'other-2', 'other-3', 'other-4', 'proxy-0', 'proxy-1']);
  for (const id of ['auth-1', 'proxy-0', 'other-3'])
    t.equal(
      releasedGeneration(step.rollout, { instanceId: id, appliedGeneration: 1, latestGeneration: 2 }),
      1,
      `${id} may apply only its old generation`,
    );
  t.equal(
    releasedGeneration(step.rollout, { instanceId: 'auth-0', appliedGeneration: 1, latestGeneration: 2 }),
    2,
    'the reached host keeps the new one',
  );
  const later = advance(step.rollout, [], 100_000, TIMEOUTS);
  t.same(later.released, [], 'a halted rollout stays halted');
  t.equal(later.rollout.state, 'halted');
});

t.test('nodes halt at 5 % failed (rounded up), not before', async (t) => {
  // 40 nodes: maxUnavailable 10 % = 4, failureThreshold 5 % = 2.
  let step = advance(fleetRollout({ auth: 0, proxy: 0, other: 40 }), [], 0, TIMEOUTS);
  t.equal(step.released.length, 4, '10 % of 40 applying at once');
  const [a, b, c] = step.released;
  step = advance(step.rollout, [failed(step.rollout, a.instanceId, 10)], 10, TIMEOUTS);
  t.equal(step.rollout.state, 'running', 'one failure of 40 is below the threshold');
  t.equal(step.released.length, 1, 'and the failed host frees its place for the next');
  step = advance(step.rollout, [ready(step.rollout, b.instanceId, 20), failed(step.rollout, c.instanceId, 20)], 20, TIMEOUTS);
  t.equal(step.rollout.state, 'halted', 'the second failure reaches 5 % of 40');
  t.same(step.released, [], 'no host released in the step that halts');
});

t.test('an agent that goes silent while applying counts as failed after the timeout', async (t) => {
  let step = advance(fleetRollout({ auth: 0, proxy: 1, other: 1 }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [{ instanceId: 'proxy-0', generation: 2, state: 'applying', at: 30_000 }], 30_000, TIMEOUTS);
  step = advance(step.rollout, [], 89_999, TIMEOUTS);
  t.equal(host(step.rollout, 'proxy-0').state, 'applying', 'a heartbeat at 30 s keeps it alive until 90 s');
  step = advance(step.rollout, [], 90_000, TIMEOUTS);
  t.equal(host(step.rollout, 'proxy-0').state, 'failed');
  t.match(host(step.rollout, 'proxy-0').message, /no report from the agent for 60s while applying/);
  t.equal(step.rollout.state, 'halted');
});

t.test('silence while the control server could not reach its store does not count', async (t) => {
  let step = advance(fleetRollout({ auth: 0, proxy: 1, other: 1 }), [], 0, TIMEOUTS);
  // The database was unreachable until 100 s: every report meanwhile was refused.
  const outage = { ...TIMEOUTS, silentSince: 100_000 };
  step = advance(step.rollout, [], 100_000, outage);
  t.equal(host(step.rollout, 'proxy-0').state, 'applying', 'silent for 100 s, 100 of them in the outage: still applying');
  step = advance(step.rollout, [], 159_999, outage);
  t.equal(host(step.rollout, 'proxy-0').state, 'applying', 'its agent has the silence timeout from the end of the outage to report');
  step = advance(step.rollout, [], 160_000, outage);
  t.equal(host(step.rollout, 'proxy-0').state, 'failed', 'and counts as failed when it stays silent after');
});

t.test('a host not ready within readyMs counts as failed', async (t) => {
  const timeouts = { silentMs: 60_000, readyMs: 120_000 };
  let step = advance(fleetRollout({ auth: 1, proxy: 0, other: 0 }), [], 0, timeouts);
  for (let at = 30_000; at < 120_000; at += 30_000)
    step = advance(
      step.rollout,
      [{ instanceId: 'auth-0', generation: 2, state: 'applying', message: 'waiting for teleport', at }],
      at,
      timeouts,
    );
  t.equal(host(step.rollout, 'auth-0').state, 'applying');
  step = advance(step.rollout, [], 120_000, timeouts);
  t.equal(host(step.rollout, 'auth-0').state, 'failed');
  t.match(host(step.rollout, 'auth-0').message, /not ready on generation 2 within 120s/);
});

t.test('a host that failed and later reports ready counts as ready; the halt stays', async (t) => {
  let step = advance(fleetRollout({ auth: 1, proxy: 1, other: 0 }), [], 0, TIMEOUTS);
  step = advance(step.rollout, [failed(step.rollout, 'auth-0', 10)], 10, TIMEOUTS);
  step = advance(step.rollout, [ready(step.rollout, 'auth-0', 20)], 20, TIMEOUTS);
  t.equal(host(step.rollout, 'auth-0').state, 'ready');
  t.ok(step.events.some((e) => e.kind === 'recovered'));
  t.equal(step.rollout.state, 'halted', 'until an operator resumes');
});

t.test('an instance that boots during the rollout gets the new files at once, outside the pace', async (t) => {
  let step = advance(fleetRollout({ auth: 1, proxy: 0, other: 20 }), [], 0, TIMEOUTS);
  t.equal(
    releasedGeneration(step.rollout, { instanceId: 'new-host', appliedGeneration: undefined, latestGeneration: 2 }),
    2,
    'a host outside the rollout with nothing applied gets the newest',
  );
  t.equal(
    releasedGeneration(step.rollout, { instanceId: 'other-3', appliedGeneration: undefined, latestGeneration: 2 }),
    2,
    'so does a pending one that boots with nothing applied',
  );
  t.equal(
    releasedGeneration(step.rollout, { instanceId: 'other-3', appliedGeneration: 1, latestGeneration: 2 }),
    1,
    'a pending one that has files keeps them',
  );
  t.equal(
    releasedGeneration(step.rollout, { instanceId: 'outside', appliedGeneration: 5, latestGeneration: 6 }),
    5,
    'a host outside the rollout keeps its applied generation',
  );
  step = admitBooted(step.rollout, 'other-3', 100);
  t.same(step.released, [{ instanceId: 'other-3', generation: 2 }]);
  t.equal(host(step.rollout, 'other-3').state, 'applying');
  t.equal(host(step.rollout, 'other-3').outsidePace, 'booted');
  step = advance(step.rollout, [ready(step.rollout, 'auth-0', 200)], 200, TIMEOUTS);
  t.equal(step.released.length, 2, 'the booted host does not take a node’s place in the pace (10 % of 20 = 2)');
  t.notOk(releasedIds(step).includes('other-3'));
  t.same(admitBooted(step.rollout, 'auth-0', 300).released, [], 'a host already reached is not released again');
});

t.test('all-at-once releases every host in one step, without pace or halt', async (t) => {
  let step = advance(fleetRollout({ auth: 2, proxy: 3, other: 30 }, { strategy: 'all-at-once' }), [], 0, TIMEOUTS);
  t.equal(step.released.length, 35, 'every host at once');
  t.equal(step.rollout.strategy, 'all-at-once', 'recorded on the rollout for the audit');
  step = advance(step.rollout, [failed(step.rollout, 'auth-0', 10), failed(step.rollout, 'auth-1', 10)], 10, TIMEOUTS);
  t.equal(step.rollout.state, 'running', 'failures do not halt what is released already');
  const rest = step.rollout.hosts.filter((h) => h.state === 'applying').map((h) => ready(step.rollout, h.instanceId, 20));
  step = advance(step.rollout, rest, 20, TIMEOUTS);
  t.equal(step.rollout.state, 'completed');
  t.match(step.rollout.note, /2 of 35 hosts failed/);
});

t.test('a simulated fleet completes with every host ready and in order', async (t) => {
  const rng = seededRandom(7);
  const result = simulate(fleetRollout({ auth: 2, proxy: 10, other: 60 }, { rng }), { rng, applyMs: [1000, 3000] });
  t.equal(result.rollout.state, 'completed');
  t.same(result.violations, []);
  t.equal(result.rollout.hosts.filter((h) => h.state === 'ready').length, 72);
  const firstProxy = result.released.findIndex((id) => id.startsWith('proxy'));
  const firstNode = result.released.findIndex((id) => id.startsWith('other'));
  t.same(result.released.slice(0, 2).sort(), ['auth-0', 'auth-1']);
  t.ok(firstProxy === 2 && firstNode === 12, 'auth, then the 10 proxies, then the nodes');
});

t.test(
  'a host offline when its turn comes is skipped, not failed: the next one goes in its place; silent while applying still fails',
  async (t) => {
    let step = advance(fleetRollout({ auth: 1, proxy: 1, other: 3 }), [], 0, TIMEOUTS);
    step = advance(step.rollout, [ready(step.rollout, 'auth-0', 1000)], 1000, TIMEOUTS, new Set(['proxy-0']));
    t.equal(host(step.rollout, 'proxy-0').state, 'skipped', 'the only proxy was offline at its turn');
    t.match(host(step.rollout, 'proxy-0').message, /offline when its turn came/);
    t.same(releasedIds(step), ['proxy-0', 'other-0'], 'released without being waited for; the nodes go on');
    t.equal(host(step.rollout, 'other-0').state, 'applying');
    t.ok(
      step.events.some((e) => e.kind === 'skipped' && e.instanceId === 'proxy-0'),
      'the skip is an event',
    );
    t.equal(step.rollout.state, 'running', 'a skipped host does not halt the rollout (proxy threshold 1)');
    step = advance(step.rollout, [ready(step.rollout, 'other-0', 2000)], 2000, TIMEOUTS, new Set(['other-1']));
    t.same(releasedIds(step), ['other-1', 'other-2'], 'a skipped node takes no room: the next pending node is released');
    t.same(idsIn(step.rollout, 'skipped'), ['proxy-0', 'other-1']);
    // other-2 goes silent while applying: a failure after the timeout, as before.
    step = advance(step.rollout, [], 2000 + TIMEOUTS.silentMs, TIMEOUTS);
    t.equal(host(step.rollout, 'other-2').state, 'failed', 'silent while applying is a failure');
    t.equal(step.rollout.state, 'halted');

    let done = advance(fleetRollout({ auth: 1, proxy: 0, other: 1 }), [], 0, TIMEOUTS);
    done = advance(done.rollout, [ready(done.rollout, 'auth-0', 10)], 10, TIMEOUTS, new Set(['other-0']));
    t.equal(done.rollout.state, 'completed', 'completed with the skipped host');
    const back = advance(done.rollout, [ready(done.rollout, 'other-0', 20)], 20, TIMEOUTS);
    t.equal(host(back.rollout, 'other-0').state, 'skipped', 'a finished rollout does not change');

    // A skipped host was released its new generation: an abort rolls it back like any host it reached.
    const running = advance(fleetRollout({ auth: 1, proxy: 0, other: 3 }), [], 0, TIMEOUTS, new Set(['auth-0']));
    t.same(idsIn(running.rollout, 'skipped'), ['auth-0']);
    t.same(idsIn(running.rollout, 'applying'), ['other-0']);
    const out = abort(running.rollout, { by: 'op', now: 20, rollbackId: 'rb' });
    t.same(
      out.rollback?.hosts.map((h) => [h.instanceId, h.state, h.toGeneration]),
      [
        ['auth-0', 'pending', 1],
        ['other-0', 'applying', 1],
      ],
      'the skipped host is in the rollback, back to its old generation',
    );
  },
);
