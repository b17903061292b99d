// A simulated fleet for the rollout engine (control/rollout): a change that
// touches every host, agents that take a random time to become ready (or
// fail), reports delivered in random order. Used by the rollout tests and
// by bench/rollout-sim.ts; deterministic for a seed.
import { performance } from 'node:perf_hooks';
import { advance, type Timeouts } from '../../control/rollout/engine';
import { ROLLOUT_GROUPS, type HostReport, type Rollout, type RolloutGroup } from '../../control/rollout/model';
import { planRollout, type PlanHost } from '../../control/rollout/plan';
import type { RolloutPolicy } from '../../contract/settings';

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FleetShape {
  auth: number;
  proxy: number;
  /** Nodes and the other services. */
  other: number;
  /** Hosts running auth and proxy together (they go with the auth wave). */
  authProxy?: number;
}

const SERVICES: Record<keyof FleetShape, string[]> = { auth: ['auth'], proxy: ['proxy'], other: ['node'], authProxy: ['auth', 'proxy'] };

/** A host whose teleport.yaml changes from generation 1 to 2 (log severity INFO to DEBUG). */
export function changedHost(instanceId: string, services: readonly string[]): PlanHost {
  const yaml = (severity: string) => `teleport:\n  nodename: ${instanceId}\n  log:\n    severity: ${severity}\n`;
  return {
    host: { instanceId },
    services,
    current: { generation: 1, files: [{ path: '/etc/teleport.yaml', content: yaml('INFO'), secret: false }] },
    next: { generation: 2, files: [{ path: '/etc/teleport.yaml', content: yaml('DEBUG'), secret: false }] },
  };
}

/** The rollout of a change touching every host of `shape`; host ids are shuffled by `rng` so waves are not id order by luck. */
export function fleetRollout(
  shape: FleetShape,
  options: { rng?: () => number; policy?: RolloutPolicy; strategy?: Rollout['strategy'] } = {},
): Rollout {
  const hosts: PlanHost[] = [];
  for (const [kind, count] of Object.entries(shape) as Array<[keyof FleetShape, number]>)
    for (let i = 0; i < count; i++) hosts.push(changedHost(`${kind}-${i}`, SERVICES[kind]));
  if (options.rng) shuffle(hosts, options.rng);
  const rollout = planRollout({
    id: 'r-1',
    startedBy: 'admin',
    reason: 'PATCH /v1/settings logSeverity',
    now: 0,
    hosts,
    ...(options.policy ? { policy: options.policy } : {}),
    ...(options.strategy ? { strategy: options.strategy } : {}),
  });
  if (!rollout) throw new Error('the change touches no host');
  return rollout;
}

export interface SimulationOptions {
  rng: () => number;
  /** How long a released host takes to report ready (or failed), uniformly in this range. */
  applyMs: [number, number];
  /** Hosts whose agent reports a failure on the new generation. */
  failing?: ReadonlySet<string>;
  /** Hosts whose agent goes silent once released (offline). */
  silent?: ReadonlySet<string>;
  timeouts?: Timeouts;
  /** Give up after this many steps (a stuck engine must not hang the test), or stop there to change something. */
  maxSteps?: number;
  /** The simulated time the run starts at (to go on from an earlier run). */
  startAt?: number;
}

export interface SimulationResult {
  rollout: Rollout;
  steps: number;
  simulatedMs: number;
  /** The largest number of hosts of each group applying at once (outside-the-pace hosts excluded). */
  maxApplying: Record<RolloutGroup, number>;
  /** Each step that released a host past its group's maxUnavailable, or before an earlier group was done. */
  violations: string[];
  /** Host ids in the order they were released. */
  released: string[];
  /** Wall time spent in the engine's advance (not in the simulation around it). */
  engineMs: number;
}

/**
 * Runs the engine the way the control server will: after each report (or
 * timeout), advance; released hosts report after their apply time. Reports
 * due at the same moment arrive in a random order.
 */
