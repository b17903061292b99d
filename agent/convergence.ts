// Convergence: from the latest assignment state to the files on disk and a
// running Teleport, and the status that describes the outcome. Fails static:
// Teleport stops only on an explicit unassignment, never because the control
// server forgot this instance.
import { X509Certificate } from 'node:crypto';
import { describeError, type Logger } from '../contract/log';
import { RenderError } from '../contract/render/render';
import type { InstanceIdentity } from '../contract/model';
import type { SecretSource } from './aws';
import type { AssignmentFeed } from './assignment-feed';
import type { AgentConfig } from './config';
import { applyPlan, preparePlan, type ApplyResult, type DesiredState, type Plan } from './converge';
import { readyzOnce, waitForReady } from './diag';
import type { Persist } from './persist';
import type { AgentStatus, Reporter } from './reporter';
import type { ServiceManager } from './service-manager';
import { installDesiredRelease, ReleaseError } from './teleport-install';

/** The S3 object a proxy's certificate comes from, and the ETag last applied. */
interface FollowedCertificate {
  bucket: string;
  key: string;
  etag: string;
}

export interface ConvergenceDeps {
  config: AgentConfig;
  log: Logger;
  services: ServiceManager;
  owner: { uid: number; gid: number };
  feed: AssignmentFeed;
  persist: Persist;
  instance: () => InstanceIdentity;
  secrets: () => SecretSource;
  reporter: () => Reporter;
}

const RUNNING_STATES = new Set(['active', 'activating', 'reloading']);

export const ORPHANED_MESSAGE =
  'the control server has no assignment for this instance: it forgot it (a reset or restored store); ' +
  'Teleport keeps running what was applied last until an operator assigns or unassigns this instance';

export class Convergence {
  status: AgentStatus = {
    state: 'converging',
    appliedGeneration: 0,
    teleportReady: false,
    teleportUnitState: 'inactive',
    message: 'starting',
  };
  /** The generation last acted on (-1: none yet); kept across restarts of the duty. */
  private handled = -1;
  /** Proxies: the certificate in S3 whose renewals are followed. */
  private certificate: FollowedCertificate | undefined;

  constructor(private readonly deps: ConvergenceDeps) {}

  /** Duty: acts on each new generation, and on a renewed proxy certificate, until aborted. */
  async run(signal: AbortSignal): Promise<void> {
    const { feed, config } = this.deps;
    let nextCertificateCheck = Date.now() + config.certificateCheckMs;
    for (;;) {
      const state = feed.latest;
      const generation = feed.generation;
      if (state && generation !== this.handled) {
        const desired = feed.desired();
        if (desired) await this.converge(desired, signal);
        else await this.unassigned(generation, signal);
        this.handled = generation;
        nextCertificateCheck = Date.now() + config.certificateCheckMs;
      } else if (this.certificate && Date.now() >= nextCertificateCheck) {
        nextCertificateCheck = Date.now() + config.certificateCheckMs;
        const desired = feed.desired();
        if (desired && (await this.certificateRenewed())) await this.converge(desired, signal);
      }
      if (feed.generation !== this.handled) continue;
      const wait = this.certificate ? Math.max(0, nextCertificateCheck - Date.now()) : undefined;
      await feed.next(signal, wait);
    }
  }

  /**
   * Applies one desired state and reports the outcome. The control server
   * counts an instance whose applied generation is behind as converging
   * without being told; the heartbeats (or, for `once`, `progress`) report
   * what a long convergence is doing or waiting for.
   */
  async converge(desired: DesiredState, signal?: AbortSignal, opts: { progress?: boolean } = {}): Promise<ApplyResult | undefined> {
    const { config, services, log } = this.deps;
    const reporter = this.deps.reporter();
    const progress = opts.progress ? reporter.reportEachHeartbeat(signal) : undefined;
    // Stopped before the outcome's report, so that no progress report arrives after it.
    const applied = await this.apply(desired, signal).finally(() => progress?.stop());
    if (applied instanceof RenderError) {
      log.error({ generation: desired.generation, problems: applied.problems }, 'refusing to write an invalid teleport.yaml');
      this.status = { ...this.status, state: 'failed', message: applied.message };
      await reporter.report(signal);
      return undefined;
    }
    if (applied instanceof ReleaseError) {
      log.error(
        { generation: desired.generation, err: applied.message },
        'teleport release not installed; teleport keeps running what it ran',
      );
      this.status = { ...this.status, state: 'failed', message: applied.message };
      await reporter.report(signal);
      return undefined;
    }
    const { plan, result, ready } = applied;
    const certificateExpiresAt = this.followCertificate(plan);
    const unitState = await services.activeState().catch(() => 'unknown');
    this.status = {
      state: ready ? 'ready' : 'degraded',
      appliedGeneration: desired.generation,
      teleportReady: ready,
      teleportUnitState: unitState,
      message: ready
        ? 'teleport is ready'
        : `teleport did not answer /readyz on ${config.teleport.diagAddr} within ${config.teleport.readyTimeoutMs} ms`,
      certificateExpiresAt,
    };
    log.info({ generation: desired.generation, ready, unitState }, ready ? 'teleport ready' : 'teleport not ready');
    await reporter.report(signal);
    return result;
  }

