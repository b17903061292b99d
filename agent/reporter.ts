// Status reports to the control server, one at a time so that a later
// report always carries a later status. Each answer carries the desired
// generation: an agent behind it fetches the assignment, so a change whose
// watch event was lost reaches it at the next heartbeat.
import { describeError, type Logger } from '../contract/log';
import type { AgentState, HostFacts } from '../contract/model';
import { VERSION } from '../contract/version';
import type { AssignmentFeed } from './assignment-feed';
import type { ControlClient } from './control-client';
import type { Credentials } from './credentials';
import type { FileDrift } from './drift';

/** How long a clean stop waits for the control server to take the last report (systemd waits 90 s before SIGKILL). */
const LEAVE_TIMEOUT_MS = 2000;

export interface AgentStatus {
  state: AgentState;
  appliedGeneration: number;
  teleportReady: boolean;
  teleportUnitState: string;
  message: string;
  /** Proxies: when the certificate written for Teleport expires (unix ms). */
  certificateExpiresAt?: number;
  /** When Teleport is not ready: its last log lines, secrets masked. */
  logTail?: string[];
  /** The Teleport version the host runs (teleport-version.ts); absent when unknown. */
  teleportVersion?: string;
}

export interface ReporterDeps {
  log: Logger;
  control: ControlClient;
  credentials: Credentials;
  feed: AssignmentFeed;
  /** The host facts collected last; never waits for a collection. */
  facts: () => Promise<HostFacts | null>;
  /** Collects the facts anew when due; true when this gave the first ones. None: facts are not collected. */
  refreshFacts?: () => Promise<boolean>;
  /** Called once, after the report that carries the first host facts: the boot's last step. */
  bootOver?: () => void;
  status: () => AgentStatus;
  /** Files the agent wrote that were changed by hand since. */
  drift?: () => FileDrift[];
  /** True while another part (the publisher, a failing duty) has a problem: a ready instance reports degraded. */
  degraded: () => boolean;
  /** What the other parts add to the message (their state, their problems). */
  notes: () => Array<string | undefined>;
  heartbeatMs: number;
}

export class Reporter {
  heartbeatMs: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ReporterDeps) {
    this.heartbeatMs = deps.heartbeatMs;
  }

  /** The control server sets the heartbeat interval (it judges an instance offline after three missed). */
  adoptHeartbeat(seconds: number): void {
    if (seconds > 0) this.heartbeatMs = seconds * 1000;
  }

  /** Sends the status as it is when its turn comes, after any report before it. */
  report(signal?: AbortSignal): Promise<void> {
    const next = this.queue.catch(() => {}).then(() => this.send(signal));
    this.queue = next;
    return next;
  }

  /**
   * The last report as the agent stops cleanly (like `consul leave`): state
   * "stopped", so that the control server counts the host offline at once
   * rather than after three missed heartbeats. Bounded by `timeoutMs`: a
   * shutdown is never held up by an unreachable control server.
   */
  async leave(timeoutMs = LEAVE_TIMEOUT_MS): Promise<boolean> {
    const signal = AbortSignal.timeout(timeoutMs);
    const next = this.queue.catch(() => {}).then(() => this.send(signal, 'stopped'));
    this.queue = next;
    const expired = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new Error(`no answer within ${timeoutMs} ms`)), { once: true }),
    );
    try {
      await Promise.race([next, expired]);
      return true;
    } catch (err) {
      this.deps.log.warn(
        { err: describeError(err), timeoutMs },
        'the control server was not told that this agent stops; it counts the host offline after three missed heartbeats',
      );
      return false;
    }
  }

  private async send(signal?: AbortSignal, final?: 'stopped'): Promise<void> {
    const { control, credentials } = this.deps;
    const facts = await this.deps.facts().catch(() => null);
    const status = final ? { ...this.deps.status(), state: final, message: 'the agent stopped' } : this.deps.status();
    const degraded = this.deps.degraded();
    const instanceId = credentials.instance.instanceId;
    const res = await credentials.call(
      'the control server (status report)',
      () =>
        control.reportStatus({
          instanceId,
          // Never above the state last given: after enrolling again, the record (and its generations) may be new.
          appliedGeneration: Math.min(status.appliedGeneration, Math.max(0, this.deps.feed.generation)),
          state: degraded && status.state === 'ready' ? 'degraded' : status.state,
          teleportUnitState: status.teleportUnitState,
          teleportReady: status.teleportReady,
          message: [status.message, ...this.deps.notes()].filter(Boolean).join('; ').slice(0, 4096),
          facts,
          agentVersion: VERSION,
          proxyCertificateExpiresUnixMs: status.certificateExpiresAt ?? 0,
          logTail: status.logTail ?? [],
          drift: this.deps.drift?.() ?? [],
          teleportVersion: status.teleportVersion ?? '',
        }),
      signal,
    );
    if (final) return;
    this.adoptHeartbeat(res.heartbeatIntervalSeconds);
    if (status.state !== 'converging') this.refreshFactsSoon(signal);
    await this.catchUp(Number(res.desiredGeneration), signal);
  }

  /**
   * Host facts are collected after a report, once the boot is over (a boot
   * never waits for them), and go out with the next one; the first facts
   * in a report of their own. Scheduled after this turn of the event loop:
   * `once` has exited by then and collects none.
   */
  private refreshFactsSoon(signal?: AbortSignal): void {
    const refresh = this.deps.refreshFacts;
    if (!refresh) return;
    setImmediate(() => {
      refresh()
        .then(async (first) => {
          if (!first || signal?.aborted) return;
          try {
            await this.report(signal);
          } finally {
            this.deps.bootOver?.();
          }
        })
        .catch((err: unknown) => this.deps.log.debug({ err: describeError(err) }, 'host facts not collected; the next report tries again'));
    });
  }

  /** Agents catch up from state, not only from events. */
  private async catchUp(desiredGeneration: number, signal?: AbortSignal): Promise<void> {
    const { feed, credentials, control, log } = this.deps;
    if (desiredGeneration === feed.generation) return;
    log.info(
      { desiredGeneration, known: feed.generation },
      'the control server holds a generation this agent was not told of; fetching it',
    );
    const id = credentials.instance.instanceId;
    feed.set(await credentials.call('the assignment', () => control.getAssignment(id), signal));
  }

  /**
   * Reports at every heartbeat interval until stopped (`once`, while a long
   * step runs). stop() waits for a report in flight, so that the report that
   * follows it arrives after it.
   */
  reportEachHeartbeat(signal?: AbortSignal): { stop(): Promise<void> } {
    let inFlight: Promise<void> | undefined;
    const timer = setInterval(() => {
      inFlight ??= this.report(signal)
        .catch((err) => this.deps.log.warn({ err: describeError(err) }, 'progress report failed'))
        .finally(() => (inFlight = undefined));
    }, this.heartbeatMs);
    return {
      stop: async () => {
        clearInterval(timer);
        await inFlight;
      },
    };
  }
}
