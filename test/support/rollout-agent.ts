// A lightweight agent for rollouts over many hosts: the agent's real gRPC
// client (mutual TLS, control.endpoints failover) without the rest of the
// agent. It enrolls with the join token, watches its assignment (opened
// again whenever the stream ends, as the agent does), heartbeats with
// ReportStatus and catches up to the generation the answer names, and
// reports ready on a new generation a random time after it reaches it
// (Teleport restarting, simulated). Used by the replica chaos tests.
import { ControlClient, type ControlEndpoint } from '../../agent/control-client';
import { testIdentity } from './fixtures';

export interface RolloutAgentOptions {
  /** How long "applying" a new generation takes: uniformly in this range (ms). */
  applyMs: [number, number];
  /** Index into the endpoints to start at (agents otherwise pick one at random). */
  startAt?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RolloutAgent {
  readonly client: ControlClient;
  /** The generation reported ready. */
  applied = 0;
  /** Calls that failed (each retried). */
  failedCalls = 0;
  /** When each status report succeeded (ms). */
  readonly reportedAt: number[] = [];
  private target = 0;
  private applying: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopWatch: (() => void) | undefined;
  private closed = false;

  constructor(
    readonly instanceId: string,
    endpoint: ControlEndpoint,
    private readonly options: RolloutAgentOptions,
  ) {
    this.client = new ControlClient(endpoint, { startAt: options.startAt });
  }

  /** The endpoint the agent talks to now. */
  get endpoint(): string {
    return this.client.endpoint;
  }

  /** Enrolls (retrying while no replica answers), applies what it is served, then watches and heartbeats. */
  async start(joinToken: string, heartbeatMs?: number): Promise<void> {
    const enrolled = await this.retry(() => this.client.enroll(testIdentity(this.instanceId), joinToken, 'rollout-agent'));
    this.client.useCredentials(enrolled.credentials);
    const state = await this.retry(() => this.client.getAssignment(this.instanceId));
    this.applied = this.target = Number(state.generation);
    await this.retry(() => this.report());
    const every = heartbeatMs ?? Number(enrolled.heartbeatIntervalSeconds) * 1000;
    this.heartbeat = setInterval(() => void this.beat(), every);
    this.watch();
  }

  private async retry<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await call();
      } catch (err) {
        this.failedCalls++;
        if (this.closed) throw err;
        await sleep(200 + Math.random() * 300);
      }
    }
  }

  private async report() {
    const answer = await this.client.reportStatus({
      instanceId: this.instanceId,
      appliedGeneration: this.applied,
      state: 'ready',
      teleportUnitState: 'active',
      teleportReady: true,
      message: '',
      agentVersion: 'rollout-agent',
      proxyCertificateExpiresUnixMs: 0,
    });
    this.reportedAt.push(Date.now());
    return answer;
  }

  /** A heartbeat; its answer's desired generation brings a host that missed an event back in line. */
  private async beat(): Promise<void> {
    try {
      this.follow(Number((await this.report()).desiredGeneration));
    } catch {
      this.failedCalls++;
    }
  }

  private watch(): void {
    if (this.closed) return;
    this.stopWatch = this.client.watch(
      this.instanceId,
      (s) => this.follow(Number(s.generation)),
      () => {
        // The stream ended (its replica died, or the server closed it): open it again, as the agent does.
        if (!this.closed) setTimeout(() => this.watch(), 200 + Math.random() * 300);
      },
    );
  }

  /** A generation other than the one applied: "apply" it, then report ready on it. */
  private follow(generation: number): void {
    if (this.closed || generation === this.target) return;
    this.target = generation;
    clearTimeout(this.applying);
    const [min, max] = this.options.applyMs;
    this.applying = setTimeout(
      () => {
        this.applied = generation;
        void this.beat();
      },
      min + Math.random() * (max - min),
    );
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.applying);
    clearInterval(this.heartbeat);
    this.stopWatch?.();
    this.client.close();
  }
}
