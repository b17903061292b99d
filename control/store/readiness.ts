// Whether the store can be read, for /readyz. The check reads every page
// (SQLite's quick_check), so its outcome is kept for a few seconds: probes
// come often, and damage that appears while serving shows within that time.
import type { Store } from './store';

interface ReadinessLog {
  error(details: object, message: string): void;
  info(message: string): void;
}

export const READINESS_CHECK_EVERY_MS = 5_000;

/** A function that resolves to what is wrong with the store, or undefined when it can be read. */
export function storeReadiness(store: Store, log: ReadinessLog, everyMs = READINESS_CHECK_EVERY_MS): () => Promise<string | undefined> {
  let checkedAt = -Infinity;
  let last: Promise<string | undefined> = Promise.resolve(undefined);
  let lastProblem: string | undefined;
  return () => {
    const now = Date.now();
    if (now - checkedAt < everyMs) return last;
    checkedAt = now;
    last = store.checkReadable().then(
      () => undefined,
      (err: unknown) => (err as Error).message,
    );
    void last.then((problem) => {
      if (problem && problem !== lastProblem)
        log.error({ problem }, 'the store cannot be read: not ready; restore the data directory from a backup');
      else if (!problem && lastProblem) log.info('the store can be read again: ready');
      lastProblem = problem;
    });
    return last;
  };
}
