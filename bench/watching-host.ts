// A host as the control server sees a running agent, without the rest of
// the agent: the agent's real gRPC client enrolls, reports ready on its
// generation, sends heartbeats and watches its assignment. What it does when
// a new generation reaches it (apply at once, or after a simulated Teleport
// restart) is the caller's.
import { ControlClient } from '../agent/control-client';
import { testIdentity } from '../test/support/fixtures';

export interface WatchingHostOptions {
  instanceId: string;
  /** host:port of the control server (or replica) it talks to. */
  endpoint: string;
  caPem: string;
  joinToken: string;
  heartbeatMs: number;
  /** A generation other than the applied one reached the host; `report` marks it applied. */
  onGeneration: (generation: number, report: () => Promise<void>) => void;
}

export class WatchingHost {
  applied = 0;
  /** Watch streams that ended and were opened again. */
  watchEnds = 0;
  private closed = false;
  private readonly client: ControlClient;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopWatching: (() => void) | undefined;

  constructor(private readonly opts: WatchingHostOptions) {
    this.client = new ControlClient({ endpoints: [opts.endpoint], caPem: opts.caPem });
  }

  /** Reports ready on `generation` (the applied one from then on). */
  async report(generation: number): Promise<void> {
    this.applied = generation;
    await this.client.reportStatus({
      instanceId: this.opts.instanceId,
      appliedGeneration: generation,
      state: 'ready',
      teleportUnitState: 'active',
      teleportReady: true,
      message: '',
      agentVersion: 'bench',
      proxyCertificateExpiresUnixMs: 0,
    });
  }

  /** Enrolls, reports ready on the assignment it got, then heartbeats and watches. */
  async start(): Promise<void> {
    const { instanceId } = this.opts;
    const enrollment = await this.client.enroll(testIdentity(instanceId), this.opts.joinToken, 'bench');
    await this.report(Number(enrollment.assignment?.generation ?? (await this.client.getAssignment(instanceId)).generation));
    // Heartbeats, as an agent sends them: a host silent for three is offline and left out of rollouts.
    this.heartbeat = setInterval(() => void this.report(this.applied).catch(() => undefined), this.opts.heartbeatMs);
    this.watch();
  }

  /** Watches; a stream that ends (the server busy or restarting) is opened again, as the agent does. */
  private watch(): void {
    if (this.closed) return;
    this.stopWatching = this.client.watch(
      this.opts.instanceId,
      (state) => {
        const generation = Number(state.generation);
        if (generation !== this.applied) this.opts.onGeneration(generation, () => this.report(generation));
      },
      () => {
        this.watchEnds++;
        if (!this.closed) setTimeout(() => this.watch(), 200);
      },
    );
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.stopWatching?.();
    this.client.close();
  }
}
