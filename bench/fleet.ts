// A fleet of simulated hosts booting at once against one control server:
// the real Agent class with its real gRPC client (TLS to the control server
// process), real AWS SDK clients against the SSM emulator and s3rver, real
// IMDSv2 identity from one emulator per host, and a sandboxed root directory
// per host. Only Teleport itself is replaced (bench/sandbox-service.ts).
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent } from '../agent/agent';
import { AwsSecretSource } from '../agent/aws';
import { loadAgentConfig, type AgentConfig } from '../agent/config';
import { ControlClient, type ControlEndpoint } from '../agent/control-client';
import { hostFacts } from '../agent/facts';
import { ImdsIdentitySource } from '../agent/identity';
import { resolveOwner } from '../agent/owner';
import { createLogger, describeError } from '../common/log';
import type { ImdsEmulator } from '../test/emulators/imds';
import type { AgentFiles } from '../test/support/harness';
import type { World } from '../test/support/world';
import { phaseOf, PHASES } from './boot';
import { PortReservations, SandboxServiceManager } from './sandbox-service';

export interface FleetOptions {
  count: number;
  /** Every n-th host is a proxy (assigned by an EC2-tag rule at enrollment); the rest are nodes pre-assigned over REST. */
  proxyEvery: number;
  readyDelayMs: number;
  /** A host not ready by then counts as a failure. */
  deadlineMs: number;
  progress: (line: string) => void;
}

/** Latencies (ms) of each RPC as the agents see them. */
export interface RpcTimings {
  enroll: number[];
  getAssignment: number[];
  reportStatus: number[];
  /** Calls that failed (and were retried by the agent). */
  failedCalls: number;
}

export interface FleetFailure {
  instanceId: string;
  reason: string;
}

export interface FleetResult {
  count: number;
  proxies: number;
  /** Agent view: start of the fleet to the last agent's `once` returning ready. */
  allReadyMs: number;
  /** Control view: start to GET /v1/health showing byHealth.ready == count (NaN if never). */
  controlAllReadyMs: number;
  /** Per agent, start to its converge completing with state ready. */
  readyAtMs: number[];
  /** Start to the last successful enrollment. */
  enrollWindowMs: number;
  rpc: RpcTimings;
  failures: FleetFailure[];
  /** Warnings the agents logged (each is a retry of something). */
  agentWarnings: number;
  lastWarnings: string[];
  /** Per phase of the boot (bench/boot.ts PHASES), when each agent reached it: ms after the start. */
  phases: Array<{ label: string; atMs: number[] }>;
  controlPeakRssBytes: number;
  controlCpuSeconds: number;
  benchCpuSeconds: number;
  benchPeakRssBytes: number;
  benchLoopDelayP99Ms: number;
  benchLoopDelayMaxMs: number;
}

/** ControlClient that records how long each RPC takes, as its agent sees it. */
class TimedControlClient extends ControlClient {
  enrolledAt: number | undefined;

  constructor(target: ControlEndpoint, private readonly timings: RpcTimings, private readonly clock: { t0: number }) {
    super(target);
  }

  private async timed<T>(into: number[], call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await call();
      into.push(performance.now() - started);
      return result;
    } catch (err) {
      this.timings.failedCalls++;
      throw err;
    }
  }

  override async enroll(...args: Parameters<ControlClient['enroll']>): ReturnType<ControlClient['enroll']> {
    const creds = await this.timed(this.timings.enroll, () => super.enroll(...args));
    this.enrolledAt ??= performance.now() - this.clock.t0;
    return creds;
  }

  override getAssignment(...args: Parameters<ControlClient['getAssignment']>): ReturnType<ControlClient['getAssignment']> {
    return this.timed(this.timings.getAssignment, () => super.getAssignment(...args));
  }

  override reportStatus(...args: Parameters<ControlClient['reportStatus']>): ReturnType<ControlClient['reportStatus']> {
    return this.timed(this.timings.reportStatus, () => super.reportStatus(...args));
  }
}

/**
 * Where the agents' logs go: records when each agent reached each phase of its
 * boot (from the same log records as bench/boot.ts), counts warnings (each one
 * is a retry) and keeps the last few of them.
 */
class LogSink {
  warnings = 0;
  lastWarnings: string[] = [];
  /** Wall-clock ms of each phase's log records, by phase label. */
  readonly phases = new Map<string, number[]>();

