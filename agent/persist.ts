// Retrying with backoff, logging what the agent waits for.
import { retry, type BackoffOptions } from '../contract/backoff';
import { describeError, type Logger } from '../contract/log';

export interface PersistOptions {
  /** Errors that retrying cannot help: thrown at once. */
  isPermanent?: (err: unknown) => boolean;
  /** Told of each failure before the wait (progress in the status). */
  onWait?: (err: unknown) => void;
}

export type Persist = <T>(what: string, work: () => Promise<T>, signal?: AbortSignal, opts?: PersistOptions) => Promise<T>;

/** Retries `work` with backoff, logging what it waits for; stops only on abort or a permanent error. */
export function persistWith(log: Logger, backoff: Pick<BackoffOptions, 'initialMs' | 'maxMs'>): Persist {
  return (what, work, signal, opts = {}) =>
    retry(work, {
      ...backoff,
      signal,
      isPermanent: opts.isPermanent,
      onRetry: (err, attempt, delayMs) => {
        log.warn({ attempt, retryInMs: delayMs, err: describeError(err) }, `waiting for ${what}`);
        opts.onWait?.(err);
      },
    });
}
