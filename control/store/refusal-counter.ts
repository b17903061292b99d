// Refused requests and calls are counted per actor, action, reason and
// minute: the first of a window is written at once with its details; later
// ones are counted in memory and added to its row within a second, so a
// flood of refusals costs no write each and cannot grow the audit log.
import type { Sql, StorageEngine } from './engine';
import type { Records } from './records';

/** Refusals are counted per actor, action and reason in windows of this length. */
export const REFUSAL_WINDOW_MS = 60_000;
/** How soon refusals counted in memory reach the store. */
const REFUSAL_FLUSH_MS = 1000;
/** Windows counted in memory at most; beyond, each refusal is written at once. */
const MAX_PENDING_REFUSALS = 10_000;

export class RefusalCounter {
  private readonly pending = new Map<string, { window: number; count: number; lastAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly engine: StorageEngine,
    private readonly records: (sql: Sql) => Records,
  ) {}

  async record(actor: string, action: string, target: string, details: Record<string, unknown> & { reason: string }, now: number) {
    const window = Math.floor(now / REFUSAL_WINDOW_MS);
    const key = JSON.stringify([actor, action, details.reason, window]);
    const pending = this.pending.get(key);
    if (pending) {
      pending.count++;
      pending.lastAt = now;
      if (!this.stopped) this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), REFUSAL_FLUSH_MS).unref();
      return;
    }
    // The first one is written at once (another replica may have written it already);
    // those arriving before it is written are written the same way, each adding to the count.
    await this.engine.transaction((sql) => this.records(sql).auditWindow(key, actor, action, target, details, now));
    if (this.pending.size < MAX_PENDING_REFUSALS && !this.pending.has(key)) this.pending.set(key, { window, count: 0, lastAt: now });
  }

  /** Adds the refusals counted in memory to their rows; forgets the windows that have passed. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const due = [...this.pending].filter(([, p]) => p.count > 0).map(([key, p]) => ({ key, count: p.count, lastAt: p.lastAt }));
    const current = Math.floor(Date.now() / REFUSAL_WINDOW_MS);
    for (const [key, p] of this.pending) {
      p.count = 0;
      if (p.window < current) this.pending.delete(key);
    }
    if (!due.length) return;
    await this.engine.transaction(async (sql) => {
      const r = this.records(sql);
      for (const d of due) await r.addToWindow(d.key, d.count, d.lastAt);
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