  /** Fetch, render, write, start, wait for ready; a plan that cannot be rendered comes back as its error. */
  private async apply(
    desired: DesiredState,
    signal?: AbortSignal,
  ): Promise<{ plan: Plan; result: ApplyResult; ready: boolean } | RenderError | ReleaseError> {
    const { config, services, persist, log } = this.deps;
    const step = (message: string) =>
      (this.status = { ...this.status, state: 'converging', message: `generation ${desired.generation}: ${message}` });
    const waitingFor = (what: string) => (err: unknown) => step(`waiting for ${what}: ${describeError(err)}`);
    step('fetching the join token, CA pin and certificate');
    const secrets = 'the join token, CA pin and certificate (SSM, S3)';
    let plan: Plan;
    try {
      plan = await persist(secrets, () => preparePlan(desired, this.deps.instance(), config, this.deps.secrets()), signal, {
        isPermanent: (err) => err instanceof RenderError,
        onWait: waitingFor(secrets),
      });
    } catch (err) {
      if (err instanceof RenderError) return err;
      throw err;
    }
    step('installing the Teleport release the settings name');
    const release = await installDesiredRelease(desired, this.deps, signal, waitingFor('the Teleport release'));
    if (release instanceof ReleaseError) return release;
    step('writing files and starting teleport');
    const writing = 'the files to be written and teleport started';
    const result = await persist(writing, () => applyPlan(plan, services, this.deps.owner, release.changed), signal, {
      onWait: waitingFor(writing),
    });
    log.info(
      {
        generation: desired.generation,
        written: result.written,
        removed: result.removed,
        restarted: result.restarted,
        reloaded: result.reloaded,
      },
      result.written.length ? 'config applied' : 'config unchanged',
    );
    step(`waiting for teleport to answer /readyz on ${config.teleport.diagAddr}`);
    const ready = await waitForReady(config.teleport.diagAddr, config.teleport.readyTimeoutMs, signal);
    return { plan, result, ready };
  }

  /**
   * No assignment. An explicit unassignment (a generation after the first:
   * an operator removed the role) stops Teleport. Generation 0 means no
   * assignment was ever made in the control server's record: with Teleport
   * running, that record is new and the control server forgot what it had
   * assigned, so Teleport keeps running and the agent reports it orphaned.
   */
  private async unassigned(generation: number, signal: AbortSignal): Promise<void> {
    const { services, log, config } = this.deps;
    const unitState = await services.activeState().catch(() => 'unknown');
    const running = RUNNING_STATES.has(unitState);
    if (generation > 0) {
      if (running) {
        log.info('assignment removed; stopping teleport');
        await services.stop();
      }
      this.certificate = undefined;
      this.status = {
        state: 'ready',
        appliedGeneration: generation,
        teleportReady: false,
        teleportUnitState: 'inactive',
        message: 'no assignment',
      };
    } else if (running) {
      log.warn({ generation }, 'the control server has no assignment for this instance; teleport keeps running (orphaned)');
      this.status = {
        ...this.status,
        state: 'orphaned',
        appliedGeneration: generation,
        teleportReady: await readyzOnce(config.teleport.diagAddr),
        teleportUnitState: unitState,
        message: ORPHANED_MESSAGE,
      };
    } else {
      log.info('no assignment yet; waiting for one');
    }
    await this.deps.reporter().report(signal);
  }

  /** At a heartbeat: notices Teleport going down or coming back (not while a convergence owns the status). */
  async refreshTeleportHealth(): Promise<void> {
    const before = this.status;
    if (!['ready', 'degraded', 'orphaned'].includes(before.state)) return;
    if (before.state !== 'orphaned' && !this.deps.feed.desired()) return;
    const [ready, unitState] = await Promise.all([
      readyzOnce(this.deps.config.teleport.diagAddr),
      this.deps.services.activeState().catch(() => 'unknown'),
    ]);
    // A convergence that began meanwhile owns the status.
    if (this.status !== before) return;
    if (before.state === 'orphaned') this.status = { ...before, teleportReady: ready, teleportUnitState: unitState };
    else
      this.status = {
        ...before,
        state: ready ? 'ready' : 'degraded',
        teleportReady: ready,
        teleportUnitState: unitState,
        message: ready ? 'teleport is ready' : `teleport is not ready (unit ${unitState})`,
      };
  }

  /** Remembers the certificate object (and ETag) a plan applied; returns the certificate's expiry. */
  private followCertificate(plan: Plan): number | undefined {
    const fetch = plan.fetches.s3.find((f) => f.purpose === 'proxy certificate');
    if (!fetch) {
      this.certificate = undefined;
      return undefined;
    }
    this.certificate = { bucket: fetch.bucket, key: fetch.key, etag: plan.etags[fetch.key] ?? '' };
    const pem = plan.files.find((f) => f.path === fetch.file)?.content;
    return pem ? Date.parse(new X509Certificate(pem).validTo) : undefined;
  }

  /** True when the followed certificate in S3 has a new ETag (a renewal was stored). */
  private async certificateRenewed(): Promise<boolean> {
    const followed = this.certificate;
    if (!followed) return false;
    const etag = await this.deps.secrets().etag(followed.bucket, followed.key);
    if (etag === undefined || etag === followed.etag) return false;
    this.deps.log.info({ object: `s3://${followed.bucket}/${followed.key}`, etag }, 'the proxy certificate in S3 changed; applying it');
    return true;
  }
}