  write(line: string): void {
    const rec = JSON.parse(line) as { level: number; time: number; msg: string };
    if (rec.level >= 40) {
      this.warnings++;
      this.lastWarnings.push(line.trim());
      if (this.lastWarnings.length > 5) this.lastWarnings.shift();
      return;
    }
    const phase = phaseOf(rec.msg);
    if (!phase) return;
    if (!this.phases.has(phase)) this.phases.set(phase, []);
    this.phases.get(phase)!.push(rec.time);
  }
}

interface Host {
  imds: ImdsEmulator;
  files: AgentFiles;
  config: AgentConfig;
  proxy: boolean;
  services: SandboxServiceManager;
  control: TimedControlClient;
  agent: Agent;
  readyAt?: number;
  failure?: string;
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await work(items[i], i);
    }
  });
  await Promise.all(lanes);
}

/** Resident-set figures of another process, from /proc (bytes). */
function procMemory(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** User + system CPU seconds of another process (clock ticks of 1/100 s on Linux). */
function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export class Fleet {
  private readonly hosts: Host[] = [];
  private readonly ports = new PortReservations();
  private readonly timings: RpcTimings = { enroll: [], getAssignment: [], reportStatus: [], failedCalls: 0 };
  private readonly sink = new LogSink();
  /** Start of the timed run, shared with every host's client. */
  private readonly clock = { t0: 0 };

  constructor(private readonly world: World, private readonly opts: FleetOptions) {}

  /** Emulators, configs and assignments for every host; not timed. */
  async setup(): Promise<number> {
    const { world, opts } = this;
    const started = performance.now();
    const rule = await world.control.rest('POST', '/v1/rules', { name: 'proxies by tag', selector: { TeleportRole: 'proxy' }, role: 'proxy' });
    if (rule.status !== 201) throw new Error(`adding the proxy rule failed: ${JSON.stringify(rule.body)}`);
    const log = createLogger('bench-agent', 'info', this.sink);
    const owner = resolveOwner('root', 'root');

    await pool(Array.from({ length: opts.count }, (_, i) => i), 16, async (i) => {
      const proxy = i % opts.proxyEvery === opts.proxyEvery - 1;
      const imds = await world.instance(proxy ? { tags: { TeleportRole: 'proxy', Name: `edge-${i}` } } : {});
      const files = await this.configWithOwnDiagPort(imds);
      const config = loadAgentConfig(files.configFile);
      const services = new SandboxServiceManager({ teleportConfig: config.paths.teleportConfig, readyDelayMs: opts.readyDelayMs, ports: this.ports });
      const control = new TimedControlClient(config.control, this.timings, this.clock);
      // As buildAgent (agent/main.ts) wires it, with the sandbox in place of systemd.
      const agent = new Agent({
        config,
        log: log.child({ instanceId: imds.instance.instanceId }),
        identity: new ImdsIdentitySource(config.aws.imdsEndpoint),
        control,
        secrets: (region) =>
          new AwsSecretSource({ region, ssmEndpoint: config.aws.ssmEndpoint, s3Endpoint: config.aws.s3Endpoint, s3ForcePathStyle: config.aws.s3ForcePathStyle }),
        services,
        facts: () => hostFacts(),
        owner,
      });
      this.hosts[i] = { imds, files, config, proxy, services, control, agent };
      if (!proxy) {
        const res = await world.control.rest('PUT', `/v1/instances/${imds.instance.instanceId}/assignment`, { role: 'node', labels: { fleet: 'bench' } });
        if (res.status !== 200) throw new Error(`pre-assigning ${imds.instance.instanceId} failed: ${JSON.stringify(res.body)}`);
      }
      if ((i + 1) % 250 === 0) opts.progress(`fleet setup: ${i + 1}/${opts.count} hosts`);
    });
    return performance.now() - started;
  }

  /** writeAgentConfig picks a free diag port; hold it so that no other host or connection takes it. */
  private async configWithOwnDiagPort(imds: ImdsEmulator): Promise<AgentFiles> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const files = await this.world.agentConfig(imds, 'process');
      if (await this.ports.reserve(files.diagAddr)) return files;
    }
    throw new Error(`no free diagnostic port for ${imds.instance.instanceId}`);
  }

  get proxies(): number {
    return this.hosts.filter((h) => h.proxy).length;
  }

  async run(): Promise<FleetResult> {
    const { opts, world } = this;
    const controlPid = world.control.proc!.pid!;
    const controlCpuBefore = procCpuSeconds(controlPid);
    const benchCpuBefore = process.cpuUsage();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const controller = new AbortController();
    // Every agent listens on this one deadline signal.
    setMaxListeners(this.hosts.length + 10, controller.signal);
    const deadline = setTimeout(() => controller.abort(new Error(`not ready within ${opts.deadlineMs / 1000} s`)), opts.deadlineMs);

    this.clock.t0 = performance.now();
    const startedAt = Date.now();
    const elapsed = () => performance.now() - this.clock.t0;

    // Every agent at once.
    const agentsDone = Promise.all(
      this.hosts.map(async (h) => {
        try {
          const status = await h.agent.once(controller.signal);
          if (status.state === 'ready') h.readyAt = elapsed();
          else h.failure = `${status.state}: ${status.message}${h.services.lastError ? ` (${h.services.lastError})` : ''}`;
        } catch (err) {
          h.failure = describeError(err);
        }
      }),
    );
    let finished = false;
    let finishedAt = Infinity;
    void agentsDone.then(() => {
      finished = true;
      finishedAt = elapsed();
    });

    // The control server's view, polled while the agents run.
    let controlAllReadyMs = NaN;
    let controlReady = 0;
    let lastProgress = 0;
    const memorySamples: number[] = [];
    while (!controller.signal.aborted) {
      memorySamples.push(procMemory(controlPid).rss);
      const health = await world.control.rest<{ byHealth: Record<string, number> }>('GET', '/v1/health').catch(() => undefined);
      controlReady = health?.body?.byHealth?.ready ?? controlReady;
      if (process.env.BENCH_DEBUG) opts.progress(JSON.stringify(health?.body?.byHealth));
      if (controlReady >= opts.count && Number.isNaN(controlAllReadyMs)) controlAllReadyMs = elapsed();
      if (elapsed() - lastProgress >= 1000 || (finished && !Number.isNaN(controlAllReadyMs))) {
        lastProgress = elapsed();
        const enrolled = this.hosts.filter((h) => h.control.enrolledAt !== undefined).length;
        const ready = this.hosts.filter((h) => h.readyAt !== undefined).length;
        opts.progress(`fleet: ${(elapsed() / 1000).toFixed(1)} s  enrolled ${enrolled}/${opts.count}  ready ${ready}/${opts.count} (control: ${controlReady} ready)`);
      }
      // Done when the control server agrees, or a few seconds after the last agent when it does not.
      if (finished && (!Number.isNaN(controlAllReadyMs) || this.hosts.some((h) => h.failure) || elapsed() - finishedAt > 5000)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await agentsDone;
    clearTimeout(deadline);
    if (process.env.BENCH_DEBUG) {
      require('node:fs').writeFileSync('/tmp/control.log', world.control.logs);
      require('node:fs').writeFileSync('/tmp/fleet-debug.json', JSON.stringify({ startedAt, phases: [...this.sink.phases], timings: this.timings }));
    }
    loop.disable();

    const memory = procMemory(controlPid);
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const readyAtMs = this.hosts.flatMap((h) => (h.readyAt === undefined ? [] : [h.readyAt]));
    const enrolledAt = this.hosts.flatMap((h) => (h.control.enrolledAt === undefined ? [] : [h.control.enrolledAt]));
    const failures = this.hosts.flatMap((h) =>
      h.readyAt !== undefined ? [] : [{ instanceId: h.imds.instance.instanceId, reason: h.failure ?? 'did not finish' }],
    );
    return {
      count: opts.count,
      proxies: this.proxies,
      allReadyMs: failures.length ? NaN : Math.max(...readyAtMs),
      controlAllReadyMs,
      readyAtMs,
      enrollWindowMs: enrolledAt.length ? Math.max(...enrolledAt) : NaN,
      rpc: this.timings,
      failures,
      agentWarnings: this.sink.warnings,
      lastWarnings: this.sink.lastWarnings,
      phases: PHASES.map(([, label]) => ({ label, atMs: (this.sink.phases.get(label) ?? []).map((t) => t - startedAt) })),
      controlPeakRssBytes: Math.max(memory.hwm, ...memorySamples),
      controlCpuSeconds: procCpuSeconds(controlPid) - controlCpuBefore,
      benchCpuSeconds: (benchCpu.user + benchCpu.system) / 1e6,
      benchPeakRssBytes: process.resourceUsage().maxRSS * 1024,
      benchLoopDelayP99Ms: loop.percentile(99) / 1e6,
      benchLoopDelayMaxMs: loop.max / 1e6,
    };
  }

  /** Stops every sandbox Teleport, closes gRPC channels and released ports. The world closes the emulators. */
  async close(): Promise<void> {
    await Promise.all(this.hosts.filter(Boolean).map((h) => h.services.stop()));
    for (const h of this.hosts.filter(Boolean)) h.control.close();
    await this.ports.closeAll();
  }
}
