// Per-caller rate limits past authentication: REST reads per API token and
// gRPC calls per enrolled instance. A flood from one credential is slowed
// before it reaches the store (and its audit log), without touching others.
import { RateLimitedError } from './errors';
import { RateLimiter } from './rate-limit';

export interface CallLimitOptions {
  /** REST reads (GET, HEAD, OPTIONS) per minute per API token; 0: no limit. */
  restReadsPerMinute: number;
  /** gRPC calls per minute per instance (client certificate); 0: no limit. */
  grpcCallsPerMinute: number;
  /** Callers on the loopback address are not limited. */
  exemptLoopback: boolean;
  /** This replica's part of each rate (1/N of N replicas); 1 when absent. */
  share?: () => number;
}

export const NO_CALL_LIMITS: CallLimitOptions = { restReadsPerMinute: 0, grpcCallsPerMinute: 0, exemptLoopback: true };

export class CallLimits {
  private readonly rest: RateLimiter;
  private readonly grpc: RateLimiter;

  constructor(
    private readonly opts: CallLimitOptions = NO_CALL_LIMITS,
    now: () => number = Date.now,
  ) {
    const { exemptLoopback, share } = opts;
    this.rest = new RateLimiter({ perMinute: opts.restReadsPerMinute, exemptLoopback, share }, now);
    this.grpc = new RateLimiter({ perMinute: opts.grpcCallsPerMinute, exemptLoopback, share }, now);
  }

  /** Counts a REST read by an API token; throws RateLimitedError beyond the rate. */
  restRead(tokenId: string, address: string): void {
    if (!this.rest.take(address, tokenId))
      throw new RateLimitedError(
        `more than ${this.opts.restReadsPerMinute} reads a minute with this API token; slow down (rate_limits.rest_reads_per_minute)`,
        Math.ceil(60 / this.opts.restReadsPerMinute),
      );
  }

  /** Counts a gRPC call by an instance; throws RateLimitedError beyond the rate. */
  grpcCall(instanceId: string, address: string): void {
    if (!this.grpc.take(address, instanceId))
      throw new RateLimitedError(
        `more than ${this.opts.grpcCallsPerMinute} calls a minute from instance ${instanceId}; retry later`,
        Math.ceil(60 / this.opts.grpcCallsPerMinute),
      );
  }
}
