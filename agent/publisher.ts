// The publisher: on auth servers, the one holding the publisher lease (from
// the control server) mints join tokens with tctl and publishes them, and
// the CA pin, to SSM where the other instances read them. Every write is
// preceded by a successful renewal of the lease with its fencing number, so
// a holder that lost the lease never publishes again.
import { execFile } from 'node:child_process';
import { backoffDelay, sleep } from '../common/backoff';
import { describeError, type Logger } from '../common/log';
import type { Lease__Output } from '../proto/gen/teleboot/v1/Lease';
import type { ParameterWriter } from './aws';
import type { AgentConfig } from './config';
import { ssmNames } from './render/plan';

export const PUBLISHER_LEASE = 'publisher';

export interface LeaseClient {
  acquireLease(instanceId: string, name: string): Promise<Lease__Output>;
  renewLease(instanceId: string, name: string, fencing: number): Promise<Lease__Output>;
  releaseLease(instanceId: string, name: string, fencing: number): Promise<Lease__Output>;
}

/** Where to publish; undefined while this instance should not publish (no auth role, or Teleport not ready). */
export interface PublishTarget {
  clusterName: string;
  ssmPrefix: string;
}

export interface PublisherDeps {
  config: Pick<AgentConfig, 'publisher' | 'teleport' | 'paths' | 'retry'>;
  log: Logger;
  control: LeaseClient;
  writer: ParameterWriter;
  instanceId: string;
  target: () => PublishTarget | undefined;
  /** Told when the publisher's state changes (so that the agent reports it). */
  onChange?: () => void;
}

export interface PublisherState {
  /** The fencing number of the lease held, or null. */
  fencing: number | null;
  lastPublishedAt: number | null;
  /** Why the last publication failed (cleared by the next success). */
  problem: string | null;
}

/** The lease was lost (or could not be confirmed) right before a write. */
export class LeaseLost extends Error {}

export class TctlError extends Error {}

/** Runs tctl with the Teleport config; its output is returned, never logged (it carries tokens). */
export function runTctl(tctl: string, teleportConfig: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(tctl, ['-c', teleportConfig, ...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024, env: process.env }, (err, stdout, stderr) => {
      const what = `tctl ${args.slice(0, 2).join(' ')}`;
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return reject(new TctlError(`${what}: ${tctl} not found (teleport.tctl in agent.yaml)`));
        if (code === 'EACCES') return reject(new TctlError(`${what}: ${tctl} is not executable`));
        // The first line of stderr only: tctl reports errors there; stdout may carry a token.
        const line = String(stderr).split('\n').find((l) => l.trim()) ?? '';
        const reason = err.killed ? `timed out after ${timeoutMs} ms` : `exit code ${err.code ?? 'unknown'}`;
        return reject(new TctlError(`${what} failed (${reason})${line ? `: ${line.trim().slice(0, 200)}` : ''}`));
      }
      resolve(String(stdout));
    });
  });
}

/** The token from `tctl tokens add --format=json`: {"token": "...", "roles": ["Node"], "expires": "..."}. */
export function parseTokenJson(stdout: string): { token: string; expires?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new TctlError('tctl tokens add --format=json printed no JSON');
  }
  const token = (parsed as { token?: unknown }).token;
  if (typeof token !== 'string' || !/^[\w-]{8,256}$/.test(token)) throw new TctlError('tctl tokens add --format=json printed no usable "token" field');
  const expires = (parsed as { expires?: unknown }).expires;
  return { token, expires: typeof expires === 'string' ? expires : undefined };
}

/** The CA pin from `tctl status` ("CA pin   sha256:<hex>"). */
export function parseCaPin(stdout: string): string {
  const m = /^\s*CA pin\s+(sha256:[0-9a-f]{64})\b/m.exec(stdout);
  if (!m) throw new TctlError('tctl status printed no "CA pin sha256:..." line');
  return m[1];
}

export class Publisher {
  state: PublisherState = { fencing: null, lastPublishedAt: null, problem: null };
  private validUntil = 0;
  private periodMs = 30_000;
  private failures = 0;
  private nextPublish = 0;

  constructor(private readonly deps: PublisherDeps) {}

  private set(patch: Partial<PublisherState>): void {
    const before = JSON.stringify(this.state);
    this.state = { ...this.state, ...patch };
    if (JSON.stringify(this.state) !== before) this.deps.onChange?.();
  }

  /** One line for the instance status. */
  summary(): string | undefined {
    const s = this.state;
    if (s.problem) return `publisher: ${s.problem}`;
    if (s.fencing !== null) return `publisher: holds the lease (fencing ${s.fencing})${s.lastPublishedAt ? `, published ${new Date(s.lastPublishedAt).toISOString()}` : ''}`;
    return undefined;
  }

  private granted(lease: Lease__Output, sentAt: number): boolean {
    if (lease.periodMs > 0) this.periodMs = lease.periodMs;
    if (!lease.granted) return false;
    // Counted from when the request left: the server's expiry is at least this late.
    this.validUntil = sentAt + this.periodMs;
    return true;
  }

