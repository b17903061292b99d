// Runs the agent's long-lived duties (following changes, convergence,
// heartbeats, renewal, the publisher) side by side. A duty that throws is
// restarted with backoff and shows in the status the agent reports until it
// has run cleanly for a while: no duty ends unseen in a floating promise.
import { backoffDelay, sleep, type BackoffOptions } from '../contract/backoff';
import { describeError, type Logger } from '../contract/log';

export interface Duty {
  name: string;
  /** Runs until `signal` aborts; throwing means it failed and is restarted. */
  run(signal: AbortSignal): Promise<void>;
}

export interface DutyStatus {
  name: string;
  /** running; restarting (waiting out its backoff); stopped (returned, or the supervisor stopped). */
  state: 'running' | 'restarting' | 'stopped';
  /** Restarts since the agent started. */
  restarts: number;
  /** Failures in a row; 0 once the duty has run for `stableMs` without failing. */
  failing: number;
  lastError?: string;
}

export interface SupervisorOptions {
  log: Logger;
  backoff: Pick<BackoffOptions, 'initialMs' | 'maxMs'>;
  /** A restarted duty that runs this long without failing counts as recovered (default: backoff.maxMs). */
  stableMs?: number;
  /** Told whenever a duty's status changes (the agent reports it), with the signal the duties run under. */
  onChange?: (signal: AbortSignal) => void;
}

export class Supervisor {
  private readonly duties = new Map<string, DutyStatus>();

  constructor(private readonly opts: SupervisorOptions) {}

  /** Every duty's status, in the order they were started. */
  status(): DutyStatus[] {
    return [...this.duties.values()].map((d) => ({ ...d }));
  }

  /** One line on the duties that are failing, for the status message; undefined when none is. */
  problem(): string | undefined {
    const failing = [...this.duties.values()].filter((d) => d.failing > 0);
    if (failing.length === 0) return undefined;
    return failing.map((d) => `duty ${d.name} failed ${d.failing} time(s) in a row, restarting: ${d.lastError}`).join('; ');
  }

  /** Runs every duty until `signal` aborts; resolves once all have ended. */
  async run(duties: Duty[], signal: AbortSignal): Promise<void> {
    await Promise.all(duties.map((duty) => this.keep(duty, signal)));
  }

  private async keep(duty: Duty, signal: AbortSignal): Promise<void> {
    const status: DutyStatus = { name: duty.name, state: 'running', restarts: 0, failing: 0 };
    this.duties.set(duty.name, status);
    const changed = () => this.opts.onChange?.(signal);
    const stableMs = this.opts.stableMs ?? this.opts.backoff.maxMs;
    while (!signal.aborted) {
      status.state = 'running';
      // A duty that keeps running after a failure has recovered: its problem leaves the status.
      const recovered = setTimeout(() => {
        if (status.failing === 0) return;
        status.failing = 0;
        this.opts.log.info({ duty: duty.name }, 'duty recovered');
        changed();
      }, stableMs);
      recovered.unref();
      try {
        await duty.run(signal);
        if (!signal.aborted) this.opts.log.info({ duty: duty.name }, 'duty finished');
        break;
      } catch (err) {
        if (signal.aborted) break;
        status.failing++;
        status.restarts++;
        status.lastError = describeError(err).slice(0, 300);
        status.state = 'restarting';
        const delay = backoffDelay(status.failing, this.opts.backoff);
        this.opts.log.error(
          { duty: duty.name, err: status.lastError, restarts: status.restarts, retryInMs: delay },
          'duty failed; restarting',
        );
        changed();
        await sleep(delay, signal).catch(() => {});
      } finally {
        clearTimeout(recovered);
      }
    }
    status.state = 'stopped';
  }
}
