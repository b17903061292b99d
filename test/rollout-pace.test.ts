// The pace holds whatever the fleet and whatever order the agents report
// in: random fleets, random apply times, random report orders and random
// failures below the threshold, each from a seed printed with any failure.
import t from 'tap';
import { planRollout, type PlanHost } from '../control/rollout/plan';
import { resolvePace } from '../control/rollout/policy';
import { supersede } from '../control/rollout/supersede';
import { fleetRollout, seededRandom, simulate } from './support/rollout-sim';

const RUNS = 60;

t.test('never more than maxUnavailable applying per group, and no group before the previous one is done', async (t) => {
  for (let seed = 1; seed <= RUNS; seed++) {
    const rng = seededRandom(seed);
    const shape = {
      auth: 1 + Math.floor(rng() * 4),
      authProxy: Math.floor(rng() * 2),
      proxy: Math.floor(rng() * 12),
      other: Math.floor(rng() * 300),
    };
    const policy =
      rng() < 0.5
        ? undefined
        : {
            auth: { maxUnavailable: 1 + Math.floor(rng() * 2), failureThreshold: 2 },
            other: { maxUnavailable: `${1 + Math.floor(rng() * 40)}%`, failureThreshold: '20%' },
          };
    const rollout = fleetRollout(shape, { rng, ...(policy ? { policy } : {}) });
    // A few node failures: below the threshold the run goes to the end, at it the rollout halts.
    const failing = new Set(rollout.hosts.filter((h) => h.group === 'other' && rng() < 0.01).map((h) => h.instanceId));
    const result = simulate(rollout, { rng, applyMs: [200, 5000], failing });
    const label = `seed ${seed}: ${JSON.stringify(shape)} ${policy ? 'custom pace' : 'default pace'}`;
    t.same(result.violations, [], label);
    for (const group of ['auth', 'proxy', 'other'] as const)
      t.ok(
        result.maxApplying[group] <= rollout.pace[group].maxUnavailable,
        `${label}: ${group} at most ${rollout.pace[group].maxUnavailable}`,
      );
    const expected = failing.size > 0 && failing.size >= rollout.pace.other.failureThreshold ? 'halted' : 'completed';
    t.equal(result.rollout.state, expected, `${label}: ${expected}`);
    if (expected === 'completed') t.equal(result.released.length, rollout.hosts.length, `${label}: every host released once`);
  }
});

t.test('the pace is used to the full: a group releases up to maxUnavailable at once', async (t) => {
  const rng = seededRandom(99);
  const rollout = fleetRollout({ auth: 3, proxy: 8, other: 200 }, { rng, policy: { proxy: { maxUnavailable: '50%' } } });
  const result = simulate(rollout, { rng, applyMs: [1000, 3000] });
  t.same(result.maxApplying, { auth: 1, proxy: 4, other: 20 }, 'auth 1, proxy 50 % of 8, nodes 10 % of 200');
  t.same(resolvePace(undefined, { auth: 3, proxy: 8, other: 200 }).other, { maxUnavailable: 20, failureThreshold: 10 });
});

t.test(
  'a change saved at a random moment supersedes the rollout; the pace and order still hold and every host ends on its newest files',
  async (t) => {
    for (let seed = 1; seed <= 30; seed++) {
      const rng = seededRandom(1000 + seed);
      const shape = { auth: 1 + Math.floor(rng() * 3), proxy: Math.floor(rng() * 8), other: Math.floor(rng() * 200) };
      const first = fleetRollout(shape, { rng });
      const part = simulate(first, { rng, applyMs: [200, 5000], maxSteps: Math.floor(rng() * first.hosts.length) });
      if (part.rollout.state !== 'running') continue;
      // The second change touches a random half of the hosts: generation 3 for them.
      const touched = new Set(first.hosts.filter(() => rng() < 0.5).map((h) => h.instanceId));
      const hosts: PlanHost[] = part.rollout.hosts.map((h) => {
        const released = h.state === 'pending' ? h.fromGeneration : h.toGeneration;
        const content = (g: number) => [{ path: '/etc/teleport.yaml', content: `generation ${g}\n`, secret: false }];
        const newest = touched.has(h.instanceId) ? 3 : 2;
        return {
          host: { instanceId: h.instanceId },
          services: h.group === 'auth' ? ['auth'] : h.group === 'proxy' ? ['proxy'] : ['node'],
          current: { generation: released, files: content(released) },
          next: { generation: newest, files: content(newest) },
        };
      });
      const next = planRollout({ id: 'r-2', startedBy: 'bob', reason: 'second change', now: part.simulatedMs, hosts });
      const label = `seed ${1000 + seed}: ${JSON.stringify(shape)} superseded after ${part.steps} steps`;
      if (!next) continue;
      const taken = supersede(part.rollout, next, part.simulatedMs);
      const rest = simulate(taken.next, { rng, applyMs: [200, 5000], startAt: part.simulatedMs });
      t.same([...part.violations, ...rest.violations], [], label);
      t.equal(rest.rollout.state, 'completed', `${label}: completed`);
      const final = new Map(rest.rollout.hosts.map((h) => [h.instanceId, h]));
      const wrong = first.hosts.filter((h) => {
        const newest = touched.has(h.instanceId) ? 3 : 2;
        const inNext = final.get(h.instanceId);
        // A host the successor does not hold stays where the first rollout left it.
        const old = part.rollout.hosts.find((x) => x.instanceId === h.instanceId)!;
        const on = inNext
          ? inNext.state === 'ready'
            ? inNext.toGeneration
            : -1
          : old.state === 'ready'
            ? old.toGeneration
            : old.fromGeneration;
        return on !== newest;
      });
      t.same(
        wrong.map((h) => h.instanceId),
        [],
        `${label}: every host on its newest generation`,
      );
    }
  },
);
