// The change feed between replicas on one PostgreSQL database. A write that
// changes what an instance should run adds a row to `changes` (a growing
// sequence number) and a NOTIFY, in its own transaction, so both commit or
// neither does. Each replica LISTENs on a connection of its own; at each
// notification, and after every reconnection, it reads the rows after the
// last it saw (a catch-up by sequence), so a change made while it was cut
// off still reaches it. Its own changes it already told its agents of.
import { randomUUID } from 'node:crypto';
import { Client, type ClientConfig } from 'pg';
import type { Sql } from './engine';

const CHANNEL = 'teleboot_changes';
/**
 * Sequence numbers this far below the highest seen are still looked for: a
 * transaction may commit after one with a higher sequence number.
 */
const LOOKBACK = 1000;
/** Rows older than this are removed: a replica cut off longer than this has re-read every agent's state anyway. */
const KEEP_MS = 3_600_000;
const PRUNE_EVERY_MS = 600_000;
const RECONNECT_MS = { first: 200, max: 5_000 };

/** Instance ids, or "*" for every assigned instance (a settings change). */
export type ChangeListener = (instanceIds: string[]) => void;

export interface ChangeFeed {
  /** Records a change in the caller's transaction. */
  record(sql: Sql, instanceIds: string[], now: number): Promise<void>;
  /** Changes other replicas commit, as they commit; returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}

export class PgChangeFeed implements ChangeFeed {
  /** This replica's writes carry it, so that it skips them when they come back. */
  readonly origin = randomUUID();
  private readonly listeners = new Set<ChangeListener>();
  private client: Client | undefined;
  private started = false;
  private closed = false;
  private lastSeq = 0;
  /**
   * Sequence numbers below lastSeq (within LOOKBACK) not seen yet: a
   * transaction not committed when a later one was read, or one rolled back.
   * A read asks for these and the rows after lastSeq, not the whole window again.
   */
  private readonly missing = new Set<number>();
  private reading: Promise<void> | undefined;
  private readAgain = false;
  private reconnectMs = RECONNECT_MS.first;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Connections whose loss was handled ("error" and "end" may both come). */
  private readonly gone = new WeakSet<Client>();

  constructor(
    private readonly config: ClientConfig,
    private readonly onError: (err: Error, what: string) => void = () => undefined,
  ) {}

  async record(sql: Sql, instanceIds: string[], now: number): Promise<void> {
    for (const id of new Set(instanceIds))
      await sql.run('INSERT INTO changes (origin, instance_id, at) VALUES (?, ?, ?)', [this.origin, id, now]);
    if (instanceIds.length) await sql.run(`SELECT pg_notify('${CHANNEL}', ?)`, [this.origin]);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    if (!this.started) {
      this.started = true;
      void this.connect(true);
      this.every(PRUNE_EVERY_MS, () => this.prune());
    }
    return () => this.listeners.delete(listener);
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const timer = setInterval(() => void fn().catch((err: Error) => this.onError(err, 'pruning the change feed')), ms).unref();
    this.timers.add(timer);
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms).unref();
    this.timers.add(timer);
  }

  private async connect(first: boolean): Promise<void> {
    if (this.closed) return;
    const client = new Client({ ...this.config, application_name: 'teleboot-control-changes' });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('the connection ended')));
    client.on('notification', () => this.catchUp());
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      // From now on at first start (agents read their state when they connect); after a reconnection, from where it was.
      if (first)
        this.lastSeq = Number((await client.query<{ seq: number }>('SELECT COALESCE(MAX(seq), 0) AS seq FROM changes')).rows[0].seq);
      this.client = client;
      this.reconnectMs = RECONNECT_MS.first;
      if (!first) this.catchUp();
    } catch (err) {
      this.lost(client, err as Error, first);
    }
  }

  private lost(client: Client, err: Error, first = false): void {
    if (this.gone.has(client)) return;
    this.gone.add(client);
    if (this.client === client) this.client = undefined;
    void client.end().catch(() => undefined);
    if (this.closed) return;
    this.onError(err, 'the change feed lost its connection; reconnecting');
    this.later(this.reconnectMs, () => void this.connect(first));
    this.reconnectMs = Math.min(this.reconnectMs * 2, RECONNECT_MS.max);
  }

  /** Reads the rows after the last seen, one read at a time (another is run after it when asked meanwhile). */
  private catchUp(): void {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = this.read()
      .catch((err: Error) => this.onError(err, 'reading the change feed'))
      .finally(() => {
        this.reading = undefined;
        if (this.readAgain) {
          this.readAgain = false;
          this.catchUp();
        }
      });
  }

  private async read(): Promise<void> {
    const client = this.client;
    if (!client) return;
    const rows = (
      await client.query<{ seq: number; origin: string; instance_id: string }>(
        'SELECT seq, origin, instance_id FROM changes WHERE seq > $1 OR seq = ANY($2::bigint[]) ORDER BY seq',
        [this.lastSeq, [...this.missing]],
      )
    ).rows;
    const ids: string[] = [];
    for (const row of rows) {
      const seq = Number(row.seq);
      if (seq > this.lastSeq) {
        for (let gap = Math.max(this.lastSeq + 1, seq - LOOKBACK); gap < seq; gap++) this.missing.add(gap);
        this.lastSeq = seq;
      } else if (!this.missing.delete(seq)) continue;
      if (row.origin !== this.origin) ids.push(row.instance_id);
    }
    for (const seq of this.missing) if (seq <= this.lastSeq - LOOKBACK) this.missing.delete(seq);
    if (ids.length) for (const listener of this.listeners) listener(ids);
  }

  private async prune(): Promise<void> {
    await this.client?.query('DELETE FROM changes WHERE at < $1', [Date.now() - KEEP_MS]);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const client = this.client;
    this.client = undefined;
    if (client) {
      this.gone.add(client);
      await client.end().catch(() => undefined);
    }
  }
}
