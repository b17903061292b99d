// One worker process of the fleet benchmark: it hosts a share of the
// simulated hosts, each with the real Agent class, its real gRPC client (TLS
// to the control server process), real AWS SDK clients against the SSM
// emulator and s3rver, real IMDSv2 identity from its own emulator, and its own
// root directory. Only Teleport itself is replaced (bench/sandbox-service.ts).
// Driven by bench/fleet.ts over the IPC channel.
import { setMaxListeners } from 'node:events';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { Agent } from '../agent/agent';
import { loadAgentConfig } from '../agent/config';
import { ControlClient, type ControlEndpoint } from '../agent/control-client';
import { buildAgent } from '../agent/build';
import { createLogger, describeError } from '../contract/log';
import { fakeInstance, startImdsEmulator, type ImdsEmulator } from '../test/emulators/imds';
import { ControlProcess, writeAgentConfig, type AgentFiles } from '../test/support/harness';
import { phaseOf, PHASES } from './boot';
import { PortReservations, SandboxServiceManager } from './sandbox-service';

export interface WorkerSetup {
  type: 'setup';
  /** Which hosts this worker runs: their index in the fleet and whether they are proxies. */
  hosts: Array<{ index: number; proxy: boolean }>;
  worldDir: string;
  controlDataDir: string;
  grpcPort: number;
  ssmEndpoint: string;
  s3Endpoint: string;
  readyDelayMs: number;
}

export type ToWorker = WorkerSetup | { type: 'start'; startedAt: number; deadlineMs: number } | { type: 'close' };

/** Latencies (ms) of each RPC as the agents see them. */
export interface RpcTimings {
  enroll: number[];
  getAssignment: number[];
  reportStatus: number[];
  /** Calls that failed (and were retried by the agent). */
  failedCalls: number;
}

export interface HostOutcome {
  index: number;
  instanceId: string;
  /** ms after the fleet start. */
  enrolledAt?: number;
  readyAt?: number;
  failure?: string;
}

export interface WorkerResult {
  hosts: HostOutcome[];
  rpc: RpcTimings;
  /** Per phase label (bench/boot.ts PHASES): ms after the fleet start at which each agent reached it. */
  phases: Array<[string, number[]]>;
  warnings: number;
  lastWarnings: string[];
  cpuSeconds: number;
  peakRssBytes: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export type FromWorker =
  | { type: 'setup-done'; hosts: Array<{ index: number; instanceId: string; proxy: boolean }> }
  | { type: 'progress'; enrolled: number; ready: number }
  | { type: 'result'; result: WorkerResult }
  | { type: 'error'; message: string };

/** ControlClient that records how long each RPC takes, as its agent sees it. */
class TimedControlClient extends ControlClient {
  enrolledAt: number | undefined;

  constructor(
    target: ControlEndpoint,
    private readonly timings: RpcTimings,
    private readonly clock: { startedAt: number },
  ) {
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
    const enrollment = await this.timed(this.timings.enroll, () => super.enroll(...args));
    this.enrolledAt ??= Date.now() - this.clock.startedAt;
    return enrollment;
  }

  override getAssignment(...args: Parameters<ControlClient['getAssignment']>): ReturnType<ControlClient['getAssignment']> {
    return this.timed(this.timings.getAssignment, () => super.getAssignment(...args));
  }

