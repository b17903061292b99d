// Whether PostgreSQL answers, for /readyz: one connection of its own, kept
// open, outside the pool (a pool busy with long queries neither delays the
// answer nor makes it lie), on which `SELECT 1` runs every second. Opening a
// connection per check made /readyz flap under load, where connecting alone
// (a backend forked, a password hashed) can take longer than its timeout, and
// where the server's connection slots may all be taken while the database
// serves. The connection is opened again only after an error. Not ready while
// it is lost or being opened again, or when the probe fails or gets no
// answer in time; ready again once a probe is answered.
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, type ClientConfig } from 'pg';

const PROBE_EVERY_MS = 1_000;
/** The probe's answer is waited for this long (the server's statement_timeout and the client's own). */
const PROBE_TIMEOUT_MS = 5_000;
/** Opening the connection again: slow on a loaded host, and not ready meanwhile anyway. */
const CONNECT_TIMEOUT_MS = 30_000;

export class PgReadiness {
  private client: Client | undefined;
  private problem: string | undefined = 'the connection for readiness checks is being opened';
  private started: Promise<void> | undefined;
  private probing = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly config: ClientConfig) {}

  /**
   * Throws, saying why, when the last probe failed or the connection is
   * lost. The first call starts the probes and waits for the first answer
   * (for the probe's timeout at most); later calls answer at once.
   */
  async check(): Promise<void> {
    if (!this.started) {
      this.started = this.probe();
      await Promise.race([this.started, sleep(PROBE_TIMEOUT_MS, undefined, { ref: false })]);
    }
    if (this.problem) throw new Error(this.problem);
  }

  private async probe(): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    clearTimeout(this.timer);
    let client = this.client;
    try {
      client ??= await this.connect();
      await client.query('SELECT 1');
      this.problem = undefined;
    } catch (err) {
      if (client) this.lose(client, err as Error);
      else this.problem = (err as Error).message;
    } finally {
      this.probing = false;
      if (!this.closed) this.timer = setTimeout(() => void this.probe(), PROBE_EVERY_MS).unref();
    }
  }

  private async connect(): Promise<Client> {
    const client = new Client({
      ...this.config,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: PROBE_TIMEOUT_MS,
      query_timeout: PROBE_TIMEOUT_MS,
    });
    // The database going away between probes: not ready at once, and opened again right away.
    client.on('error', (err) => this.lose(client, err, true));
    client.on('end', () => this.lose(client, new Error('the connection ended'), true));
    try {
      await client.connect();
    } catch (err) {
      void client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    return client;
  }

  /** Ends a failed connection (without waiting: a stalled server may never answer) and says why it failed. */
  private lose(client: Client, err: Error, betweenProbes = false): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.problem = err.message === 'Query read timeout' ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s` : err.message;
    void client.end().catch(() => undefined);
    if (betweenProbes && !this.probing && !this.closed) void this.probe();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.client) this.lose(this.client, new Error('closed'));
  }
}
