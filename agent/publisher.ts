// The publisher: on auth servers, the one holding the publisher lease (from
// the control server) mints join tokens with tctl and publishes them, and
// the CA pin, to SSM where the other instances read them. Which tokens: the
// names every lease reply carries (what the fleet's assignments need, and
// "trusted_cluster" on a root cluster), plus any configured. On a leaf
// cluster it also creates the trusted_cluster resource with the root's
// token. Every write is preceded by a successful renewal of the lease with
// its fencing number, so a holder that lost the lease never writes again.
import { execFile } from 'node:child_process';
import { backoffDelay, sleep } from '../contract/backoff';
import { describeError, type Logger } from '../contract/log';
import { SERVICE_ROLES, TRUSTED_CLUSTER_TOKEN } from '../contract/model';
import type { Lease__Output } from '../proto/gen/teleboot/v1/Lease';
import { MissingSecretError, type ParameterWriter, type SecretSource } from './aws';
import type { AgentConfig } from './config';
import { ssmNames } from '../contract/render/plan';
import { renderTrustedCluster, resourceHash, trustedClusterResource, type LeafTrust, type TrustedClusterResource } from './trusted-cluster';

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
  /** On a leaf cluster: the root whose trusted_cluster token it takes (from {ssmPrefix}/{root}/tokens/trusted_cluster). */
  leaf?: LeafTrust;
}

export interface PublisherDeps {
  config: Pick<AgentConfig, 'publisher' | 'teleport' | 'paths' | 'retry'>;
  log: Logger;
  control: LeaseClient;
  writer: ParameterWriter;
  /** Reads the root's trusted_cluster token on a leaf cluster. */
  reader?: Pick<SecretSource, 'parameters'>;
  instanceId: string;
  target: () => PublishTarget | undefined;
  /** Told when the publisher's state changes (so that the agent reports it). */
  onChange?: () => void;
}

export interface PublisherState {
  /** The fencing number of the lease held, or null. */
  fencing: number | null;
  lastPublishedAt: number | null;
  /** Why the last publication, or the trusted cluster, failed (each cleared by its next success). */
  problem: string | null;
  /** On a leaf: the root cluster whose trusted_cluster resource this holder created. */
  trustedCluster: string | null;
}

/** The description of a parameter the publisher wrote: by whom, under which fencing number. */
export const publisherDescription = (instanceId: string, fencing: number): string =>
  `written by the teleboot publisher on ${instanceId} holding the publisher lease with fencing number ${fencing}`;

/** The writer and fencing number a publisherDescription names; undefined for any other description. */
export function parsePublisherDescription(description: string): { instanceId: string; fencing: number } | undefined {
  const m = /^written by the teleboot publisher on (\S+) holding the publisher lease with fencing number (\d+)$/.exec(description);
  return m ? { instanceId: m[1], fencing: Number(m[2]) } : undefined;
}

/** The lease was lost (or could not be confirmed) right before a write. */
export class LeaseLost extends Error {}

export class TctlError extends Error {}

/**
 * Runs tctl with the Teleport config; its output is returned, never logged
 * (it carries tokens). `stdin` is handed over a pipe (`tctl create` reads
 * the resource there), never through a file.
 */
export function runTctl(
  tctl: string,
  teleportConfig: string,
  args: string[],
  opts: { timeoutMs?: number; stdin?: string } = {},
): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      tctl,
      ['-c', teleportConfig, ...args],
      { timeout: timeoutMs, maxBuffer: 1024 * 1024, env: process.env },
      (err, stdout, stderr) => {
        const what = `tctl ${args.slice(0, 2).join(' ')}`;
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') return reject(new TctlError(`${what}: ${tctl} not found (teleport.tctl in agent.yaml)`));
          if (code === 'EACCES') return reject(new TctlError(`${what}: ${tctl} is not executable`));
          // The first line of stderr only: tctl reports errors there; stdout may carry a token.
          const line =
            String(stderr)
              .split('\n')
              .find((l) => l.trim()) ?? '';
          const reason = err.killed ? `timed out after ${timeoutMs} ms` : `exit code ${err.code ?? 'unknown'}`;
          return reject(new TctlError(`${what} failed (${reason})${line ? `: ${line.trim().slice(0, 200)}` : ''}`));
        }
        resolve(String(stdout));
      },
    );
    // A tctl that exits without reading its input is reported by the callback, not by the pipe.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.stdin ?? '');
  });
}