  private lose(why: string): void {
    if (this.state.fencing !== null) this.deps.log.warn({ fencing: this.state.fencing, why }, 'publisher lease lost; publishing stops');
    this.validUntil = 0;
    this.nextPublish = 0;
    this.set({ fencing: null, problem: null });
  }

  /** Renews the lease; throws LeaseLost unless it is still ours with our fencing number. */
  private async fence(): Promise<number> {
    const fencing = this.state.fencing;
    if (fencing === null) throw new LeaseLost('the publisher lease is not held');
    const sentAt = Date.now();
    let lease: Lease__Output;
    try {
      lease = await this.deps.control.renewLease(this.deps.instanceId, PUBLISHER_LEASE, fencing);
    } catch (err) {
      throw new LeaseLost(`the lease could not be renewed: ${describeError(err)}`);
    }
    if (!this.granted(lease, sentAt) || Number(lease.fencing) !== fencing) throw new LeaseLost(`lease now held by ${lease.holder || 'nobody'} (fencing ${lease.fencing})`);
    return fencing;
  }

  /** Mints a token per role and reads the CA pin, then writes each after confirming the lease. */
  private async publish(target: PublishTarget): Promise<void> {
    const { config, log, writer } = this.deps;
    const tctl = (args: string[]) => runTctl(config.teleport.tctl, config.paths.teleportConfig, args);
    const names = ssmNames(target.ssmPrefix, target.clusterName);
    for (const role of config.publisher.roles) {
      const { token, expires } = parseTokenJson(await tctl(['tokens', 'add', `--type=${role}`, `--ttl=${config.publisher.tokenTtl}`, '--format=json']));
      const fencing = await this.fence();
      const version = await writer.put(names.token(role), token, 'SecureString');
      log.info({ role, parameter: names.token(role), version, expires, fencing }, 'join token published');
    }
    const caPin = parseCaPin(await tctl(['status']));
    const fencing = await this.fence();
    const version = await writer.put(names.caPin, caPin, 'String');
    log.info({ parameter: names.caPin, version, fencing }, 'CA pin published');
  }

  /** Runs until aborted; releases the lease on the way out. */
  async run(signal: AbortSignal): Promise<void> {
    const { control, instanceId, log, config } = this.deps;
    while (!signal.aborted) {
      let wait = Infinity;
      const target = this.deps.target();
      try {
        if (!target) {
          if (this.state.fencing !== null) await this.release();
          this.set({ problem: null });
          wait = Math.min(1000, this.periodMs / 4);
        } else if (this.state.fencing !== null) {
          await this.fence();
          // Renewed three times a period: one lost call does not lose the lease.
          wait = this.periodMs / 3;
        } else {
          const sentAt = Date.now();
          const lease = await control.acquireLease(instanceId, PUBLISHER_LEASE);
          if (this.granted(lease, sentAt)) {
            log.info({ fencing: Number(lease.fencing) }, 'publisher lease acquired');
            this.set({ fencing: Number(lease.fencing) });
            wait = this.periodMs / 3;
          } else {
            // Asks again just after the holder's lease would expire.
            wait = Math.max(50, Math.min(this.periodMs / 4, Number(lease.expiresUnixMs) - Date.now() + 25));
          }
        }
        if (target && this.state.fencing !== null && Date.now() >= this.nextPublish) {
          try {
            // The interval counts from the start: the first token written is the oldest.
            const startedAt = Date.now();
            await this.publish(target);
            this.failures = 0;
            this.nextPublish = startedAt + config.publisher.rotateEveryMs;
            this.set({ lastPublishedAt: Date.now(), problem: null });
          } catch (err) {
            if (err instanceof LeaseLost) throw err;
            this.failures++;
            const delay = backoffDelay(this.failures, config.retry);
            this.nextPublish = Date.now() + delay;
            log.warn({ attempt: this.failures, retryInMs: delay, err: describeError(err) }, 'publishing join tokens failed; retrying');
            this.set({ problem: `publishing join tokens failed (attempt ${this.failures}): ${describeError(err)}`.slice(0, 500) });
          }
          wait = Math.min(wait, Math.max(0, this.nextPublish - Date.now()));
        } else if (this.state.fencing !== null) {
          wait = Math.min(wait, Math.max(0, this.nextPublish - Date.now()));
        }
      } catch (err) {
        if (err instanceof LeaseLost) this.lose(err.message);
        else {
          log.warn({ err: describeError(err) }, 'publisher lease call failed; retrying');
          // Past its validity, the lease counts as lost: another holder may have it.
          if (this.state.fencing !== null && Date.now() >= this.validUntil) this.lose('no renewal within the lease period');
        }
        wait = Math.min(wait, Math.max(50, config.retry.initialMs));
      }
      if (!Number.isFinite(wait)) wait = this.periodMs / 3;
      await sleep(wait, signal).catch(() => {});
    }
    if (this.state.fencing !== null) await this.release().catch(() => {});
  }

  private async release(): Promise<void> {
    const fencing = this.state.fencing!;
    this.validUntil = 0;
    this.set({ fencing: null });
    await this.deps.control.releaseLease(this.deps.instanceId, PUBLISHER_LEASE, fencing);
    this.deps.log.info({ fencing }, 'publisher lease released');
  }
}
