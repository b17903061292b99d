// BENCH_ONLY=rollout-sim: the rollout engine (control/rollout) driven over
// the fleet shape, 2 auth, 50 proxy and 948 nodes at the default
// pace, each released host becoming ready after a random 1-3 s of simulated
// time. A SIMULATION of the engine's decisions, not a fleet: no agent, no
// control server, no Teleport. The real-fleet rollout bench comes when the
// engine is wired to the store, gRPC and REST.
import { ROLLOUT_GROUPS, type RolloutGroup } from '../control/rollout/model';
import { fleetRollout, seededRandom, simulate, type SimulationResult } from '../test/support/rollout-sim';
import { fmtMs, median } from './stats';

const SHAPE = { auth: 2, proxy: 50, other: 948 };
const SEEDS = [1, 2, 3, 4, 5];

export interface RolloutSimRun {
  seed: number;
  result: SimulationResult;
  pace: Record<RolloutGroup, { maxUnavailable: number; failureThreshold: number }>;
}

export interface RolloutSimBench {
  runs: RolloutSimRun[];
  /** One auth server that never becomes ready: where the rollout stops. */
  halted: { result: SimulationResult; reachedProxies: number; reachedNodes: number };
}

export function benchRolloutSim(): RolloutSimBench {
  const runs = SEEDS.map((seed) => {
    const rng = seededRandom(seed);
    const rollout = fleetRollout(SHAPE, { rng });
    const result = simulate(rollout, { rng, applyMs: [1000, 3000] });
    return { seed, result, pace: rollout.pace };
  });
  const rng = seededRandom(42);
  const rollout = fleetRollout(SHAPE, { rng });
  const firstAuth = rollout.hosts.find((h) => h.group === 'auth')!.instanceId;
  const result = simulate(rollout, { rng, applyMs: [1000, 3000], failing: new Set([firstAuth]) });
  const reached = (group: RolloutGroup) => result.rollout.hosts.filter((h) => h.group === group && h.state !== 'pending').length;
  return { runs, halted: { result, reachedProxies: reached('proxy'), reachedNodes: reached('other') } };
}

export function printRolloutSim(bench: RolloutSimBench, out: (line?: string) => void): boolean {
  out(`== Rollout engine SIMULATION (control/rollout; no agents, no control server: the engine's decisions only)`);
  out(
    `   fleet: ${SHAPE.auth} auth, ${SHAPE.proxy} proxy, ${SHAPE.other} nodes; default pace; each host ready 1-3 s (simulated) after release`,
  );
  out(`   the real-fleet rollout bench comes when the engine is wired to the store, gRPC and REST`);
  let ok = true;
  for (const run of bench.runs) {
    const r = run.result;
    const perGroup = ROLLOUT_GROUPS.map((g) => {
      const within = r.maxApplying[g] <= run.pace[g].maxUnavailable;
      ok &&= within;
      return `${g} ${r.maxApplying[g]}/${run.pace[g].maxUnavailable}${within ? '' : ' EXCEEDED'}`;
    }).join(', ');
    ok &&= r.rollout.state === 'completed' && r.violations.length === 0;
    out(
      `   seed ${run.seed}: ${r.rollout.state} in ${fmtMs(r.simulatedMs)} simulated, ${r.steps} engine steps (${fmtMs(r.engineMs)} in the engine, ${((1000 * r.engineMs) / r.steps).toFixed(0)} µs per step); most applying at once (max/maxUnavailable): ${perGroup}`,
    );
    for (const v of r.violations.slice(0, 5)) out(`     VIOLATION ${v}`);
  }
  out(`   median simulated time to complete: ${fmtMs(median(bench.runs.map((r) => r.result.simulatedMs)))}`);
  const h = bench.halted;
  const haltedOk = h.result.rollout.state === 'halted' && h.reachedProxies === 0 && h.reachedNodes === 0;
  ok &&= haltedOk;
  out(
    `   one auth server never ready: ${h.result.rollout.state} after ${fmtMs(h.result.simulatedMs)} simulated; proxies reached ${h.reachedProxies}, nodes reached ${h.reachedNodes} ${haltedOk ? '(ok: nothing after it touched)' : 'WRONG'}`,
  );
  out();
  return ok;
}
