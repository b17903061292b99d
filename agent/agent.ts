// The agent's lifecycle: identity, enrollment, assignment, convergence, and
// then heartbeats and following changes for as long as it runs.
import { randomBytes, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { ServiceError } from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { backoffDelay, retry, sleep, type BackoffOptions } from '../contract/backoff';
import { writeFileAtomic } from '../contract/files';
import { describeError, type Logger } from '../contract/log';
import type { AgentState, HostFacts, InstanceIdentity } from '../contract/model';
import { assignmentFromMessage, clusterFromMessage } from '../contract/wire';
import { VERSION } from '../contract/version';
import type { AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';
import type { ParameterWriter, SecretSource } from './aws';
import type { AgentConfig } from './config';
import { ControlClient, credentialsValid, isRetryable, needsRenewal, type ClientCredentials, type EnrollProof } from './control-client';
import { applyPlan, preparePlan, type ApplyResult, type DesiredState, type Plan } from './converge';
import { readyzOnce, waitForReady } from './diag';
import type { IdentitySource } from './identity';
import { RenderError } from '../contract/render/render';
import type { ServiceManager } from './service-manager';
import { Publisher } from './publisher';
import { leafTrustOf } from './trusted-cluster';

export interface AgentDeps {
  config: AgentConfig;
  log: Logger;
  identity: IdentitySource;
  control: ControlClient;
  /** Built once the region is known (from config or instance metadata). */
  secrets: (region: string) => SecretSource;
  services: ServiceManager;
  facts: () => Promise<HostFacts | null>;
  owner: { uid: number; gid: number };
  /** SSM writes of the publisher (auth servers holding the publisher lease); none: no publisher. */
  parameters?: (region: string) => ParameterWriter;
}

export interface AgentStatus {
  state: AgentState;
  appliedGeneration: number;
  teleportReady: boolean;
  teleportUnitState: string;
  message: string;
  /** Proxies: when the certificate written for Teleport expires (unix ms). */
  certificateExpiresAt?: number;
}

/** The S3 object a proxy's certificate comes from, and the ETag last applied. */
interface FollowedCertificate {
  bucket: string;
  key: string;
  etag: string;
}

/** Assignment state from the wire, as the converge step wants it. */
export function desiredFrom(msg: AssignmentState__Output): DesiredState | null {
  if (!msg.assigned || !msg.assignment || !msg.cluster) return null;
  return {
    generation: Number(msg.generation),
    assignment: assignmentFromMessage(msg.assignment),
    cluster: clusterFromMessage(msg.cluster),
  };
}

const CREDENTIALS_FILE = 'credentials.json';
const NONCE_FILE = 'nonce';

export class Agent {
  private readonly log: Logger;
  private readonly backoff: BackoffOptions;
  private instance!: InstanceIdentity;
  private secretSource!: SecretSource;
  private creds: ClientCredentials | undefined;
  private latest: AssignmentState__Output | undefined;
  private wake: (() => void) | undefined;
  private heartbeatMs: number;
  /** Proxies: the certificate in S3 whose renewals are followed. */
  private certificate: FollowedCertificate | undefined;
  /** `plan` enrolls in memory only: it writes nothing on the host. */
  private readOnly = false;
  /** On auth servers: mints and publishes join tokens and the CA pin while it holds the lease. */
  publisher: Publisher | undefined;
  status: AgentStatus = {
    state: 'converging',
    appliedGeneration: 0,
    teleportReady: false,
    teleportUnitState: 'inactive',
    message: 'starting',
  };

  constructor(private readonly deps: AgentDeps) {
    this.log = deps.log;
    this.backoff = deps.config.retry;
    this.heartbeatMs = deps.config.heartbeatIntervalMs;
  }

  get instanceId(): string {
    return this.instance.instanceId;
  }

  /** Retries `work` with backoff, logging what it waits for; stops only on abort or a permanent error. */
  private persist<T>(
    what: string,
    work: () => Promise<T>,
    signal?: AbortSignal,
    isPermanent?: (err: unknown) => boolean,
    onWait?: (err: unknown) => void,
  ): Promise<T> {
    return retry(work, {
      ...this.backoff,
      signal,
      isPermanent,
      onRetry: (err, attempt, delayMs) => {
        this.log.warn({ attempt, retryInMs: delayMs, err: describeError(err) }, `waiting for ${what}`);
        onWait?.(err);
      },
    });
  }

  /** Identity from IMDS, then a valid client certificate (saved, or a new enrollment). */
  async start(signal?: AbortSignal, opts: { readOnly?: boolean } = {}): Promise<void> {
    const { config } = this.deps;
    this.readOnly = opts.readOnly ?? false;
    this.instance = await this.persist('instance metadata (IMDSv2)', () => this.deps.identity.identity(), signal);
    this.log.info({ instanceId: this.instance.instanceId, region: this.instance.region }, 'identity read from instance metadata');
    this.secretSource = this.deps.secrets(config.aws.region ?? this.instance.region);
    if (!this.readOnly) {
      await fs.mkdir(config.paths.stateDir, { recursive: true, mode: 0o700 });
      await fs.chmod(config.paths.stateDir, 0o700);
    }
    const saved = await this.loadCredentials();
    if (saved && credentialsValid(saved, this.instance.instanceId) && !needsRenewal(saved)) {
      this.creds = saved;
      this.deps.control.useCredentials(saved);
    } else {
      await this.enroll(signal);
    }
  }

  private async loadCredentials(): Promise<ClientCredentials | undefined> {
    try {
      return JSON.parse(await fs.readFile(join(this.deps.config.paths.stateDir, CREDENTIALS_FILE), 'utf8')) as ClientCredentials;
    } catch {
      return undefined;
    }
  }

  /**
   * The nonce this instance binds at its first enrollment and presents at
   * every later one (0600 in the 0700 state directory). A copied identity
   * document without it cannot enroll another machine. `plan` creates none
   * for a join token (it enrolls without binding); with EC2 identity it
   * must, and saves it.
   */
  private async nonce(): Promise<string | undefined> {
    const { config } = this.deps;
    const path = join(config.paths.stateDir, NONCE_FILE);
    try {
      const saved = (await fs.readFile(path, 'utf8')).trim();
      if (saved) return saved;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (this.readOnly && config.enrollmentMethod !== 'ec2') return undefined;
    const nonce = randomBytes(32).toString('base64url');
    await fs.mkdir(config.paths.stateDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, nonce + '\n', { mode: 0o600 });
    return nonce;
  }

  private async enroll(signal?: AbortSignal): Promise<void> {
    const { config } = this.deps;
    const nonce = await this.nonce();
    let proof: EnrollProof;
    if (config.enrollmentMethod === 'ec2') {
      const source = this.deps.identity;
      if (!source.proof) throw new Error('enrollment.method ec2 needs instance metadata (IMDSv2) that serves the signed identity document');
      proof = {
        ec2Identity: await this.persist('the signed identity document (IMDSv2)', () => source.proof!(config.ec2Signature), signal),
      };
    } else {
      if (!config.joinTokenFile)
        throw new Error(`${config.source}: enrollment.join_token_file is required with enrollment.method join_token`);
      proof = { joinToken: (await fs.readFile(config.joinTokenFile, 'utf8')).trim() };
    }
    const enrollment = await this.persist(
      `enrollment at ${config.control.endpoints.join(', ')}`,
      () => this.deps.control.enroll(this.instance, proof, VERSION, nonce),
      signal,
      (err) => !isRetryable(err),
    );
    this.creds = enrollment.credentials;
    // A boot goes on with this; later states come from the watch stream (or GetAssignment).
    this.latest ??= enrollment.assignment;
    this.adoptHeartbeat(enrollment.heartbeatIntervalSeconds);
    // The private key lives only here: 0600 in a 0700 directory.
    if (!this.readOnly)
      await writeFileAtomic(join(this.deps.config.paths.stateDir, CREDENTIALS_FILE), JSON.stringify(this.creds), { mode: 0o600 });
    this.log.info({ instanceId: this.instance.instanceId, certificateExpires: new Date(this.creds.expiresAt).toISOString() }, 'enrolled');
  }

  /** Calls the control server; re-enrolls once if the server no longer knows this instance. */
  private async call<T>(what: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.persist(
      what,
      async () => {
        try {
          return await work();
        } catch (err) {
          const code = (err as ServiceError).code;
          if (code === grpcStatus.NOT_FOUND || code === grpcStatus.UNAUTHENTICATED) {
            this.log.warn({ err: describeError(err) }, 'the control server does not know this instance; enrolling again');
            await this.enroll(signal);
          }
          throw err;
        }
      },
      signal,
      (err) => !isRetryable(err) && ![grpcStatus.NOT_FOUND, grpcStatus.UNAUTHENTICATED].includes((err as ServiceError).code),
    );
  }

  async fetchAssignment(signal?: AbortSignal): Promise<AssignmentState__Output> {
    this.latest = await this.call('the assignment', () => this.deps.control.getAssignment(this.instanceId), signal);
    return this.latest;
  }

  /** The assignment the enrollment just gave, or else the control server's current one. */
  async initialAssignment(signal?: AbortSignal): Promise<AssignmentState__Output> {
    return this.latest ?? (await this.fetchAssignment(signal));
  }

  /** Renders every file for a desired state without writing anything (for `plan`). */
  async plan(desired: DesiredState, signal?: AbortSignal): Promise<Plan> {
    return this.persist(
      'SSM and S3',
      () => preparePlan(desired, this.instance, this.deps.config, this.secretSource),
      signal,
      (err) => err instanceof RenderError,
    );
  }

  /**
   * Applies one desired state and reports the outcome. The control server
   * counts an instance whose applied generation is behind as converging
   * without being told; a convergence that outlasts a heartbeat interval
   * reports what it is doing (or waiting for) at each one.
   */
  async converge(desired: DesiredState, signal?: AbortSignal): Promise<ApplyResult | undefined> {
    const { config, services } = this.deps;
    const progress = this.reportEachHeartbeat(signal);
    // Stopped before the outcome's report, so that no progress report arrives after it.
    const applied = await this.apply(desired, signal).finally(() => progress.stop());
    if (applied instanceof RenderError) {
      this.log.error({ generation: desired.generation, problems: applied.problems }, 'refusing to write an invalid teleport.yaml');
      this.status = { ...this.status, state: 'failed', message: applied.message };
      await this.report(signal);
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
    this.log.info({ generation: desired.generation, ready, unitState }, ready ? 'teleport ready' : 'teleport not ready');
    await this.report(signal);
    return result;
  }

  /** Fetch, render, write, start, wait for ready; a plan that cannot be rendered comes back as its error. */
  private async apply(
    desired: DesiredState,
    signal?: AbortSignal,
  ): Promise<{ plan: Plan; result: ApplyResult; ready: boolean } | RenderError> {
    const { config, services } = this.deps;
    const step = (message: string) =>
      (this.status = { ...this.status, state: 'converging', message: `generation ${desired.generation}: ${message}` });
    const waitingFor = (what: string) => (err: unknown) => step(`waiting for ${what}: ${describeError(err)}`);
    step('fetching the join token, CA pin and certificate');
    const secrets = 'the join token, CA pin and certificate (SSM, S3)';
    let plan: Plan;
    try {
      plan = await this.persist(
        secrets,
        () => preparePlan(desired, this.instance, config, this.secretSource),
        signal,
        (err) => err instanceof RenderError,
        waitingFor(secrets),
      );
    } catch (err) {
      if (err instanceof RenderError) return err;
      throw err;
    }
    step('writing files and starting teleport');
    const result = await this.persist(
      'systemd',
      () => applyPlan(plan, services, this.deps.owner),
      signal,
      undefined,
      waitingFor('systemd'),
    );
    this.log.info(
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
    const etag = await this.secretSource.etag(followed.bucket, followed.key);
    if (etag === undefined || etag === followed.etag) return false;
    this.log.info({ object: `s3://${followed.bucket}/${followed.key}`, etag }, 'the proxy certificate in S3 changed; applying it');
    return true;
  }

  /** Stops Teleport when the instance has no assignment any more. */
  private async standDown(generation: number, signal?: AbortSignal): Promise<void> {
    const state = await this.deps.services.activeState().catch(() => 'unknown');
    if (state === 'active' || state === 'activating') {
      this.log.info('assignment removed; stopping teleport');
      await this.deps.services.stop();
    }
    this.status = {
      state: 'ready',
      appliedGeneration: generation,
      teleportReady: false,
      teleportUnitState: 'inactive',
      message: 'no assignment',
    };
    await this.report(signal);
  }

  /**
   * Sends the current status at every heartbeat interval until stopped
   * (while a long step runs). stop() waits for a report in flight, so that
   * the report that follows it arrives after it.
   */
  private reportEachHeartbeat(signal?: AbortSignal): { stop(): Promise<void> } {
    let inFlight: Promise<void> | undefined;
    const timer = setInterval(() => {
      inFlight ??= this.report(signal)
        .catch((err) => this.log.warn({ err: describeError(err) }, 'progress report failed'))
        .finally(() => (inFlight = undefined));
    }, this.heartbeatMs);
    return {
      stop: async () => {
        clearInterval(timer);
        await inFlight;
      },
    };
  }

  async report(signal?: AbortSignal): Promise<void> {
    const facts = await this.deps.facts().catch(() => null);
    const res = await this.call(
      'the control server (status report)',
      () =>
        this.deps.control.reportStatus({
          instanceId: this.instanceId,
          appliedGeneration: this.status.appliedGeneration,
          // A publisher that cannot publish makes a ready auth server degraded.
          state: this.publisher?.state.problem && this.status.state === 'ready' ? 'degraded' : this.status.state,
          teleportUnitState: this.status.teleportUnitState,
          teleportReady: this.status.teleportReady,
          message: [this.status.message, this.publisher?.summary()].filter(Boolean).join('; ').slice(0, 4096),
          facts,
          agentVersion: VERSION,
          proxyCertificateExpiresUnixMs: this.status.certificateExpiresAt ?? 0,
        }),
      signal,
    );
    this.adoptHeartbeat(res.heartbeatIntervalSeconds);
  }

  /** The control server sets the heartbeat interval (it judges an instance offline after three missed). */
  private adoptHeartbeat(seconds: number): void {
    if (seconds > 0) this.heartbeatMs = seconds * 1000;
  }

  /** Waits, following the watch stream, until the instance has an assignment. */
  async waitForAssignment(signal?: AbortSignal): Promise<DesiredState> {
    for (;;) {
      const current = this.latest ?? (await this.fetchAssignment(signal));
      const desired = desiredFrom(current);
      if (desired) return desired;
      this.log.info('no assignment yet; waiting for one');
      await this.nextChange(signal);
    }
  }

  /** Resolves at the next change, or after `timeoutMs`; rejects on abort. Leaves no listener behind. */
  private nextChange(signal?: AbortSignal, timeoutMs?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.wake === wake) this.wake = undefined;
      };
      const onAbort = () => {
        done();
        reject(signal!.reason);
      };
      const wake = () => {
        done();
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wake = wake;
      if (timeoutMs !== undefined) timer = setTimeout(wake, timeoutMs);
    });
  }

  /** Keeps a watch stream open, reconnecting with backoff; each state lands in `latest`. */
  private followChanges(signal: AbortSignal): void {
    let attempt = 0;
    const open = () => {
      if (signal.aborted) return;
      const cancel = this.deps.control.watch(
        this.instanceId,
        (state) => {
          attempt = 0;
          this.latest = state;
          this.wake?.();
        },
        (err) => {
          signal.removeEventListener('abort', cancel);
          if (signal.aborted) return;
          attempt++;
          const delay = backoffDelay(attempt + 1, this.backoff);
          this.log.warn(
            { err: err ? describeError(err) : 'stream ended', retryInMs: Math.round(delay) },
            'assignment watch interrupted; reconnecting',
          );
          const code = err?.code;
          const reenroll = code === grpcStatus.NOT_FOUND || code === grpcStatus.UNAUTHENTICATED;
          sleep(delay, signal)
            .then(() => (reenroll ? this.enroll(signal) : undefined))
            .then(open, () => (signal.aborted ? undefined : setTimeout(open, this.backoff.maxMs)));
        },
      );
      signal.addEventListener('abort', cancel, { once: true });
    };
    open();
  }

  /** `teleboot-agent once`: bootstrap and return the final status. */
  async once(signal?: AbortSignal): Promise<AgentStatus> {
    await this.start(signal);
    const controller = new AbortController();
    const stop = () => controller.abort();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      if (!desiredFrom(await this.initialAssignment(controller.signal))) this.followChanges(controller.signal);
      await this.converge(await this.waitForAssignment(controller.signal), controller.signal);
      return this.status;
    } finally {
      controller.abort();
      signal?.removeEventListener('abort', stop);
    }
  }

  /** `teleboot-agent run`: bootstrap, then heartbeat and follow changes until aborted. */
  async run(signal: AbortSignal): Promise<void> {
    await this.start(signal);
    await this.initialAssignment(signal);
    this.followChanges(signal);
    this.startPublisher(signal);
    let appliedGeneration = -1;
    let nextHeartbeat = 0;
    let nextCertificateCheck = 0;
    while (!signal.aborted) {
      const state = this.latest!;
      const generation = Number(state.generation);
      try {
        if (generation !== appliedGeneration) {
          const desired = desiredFrom(state);
          if (desired) await this.converge(desired, signal);
          else {
            this.log.info('no assignment yet; waiting for one');
            if (appliedGeneration !== -1 || generation > 0) await this.standDown(generation, signal);
            else await this.report(signal);
          }
          appliedGeneration = generation;
          nextHeartbeat = Date.now() + this.heartbeatMs;
          nextCertificateCheck = Date.now() + this.deps.config.certificateCheckMs;
        } else if (this.certificate && Date.now() >= nextCertificateCheck) {
          nextCertificateCheck = Date.now() + this.deps.config.certificateCheckMs;
          const desired = desiredFrom(state);
          if (desired && (await this.certificateRenewed())) {
            await this.converge(desired, signal);
            nextHeartbeat = Date.now() + this.heartbeatMs;
          }
        } else if (Date.now() >= nextHeartbeat) {
          await this.heartbeat(signal);
          nextHeartbeat = Date.now() + this.heartbeatMs;
        }
        if (this.creds && needsRenewal(this.creds)) await this.enroll(signal);
      } catch (err) {
        if (signal.aborted) break;
        this.log.error({ err: describeError(err) }, 'convergence failed; retrying');
        await sleep(this.backoff.initialMs, signal).catch(() => {});
        continue;
      }
      if (this.latest && Number(this.latest.generation) !== appliedGeneration) continue;
      const nextWake = this.certificate ? Math.min(nextHeartbeat, nextCertificateCheck) : nextHeartbeat;
      await this.nextChange(signal, Math.max(0, nextWake - Date.now())).catch(() => {});
    }
  }

  /** Publishes while this instance is a ready auth server; its state goes into every report. */
  private startPublisher(signal: AbortSignal): void {
    if (!this.deps.parameters) return;
    const { config } = this.deps;
    this.publisher = new Publisher({
      config,
      log: this.log.child({ component: 'publisher' }),
      control: this.deps.control,
      writer: this.deps.parameters(config.aws.region ?? this.instance.region),
      reader: this.secretSource,
      instanceId: this.instanceId,
      target: () => {
        const desired = this.latest ? desiredFrom(this.latest) : null;
        if (
          !desired?.assignment.roles.includes('auth') ||
          !this.status.teleportReady ||
          this.status.appliedGeneration !== desired.generation
        )
          return undefined;
        return { clusterName: desired.cluster.clusterName, ssmPrefix: desired.cluster.ssmPrefix, leaf: leafTrustOf(desired.cluster) };
      },
      onChange: () => void this.report(signal).catch(() => {}),
    });
    void this.publisher.run(signal).catch((err) => this.log.error({ err: describeError(err) }, 'publisher stopped'));
  }

  /** A periodic report that also notices Teleport going down or coming back. */
  private async heartbeat(signal?: AbortSignal): Promise<void> {
    if (this.status.state === 'ready' || this.status.state === 'degraded') {
      const [ready, unitState] = await Promise.all([
        readyzOnce(this.deps.config.teleport.diagAddr),
        this.deps.services.activeState().catch(() => 'unknown'),
      ]);
      const assigned = this.latest ? desiredFrom(this.latest) !== null : false;
      if (assigned) {
        this.status = {
          ...this.status,
          state: ready ? 'ready' : 'degraded',
          teleportReady: ready,
          teleportUnitState: unitState,
          message: ready ? 'teleport is ready' : `teleport is not ready (unit ${unitState})`,
        };
      }
    }
    await this.report(signal);
  }
}
