// How fast a change reaches agents watching other replicas (issue 12): two
// control replicas on one PostgreSQL, 1,000 watching hosts split over them
// (two worker processes, one per replica). A settings change made through
// replica A with the all-at-once strategy (no pacing: what is measured is
// the propagation, not the rollout's waves) reaches every host; each reports
// applied as soon as the new generation reaches it. Then single-host
// assignment changes made through A, each watched by a host on replica B.
// Latency, on the machine's one wall clock: from the REST answer to the host
// having the new generation applied (what the target is about), and to the
// control server's answer to its report (the change recorded as applied).
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { World, WorldOptions } from '../test/support/world';
import { procCpuSeconds } from './fleet';
import { openPgWorld, type PgWorld } from './pg-world';
import { fmtMs, percentile, summary } from './stats';
import type { FromWatchWorker, ToWatchWorker } from './watch-worker';

export interface PropagationOptions {
  /** Two replicas on one PostgreSQL, or the one SQLite server (both worker processes on it). */
  store: 'postgres' | 'sqlite';
  hosts: number;
  /** Single-host changes through A watched on B. */
  samples: number;
  progress: (line: string) => void;
  openWorld: (name: string, opts: WorldOptions) => Promise<World>;
  closeWorld: (world: World) => Promise<void>;
  /** Tracks the world for the bench's cleanup on a signal. */
  track: (pg: PgWorld | undefined) => void;
}

export interface PropagationResult {
  store: PropagationOptions['store'];
  hosts: number;
  /** REST answer to the host having applied the new generation, ms, per replica the host watched. */
  fleet: { A: number[]; B: number[] };
  /** REST answer to the control server's answer to the host's applied report, ms. */
  fleetRecorded: number[];
  /** Hosts that had not applied the settings change by the deadline. */
  missing: number;
  single: number[];
  controlCpuSeconds: number;
  /** Watch streams the server ended (each opened again by its host). */
  watchEnds: number;
  /** Status reports the servers refused (each tried again, up to 5 times). */
  reportFailures: string[];
  /** Error records the replicas logged. */
  controlErrors: string[];
  load: [number, number];
}

