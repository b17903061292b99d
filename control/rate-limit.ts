// A token bucket per client address (Enroll), API token (REST reads) or
// instance (gRPC calls); REST write routes use @fastify/rate-limit per
// address. Loopback peers can be exempted: the control host itself, the
// demo and the benchmarks. Buckets live in this process; with several
// replicas each applies its share of the rate (replica-share.ts), so that
// together they allow the configured rate.
import { hostOf } from '../contract/address';

export interface RateLimitOptions {
  /** Requests per minute per address; 0 turns the limit off. */
  perMinute: number;
  /** Requests allowed at once before the rate applies; defaults to perMinute. */
  burst?: number;
  exemptLoopback: boolean;
  /** This replica's part of the rate (1/N of N replicas); 1 when absent. */
  share?: () => number;
}

export function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === '::1' || /^::ffff:127\./.test(address);
}

/** "ipv4:10.0.0.5:51234", "[::1]:51234", "10.0.0.5:51234" -> the address alone. */
export function peerAddress(peer: string): string {
  return hostOf(peer.replace(/^ipv[46]:/, ''));
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly burst: number;

  constructor(
    private readonly opts: RateLimitOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.burst = opts.burst ?? opts.perMinute;
  }

  /**
   * Takes one request from the bucket of `key` (the address itself unless
   * given: an API token, an instance); false when it is empty. `address` is
   * the peer's, for the loopback exemption.
   */
  take(address: string, key: string = address): boolean {
    if (this.opts.perMinute <= 0 || (this.opts.exemptLoopback && isLoopback(address))) return true;
    const now = this.now();
    const share = this.opts.share?.() ?? 1;
    const rate = (this.opts.perMinute * share) / 60_000;
    const burst = Math.max(1, this.burst * share);
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + (now - b.at) * rate);
    b.at = now;
    if (this.buckets.size > 10_000) this.prune(now, rate, burst);
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets buckets that have refilled: they hold no state worth keeping. */
  private prune(now: number, rate: number, burst: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * rate >= burst) this.buckets.delete(k);
  }
}