  override reportStatus(...args: Parameters<ControlClient['reportStatus']>): ReturnType<ControlClient['reportStatus']> {
    return this.timed(this.timings.reportStatus, () => super.reportStatus(...args));
  }
}

/**
 * Where the agents' logs go: records when each agent reached each phase of
 * its boot (the same log records bench/boot.ts reads), counts warnings (each
 * one is a retry) and keeps the last few of them.
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
  index: number;
  proxy: boolean;
  imds: ImdsEmulator;
  services: SandboxServiceManager;
  control: TimedControlClient;
  agent: Agent;
  readyAt?: number;
  failure?: string;
}

const send = (msg: FromWorker) => process.send!(msg);

class Worker {
  private readonly hosts: Host[] = [];
  private readonly ports = new PortReservations();
  private readonly timings: RpcTimings = { enroll: [], getAssignment: [], reportStatus: [], failedCalls: 0 };
  private readonly sink = new LogSink();
  private readonly clock = { startedAt: 0 };

  async setup(msg: WorkerSetup): Promise<void> {
    // writeAgentConfig only reads the control server's address and files from this; it starts nothing.
    const control = Object.assign(new ControlProcess(msg.controlDataDir), { grpcPort: msg.grpcPort });
    const log = createLogger('bench-agent', 'info', this.sink);
    for (const { index, proxy } of msg.hosts) {
      const imds = await startImdsEmulator(fakeInstance(proxy ? { tags: { TeleportRole: 'proxy', Name: `edge-${index}` } } : {}));
      const files = await this.configWithOwnDiagPort(() =>
        writeAgentConfig({
          control,
          imdsEndpoint: imds.endpoint,
          ssmEndpoint: msg.ssmEndpoint,
          s3Endpoint: msg.s3Endpoint,
          serviceManager: 'process',
          root: join(msg.worldDir, imds.instance.instanceId),
        }),
      );
      const config = loadAgentConfig(files.configFile);
      const services = new SandboxServiceManager({
        teleportConfig: config.paths.teleportConfig,
        readyDelayMs: msg.readyDelayMs,
        ports: this.ports,
      });
      const client = new TimedControlClient(config.control, this.timings, this.clock);
      // The agent's own wiring, with the sandbox in place of systemd and a timed client.
      const agent = buildAgent(config, log.child({ instanceId: imds.instance.instanceId }), { services, control: client });
      this.hosts.push({ index, proxy, imds, services, control: client, agent });
    }
    send({
      type: 'setup-done',
      hosts: this.hosts.map((h) => ({ index: h.index, instanceId: h.imds.instance.instanceId, proxy: h.proxy })),
    });
  }

  /** writeAgentConfig picks a free diag port; hold it so that no other host or connection takes it. */
  private async configWithOwnDiagPort(write: () => Promise<AgentFiles>): Promise<AgentFiles> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const files = await write();
      if (await this.ports.reserve(files.diagAddr)) return files;
    }
    throw new Error('no free diagnostic port');
  }

  async run(startedAt: number, deadlineMs: number): Promise<void> {
    this.clock.startedAt = startedAt;
    const cpuBefore = process.cpuUsage();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const controller = new AbortController();
    setMaxListeners(this.hosts.length + 10, controller.signal); // every agent listens on this one deadline
    const deadline = setTimeout(
      () => controller.abort(new Error(`not ready within ${deadlineMs / 1000} s`)),
      Math.max(0, startedAt + deadlineMs - Date.now()),
    );
    const progress = setInterval(() => send({ type: 'progress', ...this.counts() }), 250);

    // Every agent at once.
    await Promise.all(
      this.hosts.map(async (h) => {
        try {
          const status = await h.agent.once(controller.signal);
          if (status.state === 'ready') h.readyAt = Date.now() - startedAt;
          else h.failure = `${status.state}: ${status.message}${h.services.lastError ? ` (${h.services.lastError})` : ''}`;
        } catch (err) {
          h.failure = describeError(err);
        }
      }),
    );
    clearTimeout(deadline);
    clearInterval(progress);
    loop.disable();
    send({ type: 'progress', ...this.counts() });
    const cpu = process.cpuUsage(cpuBefore);
    send({
      type: 'result',
      result: {
        hosts: this.hosts.map((h) => ({
          index: h.index,
          instanceId: h.imds.instance.instanceId,
          enrolledAt: h.control.enrolledAt,
          readyAt: h.readyAt,
          failure: h.failure,
        })),
        rpc: this.timings,
        phases: PHASES.map(([, label]) => [label, (this.sink.phases.get(label) ?? []).map((t) => t - startedAt)]),
        warnings: this.sink.warnings,
        lastWarnings: this.sink.lastWarnings,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        loopDelayP99Ms: loop.percentile(99) / 1e6,
        loopDelayMaxMs: loop.max / 1e6,
      },
    });
  }

  private counts(): { enrolled: number; ready: number } {
    return {
      enrolled: this.hosts.filter((h) => h.control.enrolledAt !== undefined).length,
      ready: this.hosts.filter((h) => h.readyAt !== undefined).length,
    };
  }

  /** Stops every sandbox Teleport, gRPC channel, emulator and held port. */
  async close(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.services.stop()));
    for (const h of this.hosts) h.control.close();
    await Promise.all([...this.hosts.map((h) => h.imds.close()), this.ports.closeAll()]);
  }
}

if (require.main === module) {
  const worker = new Worker();
  const fail = (err: unknown) => send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  const exit = () => void worker.close().finally(() => process.exit(0));
  process.on('message', (msg: ToWorker) => {
    if (msg.type === 'setup') worker.setup(msg).catch(fail);
    else if (msg.type === 'start') worker.run(msg.startedAt, msg.deadlineMs).catch(fail);
    else if (msg.type === 'close') exit();
  });
  // The bench went away (crashed or was killed): do not outlive it.
  process.on('disconnect', exit);
}
