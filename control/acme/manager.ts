// Keeps the proxy certificate valid: at every check, the control replica
// holding the "acme" lease reads the certificate in S3 and, when it is
// missing or has less than the configured fraction of its lifetime left (or
// an operator asked), orders a new one. Failures are recorded with the CA's
// reason and retried with backoff; the fleet health shows them.
import { hostname } from 'node:os';
import { backoffDelay, type BackoffOptions } from '../../contract/backoff';
import { describeError, type Logger } from '../../contract/log';
import { certDomainOf, type ClusterSettings } from '../../contract/model';
import type { ProxyCertificate, Store } from '../store/store';
import type { AcmeConfig } from './config';
import { createAccountKey, issueCertificate, type ChallengeSolver } from './issuer';
import { certificateFacts, type AccountKeyParameter, type CertificateBucket, type StoredCertificate } from './storage';

export const ACME_LEASE = 'acme';

/** Retries of a failed order: Let's Encrypt limits failed validations to 5 an hour per name. */
export const ACME_RETRY: Pick<BackoffOptions, 'initialMs' | 'maxMs'> = { initialMs: 60_000, maxMs: 6 * 60 * 60_000 };

export interface CertificateManagerDeps {
  store: Store;
  log: Logger;
  config: AcmeConfig;
  bucket: CertificateBucket;
  accountKeys: AccountKeyParameter;
  solver: ChallengeSolver;
  /** This replica's name in the lease. */
  replicaId?: string;
  retry?: Pick<BackoffOptions, 'initialMs' | 'maxMs'>;
  now?: () => number;
}

/** Why a certificate is due, or undefined when it is not. */
export function renewalReason(
  stored: StoredCertificate | undefined,
  wanted: string[],
  record: ProxyCertificate | undefined,
  fraction: number,
  now: number,
): string | undefined {
  if (!stored) return 'no certificate in S3 yet';
  if (record?.renewRequested) return 'an operator asked for a renewal';
  const missing = wanted.filter((name) => !stored.names.includes(name));
  if (missing.length) return `the certificate does not cover ${missing.join(', ')}`;
  const lifetime = stored.notAfter - stored.notBefore;
  const remaining = stored.notAfter - now;
  if (remaining < lifetime * fraction)
    return `${Math.max(0, Math.round(remaining / 3_600_000))} h of its ${Math.round(lifetime / 3_600_000)} h lifetime left (renewal below ${Math.round(fraction * 100)}%)`;
  return undefined;
}

export function blankCertificate(domain: string, now: number): ProxyCertificate {
  return {
    domain,
    state: 'pending',
    serial: null,
    notBefore: null,
    notAfter: null,
    etag: null,
    issuedAt: null,
    checkedAt: null,
    lastAttemptAt: null,
    failures: 0,
    lastError: null,
    nextAttemptAt: null,
    renewRequested: false,
    updatedAt: now,
  };
}

export class CertificateManager {
  private readonly replicaId: string;
  private readonly now: () => number;
  private wake: (() => void) | undefined;

  constructor(private readonly deps: CertificateManagerDeps) {
    this.replicaId = deps.replicaId ?? `control:${hostname()}:${process.pid}`;
    this.now = deps.now ?? Date.now;
  }

  /** The names on the certificate: the proxy's public host first (the S3 key), then the additional ones. */
  namesFor(settings: ClusterSettings): string[] {
    const domain = certDomainOf(settings);
    return [domain, ...this.deps.config.additionalDomains.filter((d) => d !== domain)];
  }

  /** Why this cluster has no certificate to manage, or undefined. */
  static notManaged(settings: ClusterSettings): string | undefined {
    if (settings.tlsSource === 'acm') return 'tls_source is acm: the load balancer terminates TLS';
    if (!settings.proxyPublicAddr) return 'proxy_public_addr is not set';
    if (!settings.s3Bucket) return 's3_bucket is not set';
    return undefined;
  }

  /** Checks at once (after a settings change or a renewal request). */
  poke(): void {
    this.wake?.();
  }

