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
import { applyPlan, preparePlan, secretValuesOf, watchedFiles, type ApplyResult, type DesiredState, type Plan } from './converge';
import { readyzOnce, waitForReady } from './diag';
import { WrittenFiles, type FileDrift } from './drift';
import { teleportLogTail } from './log-tail';
import type { Persist } from './persist';
import type { AgentStatus, Reporter } from './reporter';
import type { ServiceManager } from './service-manager';
import { installDesiredRelease, ReleaseError } from './teleport-install';
import { hostTeleportVersion } from './teleport-version';

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
  /** Watched files changed by hand since the agent wrote them (reported with every status). */
  drift: FileDrift[] = [];
  private readonly written: WrittenFiles;
  /** Secret values of the last plan (the join token): masked literally in what the agent reports. */
  private secretValues: string[] = [];
  /** True while a convergence writes files: a drift check then would see its own writes half done. */
  private applying = false;
  /** Convergences begun so far: a drift check that overlapped one is dropped. */
  private applications = 0;
  /** driftRepair immediate: a drift check found hand edits; the convergence duty puts the files back. */
  private repairDue = false;

  constructor(private readonly deps: ConvergenceDeps) {
    this.written = new WrittenFiles(deps.config.paths.stateDir, deps.log);
  }

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
      } else if (this.repairDue) {
        this.repairDue = false;
        const desired = feed.desired();
        if (desired) await this.converge(desired, signal);
      } else if (this.certificate && Date.now() >= nextCertificateCheck) {
        nextCertificateCheck = Date.now() + config.certificateCheckMs;
        const desired = feed.desired();
        if (desired && (await this.certificateRenewed())) await this.converge(desired, signal);
      }
      if (feed.generation !== this.handled || this.repairDue) continue;
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
    this.applying = true;
    this.applications++;
    // Stopped before the outcome's report, so that no progress report arrives after it.
    const applied = await this.apply(desired, signal).finally(() => {
      this.applying = false;
      return progress?.stop();
    });
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
    const [unitState, teleportVersion] = await Promise.all([
      services.activeState().catch(() => 'unknown'),
      hostTeleportVersion(config.teleport),
    ]);
    const logTail = ready ? undefined : await this.logTail();
    this.status = {
      state: ready ? 'ready' : 'degraded',
      appliedGeneration: desired.generation,
      teleportReady: ready,
      teleportUnitState: unitState,
      message: ready
        ? 'teleport is ready'
        : `teleport did not answer /readyz on ${config.teleport.diagAddr} within ${config.teleport.readyTimeoutMs} ms`,
      certificateExpiresAt,
      ...(logTail ? { logTail } : {}),
      ...(teleportVersion ? { teleportVersion } : {}),
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
    this.secretValues = secretValuesOf(plan);
    step('installing the Teleport release the settings name');
    const release = await installDesiredRelease(desired, this.deps, signal, waitingFor('the Teleport release'));
    if (release instanceof ReleaseError) return release;
    step('writing files and starting teleport');
    const writing = 'the files to be written and teleport started';
    const keep = await this.keptDrift(desired);
    const result = await persist(
      writing,
      () => applyPlan(plan, services, this.deps.owner, { keep, binaryChanged: release.changed }),
      signal,
      {
        onWait: waitingFor(writing),
      },
    );
    // Recorded while Teleport starts (it is no part of the way to ready). Without the record, hand
    // edits go unnoticed until a later convergence writes it: no reason to fail this one.
    const recorded = this.written
      .remember(desired.generation, watchedFiles(plan, config, services.unitPath), keep)
      .then(() => this.written.drift(this.secretValues))
      .then(
        (drift) => void (this.drift = drift),
        (err: unknown) => log.warn({ err: describeError(err) }, 'cannot record the files written; drift is not checked'),
      );
    log.info(
      {
        generation: desired.generation,
        written: result.written,
        removed: result.removed,
        unitChanged: result.unitChanged,
        restarted: result.restarted,
        reloaded: result.reloaded,
        ...(keep.size ? { keptChangedByHand: [...keep] } : {}),
      },
      result.written.length ? 'config applied' : 'config unchanged',
    );
    step(`waiting for teleport to answer /readyz on ${config.teleport.diagAddr}`);
    const [ready] = await Promise.all([waitForReady(config.teleport.diagAddr, config.teleport.readyTimeoutMs, signal), recorded]);
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
    const [ready, unitState, teleportVersion] = await Promise.all([
      readyzOnce(this.deps.config.teleport.diagAddr),
      this.deps.services.activeState().catch(() => 'unknown'),
      hostTeleportVersion(this.deps.config.teleport),
    ]);
    const logTail = ready ? undefined : await this.logTail();
    // A convergence that began meanwhile owns the status.
    if (this.status !== before) return;
    const { logTail: _old, teleportVersion: _was, ...found } = before;
    const rest = { ...found, ...(teleportVersion ? { teleportVersion } : {}) };
    if (before.state === 'orphaned')
      this.status = { ...rest, teleportReady: ready, teleportUnitState: unitState, ...(logTail ? { logTail } : {}) };
    else
      this.status = {
        ...rest,
        state: ready ? 'ready' : 'degraded',
        teleportReady: ready,
        teleportUnitState: unitState,
        message: ready ? 'teleport is ready' : `teleport is not ready (unit ${unitState})`,
        ...(logTail ? { logTail } : {}),
      };
  }

  /** Teleport's last log lines, secrets masked (the join token literally). */
  private logTail(): Promise<string[]> {
    return teleportLogTail(this.deps.services, this.secretValues);
  }

  /**
   * At a heartbeat: whether the watched files still hold what the agent
   * wrote. With driftRepair immediate, hand edits are put back at once (the
   * convergence duty applies the current state again); with next-change
   * (the default) at the next generation the host applies.
   */
  async checkDrift(): Promise<void> {
    const seen = this.applications;
    if (this.applying) return;
    const drift = await this.written.drift(this.secretValues);
    if (this.applying || this.applications !== seen) return;
    const paths = drift.map((d) => d.path);
    if (paths.join('\n') !== this.drift.map((d) => d.path).join('\n') && paths.length)
      this.deps.log.warn({ paths }, 'files teleboot wrote were changed by hand (drift)');
    this.drift = drift;
    const desired = this.deps.feed.desired();
    if (drift.length && desired?.cluster.driftRepair === 'immediate' && this.status.state !== 'converging') {
      this.deps.log.info({ paths }, 'driftRepair is immediate: putting the files back');
      this.repairDue = true;
      this.deps.feed.wake();
    }
  }

  /**
   * Files changed by hand that this convergence leaves as they are: with
   * driftRepair next-change, while the generation is the one that wrote them
   * (an agent restart or a certificate renewal is no change of the host's
   * files); none with immediate or for a new generation.
   */
  private async keptDrift(desired: DesiredState): Promise<Set<string>> {
    if (desired.cluster.driftRepair === 'immediate') return new Set();
    if ((await this.written.generation()) !== desired.generation) return new Set();
    return new Set((await this.written.drift()).map((d) => d.path));
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