/** Token types tctl accepts for the names the control server sends: a service, or "trusted_cluster". */
const TOKEN_TYPES: ReadonlySet<string> = new Set([...SERVICE_ROLES.filter((r) => r !== 'auth'), TRUSTED_CLUSTER_TOKEN]);

/**
 * The `tctl tokens add --type` value of an SSM token name: one type
 * ("node", "trusted_cluster"), or several joined by "-" for a host running
 * several services ("discovery-kube" -> "discovery,kube"; see
 * joinTokenNameOf). Undefined for a name tctl would not understand.
 */
export function tokenTypesOf(name: string): string | undefined {
  const types = name.split('-');
  return types.every((t) => TOKEN_TYPES.has(t)) && new Set(types).size === types.length ? types.join(',') : undefined;
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
  if (typeof token !== 'string' || !/^[\w-]{8,256}$/.test(token))
    throw new TctlError('tctl tokens add --format=json printed no usable "token" field');
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
  state: PublisherState = { fencing: null, lastPublishedAt: null, problem: null, trustedCluster: null };
  private validUntil = 0;
  private periodMs = 30_000;
  /** The next rotation: every token minted again, and the CA pin. */
  private nextPublish = 0;
  /** Names the latest lease reply asked for. */
  private derived: string[] = [];
  /** Names published since this holder got the lease: a name missing here is published at once. */
  private readonly published = new Set<string>();
  /** Names from the control server that tctl would not understand, warned about once. */
  private readonly unknownNames = new Set<string>();
  private readonly tokens = new Duty();
  private readonly trust = new Duty();
  /** Hash of the leaf settings last applied to the trusted_cluster resource (rendered without a token). */
  private trustHash: string | null = null;

  constructor(private readonly deps: PublisherDeps) {}

  private set(patch: Partial<PublisherState>): void {
    const before = JSON.stringify(this.state);
    this.state = { ...this.state, ...patch };
    this.state.problem = [this.tokens.problem, this.trust.problem].filter(Boolean).join('; ') || null;
    if (JSON.stringify(this.state) !== before) this.deps.onChange?.();
  }

  /** One line for the instance status. */
  summary(): string | undefined {
    const s = this.state;
    if (s.problem) return `publisher: ${s.problem}`;
    if (s.fencing !== null) {
      const published = s.lastPublishedAt ? `, published ${new Date(s.lastPublishedAt).toISOString()}` : '';
      const trusted = s.trustedCluster ? `, trusts root cluster ${s.trustedCluster}` : '';
      return `publisher: holds the lease (fencing ${s.fencing})${published}${trusted}`;
    }
    return undefined;
  }

  private granted(lease: Lease__Output, sentAt: number): boolean {
    if (lease.periodMs > 0) this.periodMs = lease.periodMs;
    if (!lease.granted) return false;
    // Counted from when the request left: the server's expiry is at least this late.
    this.validUntil = sentAt + this.periodMs;
    this.derived = lease.joinTokenNames ?? [];
    return true;
  }

  /** What to mint: the names the fleet needs (from the control server) and the configured roles, each once. */
  tokenNames(): string[] {
    const names = new Set([...this.derived, ...this.deps.config.publisher.roles]);
    for (const name of names) {
      if (tokenTypesOf(name)) continue;
      names.delete(name);
      if (!this.unknownNames.has(name))
        this.deps.log.warn({ name }, 'join token name not understood (a newer control server?); not minted');
      this.unknownNames.add(name);
    }
    return [...names].sort();
  }

  /** No longer the holder: a next holding starts from nothing (every name published, the trust checked). */
  private forgetHolding(): void {
    this.validUntil = 0;
    this.nextPublish = 0;
    this.published.clear();
    this.tokens.reset();
    this.trust.reset();
    this.trustHash = null;
    this.set({ fencing: null, trustedCluster: null });
  }

  private lose(why: string): void {
    if (this.state.fencing !== null) this.deps.log.warn({ fencing: this.state.fencing, why }, 'publisher lease lost; publishing stops');
    this.forgetHolding();
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
    if (!this.granted(lease, sentAt) || Number(lease.fencing) !== fencing)
      throw new LeaseLost(`lease now held by ${lease.holder || 'nobody'} (fencing ${lease.fencing})`);
    return fencing;
  }

  /** Every write names its writer and fencing number (the parameter's description), so an audit of SSM shows who wrote under which holding. */
  private writtenBy(fencing: number): string {
    return publisherDescription(this.deps.instanceId, fencing);
  }

  private tctl(args: string[], stdin?: string): Promise<string> {
    const { config } = this.deps;
    return runTctl(config.teleport.tctl, config.paths.teleportConfig, args, { stdin });
  }

  /** Mints a token per name (and reads the CA pin with `caPin`), then writes each after confirming the lease. */
  private async publish(target: PublishTarget, tokenNames: string[], caPin: boolean): Promise<void> {
    const { config, log, writer } = this.deps;
    const names = ssmNames(target.ssmPrefix, target.clusterName);
    for (const name of tokenNames) {
      const args = ['tokens', 'add', `--type=${tokenTypesOf(name)}`, `--ttl=${config.publisher.tokenTtl}`, '--format=json'];
      const { token, expires } = parseTokenJson(await this.tctl(args));
      const fencing = await this.fence();
      const version = await writer.put(names.token(name), token, 'SecureString', this.writtenBy(fencing));
      this.published.add(name);
      log.info({ name, parameter: names.token(name), version, expires, fencing }, 'join token published');
    }
    if (!caPin) return;
    const pin = parseCaPin(await this.tctl(['status']));
    const fencing = await this.fence();
    const version = await writer.put(names.caPin, pin, 'String', this.writtenBy(fencing));
    log.info({ parameter: names.caPin, version, fencing }, 'CA pin published');
  }

  /** The leaf's trusted_cluster resource as Teleport holds it, or undefined when there is none. */
  private async existingTrust(root: string): Promise<TrustedClusterResource | undefined> {
    let out: string;
    try {
      out = await this.tctl(['get', `trusted_cluster/${root}`, '--format=json']);
    } catch (err) {
      if (err instanceof TctlError && /not found|doesn't exist|does not exist/.test(err.message)) return undefined;
      throw err;
    }
    try {
      return (JSON.parse(out) as TrustedClusterResource[])[0];
    } catch {
      throw new TctlError(`tctl get trusted_cluster/${root} --format=json printed no JSON`);
    }
  }

  /**
   * On a leaf: the trusted_cluster resource. The root's token only serves the
   * first handshake, and Teleport refuses to change the token or addresses
   * of an existing trusted cluster: so an existing one with the right
   * addresses is updated in place with the token it already has (a rotation
   * of the root's token leaves it alone), and one with other addresses is
   * removed and created again with the root's current token.
   */
  private async ensureTrust(target: PublishTarget, leaf: LeafTrust): Promise<void> {
    const { log, reader } = this.deps;
    const root = leaf.rootClusterName;
    // The settings alone decide when to look again: no token is kept, even hashed.
    const wanted = trustedClusterResource(leaf, '');
    const hash = resourceHash(renderTrustedCluster(wanted));
    if (hash === this.trustHash) return;
    const existing = await this.existingTrust(root);
    const sameAddresses =
      existing && existing.spec.web_proxy_addr === wanted.spec.web_proxy_addr && existing.spec.tunnel_addr === wanted.spec.tunnel_addr;
    if (existing && sameAddresses) {
      if (
        JSON.stringify(existing.spec.role_map ?? []) !== JSON.stringify(wanted.spec.role_map) ||
        existing.spec.enabled !== wanted.spec.enabled
      ) {
        const fencing = await this.fence();
        await this.tctl(['create', '-f'], renderTrustedCluster(trustedClusterResource(leaf, existing.spec.token)));
        log.info({ rootCluster: root, fencing }, 'trusted cluster updated');
      }
      this.trustHash = hash;
      return;
    }
    const parameter = ssmNames(target.ssmPrefix, root).token(TRUSTED_CLUSTER_TOKEN);
    if (!reader) throw new Error('this agent cannot read SSM');
    let token: string | undefined;
    try {
      token = (await reader.parameters([parameter]))[parameter];
    } catch (err) {
      if (!(err instanceof MissingSecretError)) throw err;
    }
    if (!token)
      throw new MissingSecretError(
        `the root's token ${parameter} is not in SSM (the root's auth server publishes it once the root has trustRole root)`,
      );
    let fencing = await this.fence();
    if (existing) {
      log.info({ rootCluster: root, fencing }, 'the root addresses changed; removing the trusted cluster to create it again');
      await this.tctl(['rm', `trusted_cluster/${root}`]);
      fencing = await this.fence();
    }
    await this.tctl(['create', '-f'], renderTrustedCluster(trustedClusterResource(leaf, token)));
    this.trustHash = hash;
    log.info({ rootCluster: root, parameter, fencing }, 'trusted cluster created');
  }

  /** Runs a duty's work; a failure sets when to try again (backoff) and shows as a problem. LeaseLost goes up. */
  private async attempt(duty: Duty, what: string, work: () => Promise<void>): Promise<boolean> {
    try {
      await work();
      duty.succeeded();
      return true;
    } catch (err) {
      if (err instanceof LeaseLost) throw err;
      const delay = duty.failed(
        backoffDelay(duty.failures + 1, this.deps.config.retry),
        `${what} failed (attempt ${duty.failures + 1}): ${describeError(err)}`.slice(0, 500),
      );
      this.deps.log.warn({ attempt: duty.failures, retryInMs: delay, err: describeError(err) }, `${what} failed; retrying`);
      return false;
    }
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
        if (target && this.state.fencing !== null) {
          const rotation = Date.now() >= this.nextPublish;
          // A name the fleet needs now (a new assignment, the cluster became a root) is published at once.
          const missing = this.tokenNames().filter((n) => !this.published.has(n));
          if (this.tokens.due() && (rotation || missing.length > 0)) {
            // The interval counts from the start: the first token written is the oldest.
            const startedAt = Date.now();
            const ok = await this.attempt(this.tokens, 'publishing join tokens', () =>
              rotation ? this.publish(target, this.tokenNames(), true) : this.publish(target, missing, false),
            );
            if (ok && rotation) this.nextPublish = startedAt + config.publisher.rotateEveryMs;
            this.set(ok ? { lastPublishedAt: Date.now() } : {});
          }
          if (!target.leaf) {
            this.trustHash = null;
            this.trust.reset();
            this.set({ trustedCluster: null });
          } else if (this.trust.due()) {
            const leaf = target.leaf;
            const ok = await this.attempt(this.trust, `trusted cluster ${leaf.rootClusterName}`, () => this.ensureTrust(target, leaf));
            // The settings are compared again at the pace of the renewals.
            if (ok) this.trust.nextAt = Date.now() + this.periodMs / 3;
            this.set({ trustedCluster: ok ? leaf.rootClusterName : null });
          }
        }
        if (this.state.fencing !== null) {
          const next = Math.min(Math.max(this.tokens.nextAt, this.nextPublish), target?.leaf ? this.trust.nextAt : Infinity);
          wait = Math.min(wait, Math.max(0, next - Date.now()));
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
    this.forgetHolding();
    await this.deps.control.releaseLease(this.deps.instanceId, PUBLISHER_LEASE, fencing);
    this.deps.log.info({ fencing }, 'publisher lease released');
  }
}

/** One duty of the holder (publishing tokens, the trusted cluster): its retries with backoff and its problem. */
class Duty {
  failures = 0;
  /** Not before this instant (after a failure, or until the next check). */
  nextAt = 0;
  problem: string | null = null;

  due(now = Date.now()): boolean {
    return now >= this.nextAt;
  }

  succeeded(): void {
    this.failures = 0;
    this.nextAt = 0;
    this.problem = null;
  }

  /** Records a failure; returns the delay before the next try. */
  failed(delayMs: number, problem: string): number {
    this.failures++;
    this.nextAt = Date.now() + delayMs;
    this.problem = problem;
    return delayMs;
  }

  reset(): void {
    this.succeeded();
  }
}