  /** One check; returns when the next one is due (unix ms). */
  async checkOnce(): Promise<number> {
    const { store, log, config } = this.deps;
    const now = this.now();
    const next = now + config.checkIntervalMs;
    const settings = await store.getSettings();
    const why = CertificateManager.notManaged(settings);
    if (why) {
      log.debug({ why }, 'no proxy certificate to manage');
      return next;
    }
    const lease = await store.acquireLease(ACME_LEASE, this.replicaId, config.leaseMs);
    if (!lease.granted) return Math.min(next, (lease.lease?.expiresAt ?? now) + 50);
    const fencing = lease.lease!.fencing;

    const names = this.namesFor(settings);
    const domain = names[0];
    const record = (await store.getProxyCertificate(domain)) ?? blankCertificate(domain, now);
    const stored = await this.deps.bucket.read(settings.s3Bucket, domain);
    const observed: ProxyCertificate = stored
      ? {
          ...record,
          serial: stored.serial,
          notBefore: stored.notBefore,
          notAfter: stored.notAfter,
          etag: stored.etag,
          checkedAt: now,
          updatedAt: now,
        }
      : { ...record, checkedAt: now, updatedAt: now };
    const reason = renewalReason(stored, names, record, config.renewRemainingFraction, now);
    if (!reason) {
      await store.saveProxyCertificate({ ...observed, state: 'valid', failures: 0, lastError: null, nextAttemptAt: null });
      const renewAt = stored!.notAfter - (stored!.notAfter - stored!.notBefore) * config.renewRemainingFraction;
      return Math.min(next, Math.max(now + 1000, renewAt));
    }
    if (record.nextAttemptAt !== null && now < record.nextAttemptAt && !record.renewRequested) {
      await store.saveProxyCertificate(observed);
      return Math.min(next, record.nextAttemptAt);
    }
    await store.saveProxyCertificate({ ...observed, state: 'renewing', lastAttemptAt: now });
    log.info({ domain, names, reason, challenge: config.challenge }, 'ordering the proxy certificate');
    // The order can outlast one lease period (DNS propagation): keep renewing meanwhile.
    const keepAlive = setInterval(
      () => void store.renewLease(ACME_LEASE, this.replicaId, fencing, config.leaseMs).catch(() => {}),
      config.leaseMs / 3,
    );
    try {
      const issued = await this.issue(settings, names);
      const stillOurs = await store.renewLease(ACME_LEASE, this.replicaId, fencing, config.leaseMs);
      if (!stillOurs.granted)
        throw new Error(
          `the acme lease passed to ${stillOurs.lease?.holder ?? 'nobody'} during the order; the new certificate is discarded`,
        );
      const etag = await this.deps.bucket.write(settings.s3Bucket, domain, issued.fullchainPem, issued.privkeyPem);
      const facts = certificateFacts(issued.fullchainPem);
      const at = this.now();
      await store.saveProxyCertificate(
        {
          ...observed,
          state: 'valid',
          serial: facts.serial,
          notBefore: facts.notBefore,
          notAfter: facts.notAfter,
          etag,
          issuedAt: at,
          lastAttemptAt: now,
          failures: 0,
          lastError: null,
          nextAttemptAt: null,
          renewRequested: false,
          updatedAt: at,
        },
        {
          actor: this.replicaId,
          action: 'certificate.issue',
          details: {
            names,
            serial: facts.serial,
            notAfter: new Date(facts.notAfter).toISOString(),
            replaced: stored?.serial ?? null,
            reason,
          },
        },
      );
      log.info(
        { domain, serial: facts.serial, notAfter: new Date(facts.notAfter).toISOString(), bucket: settings.s3Bucket },
        'proxy certificate issued and stored in S3',
      );
      return this.now() + 1000;
    } catch (err) {
      const failures = record.failures + 1;
      const delay = backoffDelay(failures, this.deps.retry ?? ACME_RETRY);
      const message = describeError(err).slice(0, 1000);
      const at = this.now();
      await store.saveProxyCertificate(
        {
          ...observed,
          state: 'failing',
          lastAttemptAt: now,
          failures,
          lastError: message,
          nextAttemptAt: at + delay,
          renewRequested: false,
          updatedAt: at,
        },
        {
          actor: this.replicaId,
          action: 'certificate.fail',
          details: { names, attempt: failures, error: message, retryAt: new Date(at + delay).toISOString() },
        },
      );
      log.warn({ domain, attempt: failures, retryInMs: delay, err: message }, 'ordering the proxy certificate failed; retrying');
      return Math.min(next, at + delay);
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async issue(settings: ClusterSettings, names: string[]) {
    const { config, log } = this.deps;
    const parameter = config.accountKeyParameter ?? `${settings.ssmPrefix}/${settings.clusterName}/acme/account-key`;
    const account = await this.deps.accountKeys.load(parameter, createAccountKey);
    if (account.created) log.info({ parameter }, 'ACME account key created and stored in SSM');
    return issueCertificate({ config, accountKeyPem: account.pem, domains: names, solver: this.deps.solver, log });
  }

  /** Checks until aborted. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let next: number;
      try {
        next = await this.checkOnce();
      } catch (err) {
        this.deps.log.error({ err: describeError(err) }, 'checking the proxy certificate failed');
        next = this.now() + Math.min(this.deps.config.checkIntervalMs, 30_000);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, next - this.now()));
        signal.addEventListener('abort', done, { once: true });
        this.wake = done;
      });
    }
  }
}
