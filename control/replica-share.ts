// The rate limits hold fleet-wide by division: each replica records itself
// in the store with a heartbeat on the database's clock and applies 1/N of
// every configured rate, N being the replicas seen lately. No database write
// per request; a replica that stops is forgotten at once (one that dies,
// after STALE_BEATS heartbeats), and its share moves to the others. The
// trade-off: a caller whose requests the load balancer spreads unevenly is
// let through less than the full rate, never more.
import { hostname } from 'node:os';
import { describeError, type Logger } from '../contract/log';
import type { Store } from './store/store';

/** Heartbeats a replica may miss before the others stop counting it. */
const STALE_BEATS = 3;

export class ReplicaShare {
  private count = 1;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly store: Pick<Store, 'replicaHeartbeat' | 'removeReplica'>,
    private readonly log: Logger,
    private readonly intervalMs = 5000,
    /** This replica's name in the store. */
    readonly id = `control:${hostname()}:${process.pid}`,
  ) {}

  /** This replica's part of each rate limit: 1/N of N replicas serving. */
  readonly share = (): number => 1 / this.count;

  /** How many replicas serve, as last seen. */
  get replicas(): number {
    return this.count;
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  /** While the store cannot be reached the last count stands. */
  private async beat(): Promise<void> {
    try {
      const count = Math.max(1, await this.store.replicaHeartbeat(this.id, this.intervalMs * STALE_BEATS));
      if (count !== this.count)
        this.log.info({ replicas: count, share: 1 / count }, 'replicas serving changed; rate limits shared out anew');
      this.count = count;
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.log.warn({ err: describeError(err), replicas: this.count }, 'replica heartbeat failed; keeping the last count');
      this.failing = true;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.store.removeReplica(this.id).catch(() => undefined);
  }
}
