// Keeps the audit log bounded: at start and then periodically, events older
// than the retention or beyond the row cap are removed (and the removal is
// itself an audit event). A failed prune is logged and tried again later.
import { describeError, type Logger } from '../contract/log';
import type { AuditRetention, Store } from './store/store';

export interface RunningAuditRetention {
  /** Resolves with how many events the first prune removed. */
  first: Promise<number>;
  stop(): void;
}

export function startAuditRetention(
  store: Store,
  retention: AuditRetention & { pruneIntervalMs: number },
  log: Logger,
  now: () => number = Date.now,
): RunningAuditRetention {
  const prune = async (): Promise<number> => {
    try {
      const deleted = await store.pruneAudit(retention, now());
      if (deleted > 0) log.info({ deleted, maxAgeMs: retention.maxAgeMs, maxRows: retention.maxRows }, 'old audit events removed');
      return deleted;
    } catch (err) {
      log.error({ err: describeError(err) }, 'audit retention: removing old events failed; will try again');
      return 0;
    }
  };
  const first = prune();
  const timer = setInterval(() => void prune(), retention.pruneIntervalMs);
  timer.unref();
  return { first, stop: () => clearInterval(timer) };
}