const HEARTBEAT_MS = 20_000;
const DEADLINE_MS = 60_000;
const idOf = (i: number) => `i-0${(0xb0000 + i).toString(16).padStart(16, '0')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Applied = Extract<FromWatchWorker, { type: 'applied' }>;

export async function benchPropagation(opts: PropagationOptions): Promise<PropagationResult> {
  const controlArgs = ['--heartbeat-interval', `${HEARTBEAT_MS / 1000}s`];
  const pg = opts.store === 'postgres' ? await openPgWorld('bench-propagation', controlArgs, opts.openWorld, opts.closeWorld) : undefined;
  opts.track(pg);
  const world = pg?.world ?? (await opts.openWorld('bench-propagation-sqlite', { controlArgs }));
  const replicas = pg?.replicas ?? [world.control];
  const workers: ChildProcess[] = [];
  try {
    // With one server (SQLite), "B" is the same server: both worker processes on it.
    const [a, b] = [replicas[0], replicas[replicas.length - 1]];
    const ids = Array.from({ length: opts.hosts }, (_, i) => idOf(i));
    opts.progress(`propagation: assigning ${ids.length} hosts through replica A`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < ids.length) {
          const id = ids[next++];
          const res = await a.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
          if (res.status !== 200) throw new Error(`assigning ${id}: ${res.status} ${JSON.stringify(res.body)}`);
        }
      }),
    );
    // Applied reports as they come, and who waits for which host.
    const applied = new Map<string, Applied>();
    const waiting = new Map<string, () => void>();
    const failures: string[] = [];
    const caPem = readFileSync(a.caFile, 'utf8');
    const joinToken = readFileSync(a.joinTokenFile, 'utf8').trim();
    const onB = new Set<string>();
    let watchEnds = 0;
    const reportFailures: string[] = [];
    const started = [a, b].map((replica, r) => {
      const worker = fork(join(__dirname, 'watch-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(worker);
      const mine = ids.filter((_, i) => i % 2 === r);
      if (r === 1) for (const id of mine) onB.add(id);
      return new Promise<void>((resolve, reject) => {
        worker.on('message', (msg: FromWatchWorker) => {
          if (msg.type === 'started') resolve();
          else if (msg.type === 'watch-ends') watchEnds += msg.count;
          else if (msg.type === 'report-failed') reportFailures.push(msg.message);
          else if (msg.type === 'error') {
            failures.push(msg.message);
            reject(new Error(msg.message));
          } else {
            applied.set(msg.instanceId, msg);
            waiting.get(msg.instanceId)?.();
          }
        });
        worker.on('exit', (code) => reject(new Error(`watch worker exited with ${code}`)));
        const start: ToWatchWorker = { type: 'start', ids: mine, endpoint: replica.grpcAddr, caPem, joinToken, heartbeatMs: HEARTBEAT_MS };
        worker.send(start);
      });
    });
    opts.progress(`propagation: ${ids.length} hosts enrolling and watching, half on each replica`);
    await Promise.all(started);
    await sleep(2000);

    // 1. A settings change for every host, made through A, all at once.
    const load0 = loadavg()[0];
    const pids = replicas.map((r) => r.proc!.pid!);
    const cpu = () => pids.reduce((s, pid) => s + procCpuSeconds(pid), 0);
    const cpuBefore = cpu();
    applied.clear();
    const all = new Promise<void>((resolve) => {
      const check = () => applied.size >= ids.length && resolve();
      for (const id of ids) waiting.set(id, check);
    });
    const patched = await a.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG', rollout: { strategy: 'all-at-once' } });
    const answeredAt = Date.now();
    if (patched.status !== 200) throw new Error(`PATCH /v1/settings: ${patched.status} ${JSON.stringify(patched.body)}`);
    await Promise.race([all, sleep(DEADLINE_MS)]);
    const controlCpuSeconds = cpu() - cpuBefore;
    waiting.clear();
    const fleet = { A: [] as number[], B: [] as number[] };
    const fleetRecorded: number[] = [];
    for (const m of applied.values()) {
      fleet[onB.has(m.instanceId) ? 'B' : 'A'].push(m.appliedAt - answeredAt);
      fleetRecorded.push(m.recordedAt - answeredAt);
    }
    const missing = ids.length - applied.size;
    opts.progress(`propagation: settings change applied by ${applied.size} of ${ids.length} hosts`);
    await sleep(2000);

    // 2. One host's assignment, changed through A, watched on B.
    const single: number[] = [];
    const watchedOnB = ids.filter((id) => onB.has(id));
    for (let k = 0; k < opts.samples; k++) {
      const id = watchedOnB[k % watchedOnB.length];
      applied.delete(id);
      const seen = new Promise<void>((resolve) => waiting.set(id, resolve));
      const put = await a.rest('PUT', `/v1/instances/${id}/assignment`, {
        role: 'node',
        labels: { sample: String(k) },
        rollout: { strategy: 'all-at-once' },
      });
      const at = Date.now();
      if (put.status !== 200) throw new Error(`PUT assignment ${id}: ${put.status} ${JSON.stringify(put.body)}`);
      await Promise.race([seen, sleep(10_000)]);
      waiting.delete(id);
      const m = applied.get(id);
      if (m) single.push(m.appliedAt - at);
      else opts.progress(`propagation: ${id} did not apply its change within 10 s`);
      await sleep(100);
    }
    if (failures.length) throw new Error(failures[0]);
    for (const w of workers) w.send({ type: 'count-watch-ends' } satisfies ToWatchWorker);
    await sleep(500);
    const controlErrors = replicas.flatMap((r) => r.logs.split('\n').filter((l) => l.includes('"level":50')));
    return {
      store: opts.store,
      hosts: ids.length,
      fleet,
      fleetRecorded,
      missing,
      single,
      controlCpuSeconds,
      watchEnds,
      reportFailures,
      controlErrors,
      load: [load0, loadavg()[0]],
    };
  } finally {
    for (const w of workers) if (w.connected) w.send({ type: 'close' } satisfies ToWatchWorker);
    await Promise.all(workers.map((w) => new Promise<void>((done) => (w.exitCode === null ? w.once('exit', () => done()) : done()))));
    opts.track(undefined);
    await (pg ? pg.close() : opts.closeWorld(world));
  }
}

const TARGET_MS = 1000;

/** The figures; returns the errors (hosts that never applied). */
export function printPropagation(r: PropagationResult, out: (line?: string) => void): string[] {
  const both = [...r.fleet.A, ...r.fleet.B];
  const p99 = percentile(both, 99);
  const where = r.store === 'postgres' ? '2 PostgreSQL replicas (half on each)' : 'the one SQLite server (two worker processes)';
  out(
    `== Propagation: ${r.hosts} watching hosts on ${where}; load average ${r.load[0].toFixed(2)} at the start, ${r.load[1].toFixed(2)} at the end`,
  );
  out(
    `   settings change through replica A, "rollout": {"strategy": "all-at-once"}; REST answer to the host having it applied (its own clock):`,
  );
  out(`     every host:            ${summary(both)}   target p99 <= 1 s: ${p99 <= TARGET_MS ? 'ok' : 'MISSED'}`);
  if (r.store === 'postgres') {
    out(`     hosts on replica A:    ${summary(r.fleet.A)}`);
    out(`     hosts on replica B:    ${summary(r.fleet.B)}`);
  }
  out(`     recorded by the control server (its answer to the host's applied report): ${summary(r.fleetRecorded)}`);
  out(
    `     control CPU (${r.store === 'postgres' ? 'both replicas' : 'the server'}) until the last host applied: ${r.controlCpuSeconds.toFixed(1)} s`,
  );
  out(`     watch streams the servers ended during the run (each opened again by its host): ${r.watchEnds}`);
  out(
    `     status reports refused (and tried again): ${r.reportFailures.length}${r.reportFailures.length ? `, the first: ${r.reportFailures[0]}` : ''}`,
  );
  if (r.controlErrors.length) {
    out(`     the replicas logged ${r.controlErrors.length} errors; the first:`);
    for (const line of r.controlErrors.slice(0, 2)) out(`       ${line.slice(0, 400)}`);
  }
  out(
    `   one host's assignment changed through A, the host watching ${r.store === 'postgres' ? 'B' : 'it'} (${r.single.length} changes, one at a time), applied: p50 ${fmtMs(percentile(r.single, 50))}, p99 ${fmtMs(percentile(r.single, 99))}, max ${fmtMs(Math.max(...r.single))}`,
  );
  out();
  return r.missing ? [`propagation (${r.store}): ${r.missing} hosts did not apply the settings change within ${DEADLINE_MS / 1000} s`] : [];
}
