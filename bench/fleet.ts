// A fleet of simulated hosts booting at once against one control server
// (a child process on SQLite, as in startWorld). The hosts run in a few
// worker processes (bench/fleet-worker.ts); this side hands out the hosts,
// pre-assigns roles over REST, starts every agent at the same moment, watches
// the control server's view (/v1/health, its memory and CPU) and gathers the
// figures.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlProcess } from '../test/support/harness';
import type { World } from '../test/support/world';
import { PHASES } from './boot';
import type { FromWorker, HostOutcome, RpcTimings, ToWorker, WorkerResult } from './fleet-worker';

export interface FleetOptions {
  count: number;
  workers: number;
  /** Every n-th host is a proxy, assigned by an EC2-tag rule at enrollment; the rest are nodes pre-assigned over REST. */
  proxyEvery: number;
  readyDelayMs: number;
  /** A host not ready by then counts as a failure. */
  deadlineMs: number;
  /** libuv threads per worker: file writes (with fsync) and DNS lookups of many hosts share them. */
  threadsPerWorker: number;
  progress: (line: string) => void;
  /** The control servers the agents talk to, worker w to replicas[w % n] (default: the world's one). */
  replicas?: ControlProcess[];
  /** The database server's CPU seconds so far (PostgreSQL: its processes), counted beside the control servers'. */
  databaseCpuSeconds?: () => number;
}

export interface FleetResult {
  count: number;
  proxies: number;
  workers: number;
  /** Agent view: start of the fleet to the last agent's `once` returning ready (NaN with failures). */
  allReadyMs: number;
  /** Control view: start to GET /v1/health showing byHealth.ready == count (NaN if never). */
  controlAllReadyMs: number;
  /** Per agent, start to its converge completing with state ready. */
  readyAtMs: number[];
  /** Start to the last successful enrollment. */
  enrollWindowMs: number;
  rpc: RpcTimings;
  failures: Array<{ instanceId: string; reason: string }>;
  /** Warnings the agents logged (each is a retry of something). */
  agentWarnings: number;
  lastWarnings: string[];
  phases: Array<{ label: string; atMs: number[] }>;
  controlPeakRssBytes: number;
  /** Every replica's CPU, summed. */
  controlCpuSeconds: number;
  /** The database server's (NaN for SQLite, which runs inside the control server). */
  databaseCpuSeconds: number;
  replicas: number;
  workersCpuSeconds: number;
  workersPeakRssBytes: number;
  workersLoopDelayP99Ms: number;
  workersLoopDelayMaxMs: number;
  /** This process: REST polling, s3rver and the SSM emulator. */
  mainCpuSeconds: number;
  /** Everything else on the machine during the run (other processes, the kernel's own threads). */
  otherCpuSeconds: number;
  wallSeconds: number;
}

