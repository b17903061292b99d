// Whether the store can be read, for /readyz. The check reads every page
// (SQLite's quick_check), so its outcome is kept for a while: at least a
// second, and twenty times as long as the check took, so that checking
// takes at most a twentieth of a core however large the database grows.
// Not longer: a PostgreSQL that went away must turn /readyz 503 at once (a
// load balancer then stops sending new connections), not after seconds of
// 200s while every write is refused.
import type { Store } from './store';

interface ReadinessLog {
  error(details: object, message: string): void;
  info(message: string): void;
}

export const READINESS_CHECK_EVERY_MS = 1_000;

/** A function that resolves to what is wrong with the store, or undefined when it can be read. */
export function storeReadiness(
  store: Pick<Store, 'checkReadable'>,
  log: ReadinessLog,
  everyMs = READINESS_CHECK_EVERY_MS,
): () => Promise<string | undefined> {
  let nextAt = -Infinity;
  let last: Promise<string | undefined> = Promise.resolve(undefined);
  let lastProblem: string | undefined;
  return () => {
    const started = Date.now();
    if (started < nextAt) return last;
    nextAt = Infinity; // until this check ends: one at a time
    last = store.checkReadable().then(
      () => undefined,
      (err: unknown) => (err as Error).message,
    );
    void last.then(() => (nextAt = Date.now() + Math.max(everyMs, 20 * (Date.now() - started))));
    void last.then((problem) => {
      if (problem && problem !== lastProblem)
        log.error({ problem }, 'the store cannot be read: not ready; restore the data directory from a backup');
      else if (!problem && lastProblem) log.info('the store can be read again: ready');
      lastProblem = problem;
    });
    return last;
  };
}
