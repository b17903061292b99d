// Whether the store can be read, for /readyz. SQLite's check reads every
// page (quick_check), so its outcome is kept for a while: at least a few
// seconds, and twenty times as long as the check took, so that checking
// takes at most a twentieth of a core however large the database grows.
// PostgreSQL's is what the readiness connection's latest probe found (it
// probes every second, and notices a lost connection at once:
// postgres-readiness.ts), so it is asked at every request: a database that
// went away turns /readyz 503 at once, so that a load balancer stops sending
// new connections, rather than after seconds of 200s while every write is refused.
import type { Store } from './store';

interface ReadinessLog {
  error(details: object, message: string): void;
  info(message: string): void;
}

/** How often the store is checked again: at least every `everyMs`, and with `scalesWithCost` twenty times as long as the check took. */
export interface ReadinessPace {
  everyMs: number;
  scalesWithCost: boolean;
}

/** SQLite: the check reads every page. */
export const SCANNING_CHECK: ReadinessPace = { everyMs: 5_000, scalesWithCost: true };
/** PostgreSQL: the check reads the state a connection of its own keeps. */
export const KEPT_CHECK: ReadinessPace = { everyMs: 0, scalesWithCost: false };

/** A function that resolves to what is wrong with the store, or undefined when it can be read. */
export function storeReadiness(
  store: Pick<Store, 'checkReadable'>,
  log: ReadinessLog,
  { everyMs, scalesWithCost }: ReadinessPace = SCANNING_CHECK,
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
    void last.then(() => (nextAt = Date.now() + (scalesWithCost ? Math.max(everyMs, 20 * (Date.now() - started)) : everyMs)));
    void last.then((problem) => {
      if (problem && problem !== lastProblem)
        log.error(
          { problem },
          scalesWithCost
            ? 'the store cannot be read: not ready; restore the data directory from a backup'
            : 'the database cannot be read: not ready until it can (check that it runs and this host reaches it)',
        );
      else if (!problem && lastProblem) log.info('the store can be read again: ready');
      lastProblem = problem;
    });
    return last;
  };
}