/** Resident-set figures of a process, from /proc (bytes). */
export function procMemory(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** User + system CPU seconds of a process (clock ticks of 1/100 s on Linux). */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds the whole machine spent busy (every core, from /proc/stat). */
function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return (user + nice + system + irq + softirq + steal) / 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A worker holds hundreds of agents in one heap, where a real agent has a
 * host to itself: a young generation of 32 MiB (V8's default is 16) saves
 * the scavenges that this many agents' short-lived objects cause (measured
 * 1.3-2.2 s less per 1,000 hosts, in pairs of runs).
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=32'];

class WorkerHandle {
  readonly proc: ChildProcess;
  enrolled = 0;
  ready = 0;
  result: WorkerResult | undefined;
  private waiters: Array<{ type: FromWorker['type']; resolve: (msg: FromWorker) => void; reject: (err: Error) => void }> = [];

  constructor(threads: number) {
    this.proc = fork(join(__dirname, 'fleet-worker.js'), [], {
      execArgv: [...process.execArgv, ...WORKER_NODE_FLAGS, ...(process.env.BENCH_WORKER_FLAGS ?? '').split(' ').filter(Boolean)],
      env: { ...process.env, UV_THREADPOOL_SIZE: String(threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (msg: FromWorker) => {
      if (msg.type === 'progress') [this.enrolled, this.ready] = [msg.enrolled, msg.ready];
      if (msg.type === 'result') this.result = msg.result;
      if (msg.type === 'error') return this.failWaiters(new Error(`fleet worker ${this.proc.pid}: ${msg.message}`));
      for (const w of this.waiters.filter((x) => x.type === msg.type)) w.resolve(msg);
      this.waiters = this.waiters.filter((x) => x.type !== msg.type);
    });
    this.proc.on('exit', (code) => this.failWaiters(new Error(`fleet worker ${this.proc.pid} exited with ${code}`)));
  }

  private failWaiters(err: Error): void {
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }

  send(msg: ToWorker): void {
    this.proc.send(msg);
  }

  next<T extends FromWorker['type']>(type: T): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => this.waiters.push({ type, resolve: resolve as (m: FromWorker) => void, reject }));
  }

  /** Asks the worker to clean up and exit; kills it when it does not within 10 s. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    if (this.proc.connected) this.send({ type: 'close' });
    else this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export class Fleet {
  private readonly workers: WorkerHandle[] = [];
  private proxies = 0;

  constructor(
    private readonly world: World,
    private readonly opts: FleetOptions,
  ) {}

  /** Worker processes, emulators, agent.yaml files and assignments for every host; not timed. */
  async setup(): Promise<void> {
    const { world, opts } = this;
    const rule = await world.control.rest('POST', '/v1/rules', {
      name: 'proxies by tag',
      selector: { TeleportRole: 'proxy' },
      role: 'proxy',
    });
    if (rule.status !== 201) throw new Error(`adding the proxy rule failed: ${JSON.stringify(rule.body)}`);
    for (let w = 0; w < opts.workers; w++) this.workers.push(new WorkerHandle(opts.threadsPerWorker));
    const replicas = this.replicas;
    const setups = this.workers.map((worker, w) => {
      const hosts = [];
      for (let index = w; index < opts.count; index += opts.workers)
        hosts.push({ index, proxy: index % opts.proxyEvery === opts.proxyEvery - 1 });
      const done = worker.next('setup-done');
      worker.send({
        type: 'setup',
        hosts,
        worldDir: world.dir,
        controlDataDir: world.control.dataDir,
        grpcPort: replicas[w % replicas.length].grpcPort,
        ssmEndpoint: world.ssm.endpoint,
        s3Endpoint: world.s3.endpoint,
        readyDelayMs: opts.readyDelayMs,
      });
      return done;
    });
    const hosts = (await Promise.all(setups)).flatMap((m) => m.hosts);
    this.proxies = hosts.filter((h) => h.proxy).length;
    opts.progress(
      `fleet setup: ${hosts.length} hosts in ${opts.workers} worker processes; pre-assigning ${hosts.length - this.proxies} nodes over REST`,
    );
    const nodes = hosts.filter((h) => !h.proxy);
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < nodes.length) {
          const { instanceId } = nodes[next++];
          const res = await world.control.rest('PUT', `/v1/instances/${instanceId}/assignment`, {
            role: 'node',
            labels: { fleet: 'bench' },
          });
          if (res.status !== 200) throw new Error(`pre-assigning ${instanceId} failed: ${JSON.stringify(res.body)}`);
        }
      }),
    );
  }

  private get replicas(): ControlProcess[] {
    return this.opts.replicas ?? [this.world.control];
  }

  async run(): Promise<FleetResult> {
    const { opts, world } = this;
    const controlPids = this.replicas.map((r) => r.proc!.pid!);
    const controlCpu = () => controlPids.reduce((s, pid) => s + procCpuSeconds(pid), 0);
    const databaseCpu = opts.databaseCpuSeconds ?? (() => NaN);
    const before = { control: controlCpu(), database: databaseCpu(), machine: machineBusySeconds(), main: process.cpuUsage() };

    const startedAt = Date.now();
    const elapsed = () => Date.now() - startedAt;
    const results = this.workers.map((w) => w.next('result').then((m) => m.result));
    for (const w of this.workers) w.send({ type: 'start', startedAt, deadlineMs: opts.deadlineMs });
    let finished = false;
    let finishedAt = Infinity;
    const allResults = Promise.all(results).finally(() => {
      finished = true;
      finishedAt = elapsed();
    });
    allResults.catch(() => {});

    // The control server's view, polled while the agents run.
    let controlAllReadyMs = NaN;
    let controlReady = 0;
    let lastProgress = 0;
    let peakRss = 0;
    for (;;) {
      for (const pid of controlPids) peakRss = Math.max(peakRss, procMemory(pid).rss);
      const health = await world.control.rest<{ byHealth: Record<string, number> }>('GET', '/v1/health').catch(() => undefined);
      controlReady = health?.body?.byHealth?.ready ?? controlReady;
      if (controlReady >= opts.count && Number.isNaN(controlAllReadyMs)) controlAllReadyMs = elapsed();
      if (elapsed() - lastProgress >= 1000 || (finished && !Number.isNaN(controlAllReadyMs))) {
        lastProgress = elapsed();
        const enrolled = this.workers.reduce((n, w) => n + w.enrolled, 0);
        const ready = this.workers.reduce((n, w) => n + w.ready, 0);
        opts.progress(
          `fleet: ${(elapsed() / 1000).toFixed(1)} s  enrolled ${enrolled}/${opts.count}  ready ${ready}/${opts.count}  (control server: ${controlReady} ready)`,
        );
      }
      // Done when the control server agrees, or a few seconds after the last agent when it does not.
      if (finished && (!Number.isNaN(controlAllReadyMs) || elapsed() - finishedAt > 5000)) break;
      await sleep(250);
    }
    const workerResults = await allResults;
    const wallSeconds = elapsed() / 1000;
    const controlCpuSeconds = controlCpu() - before.control;
    const databaseCpuSeconds = databaseCpu() - before.database;
    const machineSeconds = machineBusySeconds() - before.machine;
    const mainCpu = process.cpuUsage(before.main);
    const mainCpuSeconds = (mainCpu.user + mainCpu.system) / 1e6;
    const hwm = Math.max(...controlPids.map((pid) => procMemory(pid).hwm));

    const hosts: HostOutcome[] = workerResults.flatMap((r) => r.hosts);
    const readyAtMs = hosts.flatMap((h) => (h.readyAt === undefined ? [] : [h.readyAt]));
    const enrolledAt = hosts.flatMap((h) => (h.enrolledAt === undefined ? [] : [h.enrolledAt]));
    const failures = hosts.flatMap((h) =>
      h.readyAt !== undefined ? [] : [{ instanceId: h.instanceId, reason: h.failure ?? 'did not finish' }],
    );
    const workersCpuSeconds = workerResults.reduce((s, r) => s + r.cpuSeconds, 0);
    return {
      count: opts.count,
      proxies: this.proxies,
      workers: this.workers.length,
      allReadyMs: failures.length ? NaN : Math.max(...readyAtMs),
      controlAllReadyMs,
      readyAtMs,
      enrollWindowMs: enrolledAt.length ? Math.max(...enrolledAt) : NaN,
      rpc: {
        enroll: workerResults.flatMap((r) => r.rpc.enroll),
        getAssignment: workerResults.flatMap((r) => r.rpc.getAssignment),
        reportStatus: workerResults.flatMap((r) => r.rpc.reportStatus),
        failedCalls: workerResults.reduce((n, r) => n + r.rpc.failedCalls, 0),
      },
      failures,
      agentWarnings: workerResults.reduce((n, r) => n + r.warnings, 0),
      lastWarnings: workerResults.flatMap((r) => r.lastWarnings).slice(-5),
      phases: PHASES.map(([, label]) => ({ label, atMs: workerResults.flatMap((r) => r.phases.find(([l]) => l === label)?.[1] ?? []) })),
      controlPeakRssBytes: Math.max(hwm, peakRss),
      controlCpuSeconds,
      databaseCpuSeconds,
      replicas: controlPids.length,
      workersCpuSeconds,
      workersPeakRssBytes: Math.max(...workerResults.map((r) => r.peakRssBytes)),
      workersLoopDelayP99Ms: Math.max(...workerResults.map((r) => r.loopDelayP99Ms)),
      workersLoopDelayMaxMs: Math.max(...workerResults.map((r) => r.loopDelayMaxMs)),
      mainCpuSeconds,
      otherCpuSeconds: Math.max(0, machineSeconds - controlCpuSeconds - (databaseCpuSeconds || 0) - workersCpuSeconds - mainCpuSeconds),
      wallSeconds,
    };
  }

  /** Stops the workers, which stop their agents, sandbox servers and emulators. The world closes the rest. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
