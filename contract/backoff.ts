// Retrying with exponential backoff and jitter, so that a fleet booting
// at once does not hammer a recovering service in lockstep.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Gives up after this many attempts; unlimited when absent. */
  maxAttempts?: number;
  signal?: AbortSignal;
  /** Told before each wait: what failed and how long until the next try. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Errors for which retrying cannot help end the loop at once. */
  isPermanent?: (err: unknown) => boolean;
}

/** Delay before retry `attempt` (1-based): "equal jitter", random in [c/2, c] with c = min(max, initial*2^(attempt-1)). */
export function backoffDelay(attempt: number, opts: Pick<BackoffOptions, 'initialMs' | 'maxMs'>, random = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export async function retry<T>(work: (attempt: number) => Promise<T>, opts: BackoffOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      return await work(attempt);
    } catch (err) {
      if (opts.isPermanent?.(err) || (opts.maxAttempts !== undefined && attempt >= opts.maxAttempts)) throw err;
      const delay = backoffDelay(attempt, opts);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, opts.signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The reason an AbortSignal was aborted with, as an Error (abort() without a reason gives a DOMException). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}