export function simulate(start: Rollout, options: SimulationOptions): SimulationResult {
  const { rng, applyMs } = options;
  const timeouts = options.timeouts ?? { silentMs: 90_000 };
  const due = new Map<string, number>();
  const maxApplying: Record<RolloutGroup, number> = { auth: 0, proxy: 0, other: 0 };
  const violations: string[] = [];
  const released: string[] = [];
  let rollout = start;
  let now = options.startAt ?? 0;
  let steps = 0;
  const schedule = (id: string) => {
    if (!options.silent?.has(id)) due.set(id, now + applyMs[0] + rng() * (applyMs[1] - applyMs[0]));
  };
  // Hosts applying already (carried over by a supersede or an abort) report too.
  for (const h of start.hosts) if (h.state === 'applying') schedule(h.instanceId);
  let reports: HostReport[] = [];
  let engineMs = 0;
  for (; steps < (options.maxSteps ?? 100_000); steps++) {
    const started = performance.now();
    const step = advance(rollout, reports, now, timeouts);
    engineMs += performance.now() - started;
    rollout = step.rollout;
    for (const r of step.released) {
      released.push(r.instanceId);
      schedule(r.instanceId);
    }
    check(
      rollout,
      step.released.map((r) => r.instanceId),
      steps,
      maxApplying,
      violations,
    );
    if (rollout.state !== 'running') break;
    const next = Math.min(...due.values(), ...silentDeadlines(rollout, timeouts));
    if (!Number.isFinite(next)) break;
    now = next;
    reports = [];
    for (const [id, at] of due)
      if (at <= now) {
        due.delete(id);
        const h = rollout.hosts.find((x) => x.instanceId === id)!;
        const state = options.failing?.has(id) ? 'failed' : 'ready';
        reports.push({
          instanceId: id,
          generation: h.toGeneration,
          state,
          at,
          ...(state === 'failed' ? { message: 'teleport did not become ready' } : {}),
        });
      }
    shuffle(reports, rng);
  }
  return { rollout, steps, simulatedMs: now, maxApplying, violations, released, engineMs };
}

function silentDeadlines(rollout: Rollout, timeouts: Timeouts): number[] {
  return rollout.hosts.filter((h) => h.state === 'applying').map((h) => Math.max(h.releasedAt ?? 0, h.lastSeenAt ?? 0) + timeouts.silentMs);
}

/**
 * The engine's promises about one step's releases: a host is released only
 * when its group then has at most maxUnavailable applying (hosts carried in
 * applying by a supersede or booted hosts may be more, but then nothing is
 * released), and only when every earlier group is done.
 */
function check(
  rollout: Rollout,
  releasedNow: readonly string[],
  step: number,
  maxApplying: Record<RolloutGroup, number>,
  violations: string[],
): void {
  const releasedIds = new Set(releasedNow);
  let earlierBusy: RolloutGroup | undefined;
  for (const group of ROLLOUT_GROUPS) {
    const members = rollout.hosts.filter((h) => h.group === group);
    const applying = members.filter((h) => h.state === 'applying' && h.outsidePace !== 'booted').length;
    maxApplying[group] = Math.max(maxApplying[group], applying);
    const releasedHere = members.some((h) => releasedIds.has(h.instanceId));
    if (releasedHere && rollout.strategy === 'waves') {
      if (applying > rollout.pace[group].maxUnavailable)
        violations.push(
          `step ${step}: ${group} hosts released up to ${applying} applying, maxUnavailable ${rollout.pace[group].maxUnavailable}`,
        );
      if (earlierBusy) violations.push(`step ${step}: ${group} hosts released while ${earlierBusy} hosts were not done`);
    }
    if (!earlierBusy && members.some((h) => h.state === 'pending' || (h.state === 'applying' && h.outsidePace !== 'booted')))
      earlierBusy = group;
  }
}

function shuffle<T>(items: T[], rng: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
}
