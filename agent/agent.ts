// The agent: identity and credentials, then, under a supervisor, its duties
// for as long as it runs: following changes, convergence, heartbeats,
// renewal and (auth servers) the publisher. Each part is its own module;
// this one wires them.
import { sleep } from '../contract/backoff';
import { describeError, type Logger } from '../contract/log';
import type { HostFacts } from '../contract/model';
import { RenderError } from '../contract/render/render';
import type { AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';
import { AssignmentFeed, desiredFrom } from './assignment-feed';
import type { ParameterWriter, SecretSource } from './aws';
import type { AgentConfig } from './config';
import type { ControlClient } from './control-client';
import { preparePlan, type ApplyResult, type DesiredState, type Plan } from './converge';
import { Convergence } from './convergence';
import { Credentials } from './credentials';
import type { IdentitySource } from './identity';
import { persistWith, type Persist } from './persist';
import { Publisher } from './publisher';
import { Reporter, type AgentStatus } from './reporter';
import type { ServiceManager } from './service-manager';
import { removeStaleTemporaries } from './stale-temporaries';
import { Supervisor, type Duty } from './supervisor';
import { leafTrustOf } from './trusted-cluster';
import { followChanges } from './watch';

export { desiredFrom, type AgentStatus };

export interface AgentDeps {
  config: AgentConfig;
  log: Logger;
  identity: IdentitySource;
  control: ControlClient;
  /** Built once the region is known (from config or instance metadata). */
  secrets: (region: string) => SecretSource;
  services: ServiceManager;
  /** The host facts collected last, and a new collection when due (true: the first facts). */
  facts: () => Promise<HostFacts | null>;
  refreshFacts?: () => Promise<boolean>;
  /** Called once the boot is over (see ReporterDeps.bootOver). */
  bootOver?: () => void;
  owner: { uid: number; gid: number };
  /** SSM writes of the publisher (auth servers holding the publisher lease); none: no publisher. */
  parameters?: (region: string) => ParameterWriter;
}

export class Agent {
  private readonly persist: Persist;
  private readonly feed = new AssignmentFeed();
  private readonly credentials: Credentials;
  private readonly reporter: Reporter;
  private readonly convergence: Convergence;
  readonly supervisor: Supervisor;
  private secretSource!: SecretSource;
  /** On auth servers: mints and publishes join tokens and the CA pin while it holds the lease. */
  publisher: Publisher | undefined;

  constructor(private readonly deps: AgentDeps) {
    const { config, log, control } = deps;
    this.persist = persistWith(log, config.retry);
    this.credentials = new Credentials({
      config,
      log,
      identity: deps.identity,
      control,
      persist: this.persist,
      onEnrolled: (enrollment) => {
        // The control server's state as of this enrollment; later ones come from the watch stream and heartbeats.
        if (enrollment.assignment) this.feed.set(enrollment.assignment);
        this.reporter.adoptHeartbeat(enrollment.heartbeatIntervalSeconds);
      },
    });
    this.supervisor = new Supervisor({
      log,
      backoff: config.retry,
      onChange: (signal) => this.reportSoon(signal, 'a duty changed'),
    });
    this.reporter = new Reporter({
      log,
      control,
      credentials: this.credentials,
      feed: this.feed,
      facts: deps.facts,
      refreshFacts: deps.refreshFacts,
      bootOver: deps.bootOver,
      heartbeatMs: config.heartbeatIntervalMs,
      status: () => this.convergence.status,
      drift: () => this.convergence.drift,
      // A publisher that cannot publish, or a failing duty, makes a ready instance degraded.
      degraded: () => Boolean(this.publisher?.state.problem || this.supervisor.problem()),
      notes: () => [this.supervisor.problem(), this.publisher?.summary()],
    });
    this.convergence = new Convergence({
      config,
      log,
      services: deps.services,
      owner: deps.owner,
      feed: this.feed,
      persist: this.persist,
      instance: () => this.credentials.instance,
      secrets: () => this.secretSource,
      reporter: () => this.reporter,
    });
  }

  /** A report outside the heartbeat rhythm; the next heartbeat reports anyway should it fail. */
  private reportSoon(signal: AbortSignal, why: string): void {
    this.reporter.report(signal).catch((err: unknown) => {
      if (!signal.aborted) this.deps.log.warn({ err: describeError(err), why }, 'status report failed; the next heartbeat reports');
    });
  }

  get instanceId(): string {
    return this.credentials.instance.instanceId;
  }

  get status(): AgentStatus {
    return this.convergence.status;
  }

  /** Identity from IMDS, then a valid client certificate (saved, or a new enrollment). */
  async start(signal?: AbortSignal, opts: { readOnly?: boolean } = {}): Promise<void> {
    const { config, log } = this.deps;
    if (!opts.readOnly) await removeStaleTemporaries(config, log);
    await this.credentials.identify(signal, opts);
    this.secretSource = this.deps.secrets(config.aws.region ?? this.credentials.instance.region);
    // While the enrollment is in flight: what the first SSM read needs.
    this.secretSource.warm?.();
    await this.credentials.certify(signal);
  }

  async fetchAssignment(signal?: AbortSignal): Promise<AssignmentState__Output> {
    const id = this.instanceId;
    this.feed.set(await this.credentials.call('the assignment', () => this.deps.control.getAssignment(id), signal));
    return this.feed.latest!;
  }

  /** The assignment the enrollment just gave, or else the control server's current one. */
  async initialAssignment(signal?: AbortSignal): Promise<AssignmentState__Output> {
    return this.feed.latest ?? (await this.fetchAssignment(signal));
  }

  /** Renders every file for a desired state without writing anything (for `plan`). */
  async plan(desired: DesiredState, signal?: AbortSignal): Promise<Plan> {
    return this.persist('SSM and S3', () => preparePlan(desired, this.credentials.instance, this.deps.config, this.secretSource), signal, {
      isPermanent: (err) => err instanceof RenderError,
    });
  }

  /** Applies one desired state and reports the outcome (with progress reports while it takes). */
  converge(desired: DesiredState, signal?: AbortSignal): Promise<ApplyResult | undefined> {
    return this.convergence.converge(desired, signal, { progress: true });
  }

  report(signal?: AbortSignal): Promise<void> {
    return this.reporter.report(signal);
  }

  /** Waits, following the watch stream, until the instance has an assignment. */
  async waitForAssignment(signal?: AbortSignal): Promise<DesiredState> {
    for (;;) {
      if (!this.feed.latest) await this.fetchAssignment(signal);
      const desired = this.feed.desired();
      if (desired) return desired;
      this.deps.log.info('no assignment yet; waiting for one');
      await this.feed.next(signal);
    }
  }

  private watchDuty(): Duty {
    const { log, control, config } = this.deps;
    return {
      name: 'watch',
      run: (signal) => followChanges({ log, control, credentials: this.credentials, feed: this.feed, backoff: config.retry }, signal),
    };
  }

  /** `teleboot-agent once`: bootstrap and return the final status. */
  async once(signal?: AbortSignal): Promise<AgentStatus> {
    await this.start(signal);
    const controller = new AbortController();
    const stop = () => controller.abort();
    signal?.addEventListener('abort', stop, { once: true });
    let watching: Promise<void> | undefined;
    try {
      if (!desiredFrom(await this.initialAssignment(controller.signal)))
        watching = this.supervisor.run([this.watchDuty()], controller.signal);
      await this.converge(await this.waitForAssignment(controller.signal), controller.signal);
      return this.status;
    } finally {
      controller.abort();
      signal?.removeEventListener('abort', stop);
      await watching;
    }
  }

  /** `teleboot-agent run`: bootstrap, then the duties until aborted. */
  async run(signal: AbortSignal): Promise<void> {
    await this.start(signal);
    await this.initialAssignment(signal);
    const duties: Duty[] = [
      this.watchDuty(),
      { name: 'convergence', run: (s) => this.convergence.run(s) },
      { name: 'heartbeat', run: (s) => this.heartbeat(s) },
      { name: 'renewal', run: (s) => this.credentials.renewWhenDue(s) },
    ];
    const publisher = this.newPublisher(signal);
    if (publisher) duties.push({ name: 'publisher', run: (s) => publisher.run(s) });
    await this.supervisor.run(duties, signal);
    // A clean stop (systemd's SIGTERM, the instance shutting down): the control server counts the host offline at once.
    if (signal.aborted) await this.reporter.leave();
  }

  /** Duty: a report at every heartbeat interval, which also notices Teleport going down or coming back. */
  private async heartbeat(signal: AbortSignal): Promise<void> {
    for (;;) {
      await sleep(this.reporter.heartbeatMs, signal);
      await this.convergence.refreshTeleportHealth();
      await this.convergence.checkDrift();
      await this.reporter.report(signal);
    }
  }

  /** Publishes while this instance is a ready auth server; its state goes into every report. */
  private newPublisher(signal: AbortSignal): Publisher | undefined {
    if (!this.deps.parameters) return undefined;
    const { config } = this.deps;
    this.publisher = new Publisher({
      config,
      log: this.deps.log.child({ component: 'publisher' }),
      control: this.deps.control,
      writer: this.deps.parameters(config.aws.region ?? this.credentials.instance.region),
      reader: this.secretSource,
      instanceId: this.instanceId,
      target: () => {
        const desired = this.feed.desired();
        const status = this.convergence.status;
        if (!desired?.assignment.roles.includes('auth') || !status.teleportReady || status.appliedGeneration !== desired.generation)
          return undefined;
        return { clusterName: desired.cluster.clusterName, ssmPrefix: desired.cluster.ssmPrefix, leaf: leafTrustOf(desired.cluster) };
      },
      onChange: () => this.reportSoon(signal, 'the publisher changed'),
    });
    return this.publisher;
  }
}
