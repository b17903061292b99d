// The store on PostgreSQL, for several control replicas on one database.
// The rules are RecordStore's; this file is the storage port on a pool of
// connections: reads on any connection, each transaction on one connection
// (READ COMMITTED, with advisory locks where writers decide on the same
// thing), run again when PostgreSQL reports a conflict with a concurrent
// transaction. Migrations run under an advisory lock, so that
// replicas starting together migrate once.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, types, type ClientConfig, type PoolClient, type PoolConfig } from 'pg';
import type { Sql, SqlDialect, StorageEngine, TransactionOptions } from './engine';
import { healthCountingInstall, INSTALLED_DEFINITION_SQL } from './health-counting';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from './postgres-migrations';
import { PgChangeFeed } from './postgres-changes';
import { PgReadiness } from './postgres-readiness';
import { StoreUnavailableError } from '../errors';
import { RecordStore } from './record-store';
import { pgTarget, type PgTlsMode } from './postgres-target';

export { PG_TLS_MODES, pgTarget, type PgTlsMode } from './postgres-target';

export const PG_DIALECT: SqlDialect = {
  jsonNumber: (column, key) => `((${column}::json ->> '${key}')::double precision)`,
  lockSql: 'SELECT pg_advisory_xact_lock(hashtext(?))',
  // The start of the statement: one value for the whole statement, fresh at every retry.
  nowMs: 'CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)',
  instanceRowVersions: true,
};

export interface PgStoreOptions {
  /** postgres://user@host:port/database (no password: give `password`). */
  url: string;
  password?: string;
  tls?: { mode: PgTlsMode; caFile?: string };
  /** Connections at most (default 10). */
  poolSize?: number;
  /** A connection failed (the database restarted); the pool and the change feed reconnect. */
  onConnectionError?: (err: Error, what: string) => void;
}

/** Advisory lock key of the migrations: one migrating replica at a time ("teleboot" in ASCII). */
const MIGRATION_LOCK = 0x74656c65626f6f74n;
/** Attempts of a transaction that conflicts with concurrent ones. */
const MAX_ATTEMPTS = 10;
/**
 * Errors of a database that cannot be reached (refused or lost connections,
 * a server shutting down or starting): a StoreUnavailableError to callers.
 */
function unreachable(err: unknown): StoreUnavailableError | undefined {
  const { code, message } = err as { code?: string; message?: string };
  const lost =
    (code !== undefined &&
      (/^(08|57P0)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code))) ||
    /Connection terminated|connection (timeout|is closed)|Client has encountered a connection error/i.test(message ?? '');
  if (lost) return new StoreUnavailableError(`the database cannot be reached (${message ?? code}); retry`);
  // The pool's wait for a free connection ran out (pg-pool's message): every
  // connection is busy, a burst (hundreds of enrollments at once) or a slow
  // database. Callers retry later, as for an outage; never an internal error.
  if (/timeout exceeded when trying to connect/i.test(message ?? '')) {
    return new StoreUnavailableError('the database is busy: every connection of this replica is in use; retry');
  }
  return undefined;
}

async function reachable<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw unreachable(err) ?? err;
  }
}

/**
 * serialization_failure, deadlock_detected, and unique_violation (two
 * transactions inserting the same new row; the one run again finds it):
 * the transaction can be run again.
 */
const RETRYABLE = new Set(['40001', '40P01', '23505']);

// BIGINT (int8) columns and COUNT(*) as numbers: every stored number (unix
// ms, generations, fencing numbers) is far below 2^53.
const INT8_OID = 20;
const typeParsers = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
    oid === INT8_OID ? (v: string) => Number(v) : (types.getTypeParser(oid, format) as unknown)) as typeof types.getTypeParser,
};

/** "?" placeholders (the SQL both databases share) as PostgreSQL's $1, $2, …; cached per text. */
const numbered = new Map<string, string>();
function toPg(text: string): string {
  let converted = numbered.get(text);
  if (converted === undefined) {
    let n = 0;
    converted = text.replace(/\?/g, () => `$${++n}`);
    numbered.set(text, converted);
  }
  return converted;
}

interface Queryable {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
  query(config: { name: string; text: string; values: unknown[]; rowMode: 'array' }): Promise<{ rows: unknown[][] }>;
}

/**
 * A named statement per SQL text of Sql.arrays (the big reads that run
 * often): each connection parses and plans it once, not at every call.
 * Names are process-wide, so that one name never stands for two texts on a connection.
 */
const prepared = new Map<string, { name: string; text: string }>();
function preparedOf(text: string): { name: string; text: string } {
  let statement = prepared.get(text);
  if (!statement) prepared.set(text, (statement = { name: `teleboot_arrays_${prepared.size}`, text: toPg(text) }));
  return statement;
}

function sqlOn(target: Queryable): Sql {
  const query = (text: string, params: readonly unknown[] = []) => target.query(toPg(text), [...params]);
  return {
    all: async <R>(text: string, params?: readonly unknown[]) => (await query(text, params)).rows as R[],
    get: async <R>(text: string, params?: readonly unknown[]) => (await query(text, params)).rows[0] as R | undefined,
    run: async (text: string, params?: readonly unknown[]) => (await query(text, params)).rowCount ?? 0,
    arrays: async (text: string, params: readonly unknown[] = []) =>
      (await target.query({ ...preparedOf(text), values: [...params], rowMode: 'array' })).rows,
  };
}

/** How the store connects (also the backup's connection: backup-postgres.ts). */
export function connectionConfig(options: Pick<PgStoreOptions, 'url' | 'password' | 'tls'>): ClientConfig {
  return {
    ...pgTarget(options.url),
    // Absent: pg reads PGPASSWORD from the environment.
    password: options.password,
    ssl: tlsConfig(options.tls),
    types: typeParsers,
    // A database that does not answer is reported, not waited for.
    connectionTimeoutMillis: 5_000,
  };
}

/** node-postgres's `ssl` for store.tls. */
function tlsConfig(tls: PgStoreOptions['tls']): PoolConfig['ssl'] {
  if (!tls || tls.mode === 'disable') return false;
  if (tls.mode === 'require') return { rejectUnauthorized: false };
  return { rejectUnauthorized: true, ...(tls.caFile ? { ca: readFileSync(tls.caFile, 'utf8') } : {}) };
}

interface Grouped<T> {
  fn: (sql: Sql) => Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/** A checked-out connection lost between statements fails its next statement; its "error" event must not end the process. */
const ignoreWhileCheckedOut = (): void => undefined;

export class PgEngine implements StorageEngine {
  readonly kind = 'postgres';
  readonly dialect = PG_DIALECT;
  private readonly onPool: Sql;
  private readonly readiness: PgReadiness;

  constructor(
    readonly pool: Pool,
    readonly changes: PgChangeFeed,
    /** Where the pool connects, for the readiness check's own connection. */
    connection: ClientConfig,
  ) {
    this.onPool = sqlOn(pool);
    this.readiness = new PgReadiness(connection);
  }

  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return reachable(fn(this.onPool));
  }

  transaction<T>(fn: (sql: Sql) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return reachable(options.relaxed ? this.grouped(fn) : this.attempts(fn, options));
  }

  /** Relaxed transactions asked for on this turn of the event loop: they commit together. */
  private group: Array<Grouped<unknown>> = [];

  /**
   * Relaxed transactions (status reports: a thousand agents report at once
   * after a change) that come on one turn run in one transaction, one after
   * the other, and commit together: two round trips less each (BEGIN,
   * COMMIT). None is answered before the commit. When one fails, the group
   * is rolled back and each runs again alone, so a caller gets its own
   * result or error only.
   */
  private grouped<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.group.length === 0) setImmediate(() => void this.runGroup());
      this.group.push({ fn, resolve, reject } as Grouped<unknown>);
    });
  }

  private async runGroup(): Promise<void> {
    const group = this.group;
    this.group = [];
    const alone = (g: Grouped<unknown>) => this.attempts(g.fn, { relaxed: true }).then(g.resolve, g.reject);
    if (group.length === 1) return void (await alone(group[0]));
    let results: unknown[];
    try {
      results = await this.attempts(
        async (sql) => {
          const out: unknown[] = [];
          for (const g of group) out.push(await g.fn(sql));
          return out;
        },
        { relaxed: true },
      );
    } catch {
      await Promise.all(group.map(alone));
      return;
    }
    group.forEach((g, i) => g.resolve(results[i]));
  }

  private async attempts<T>(fn: (sql: Sql) => Promise<T>, options: TransactionOptions): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        // READ COMMITTED: writers that decide on the same thing take turns on
        // an advisory lock (Records.lock), and each statement sees what they committed.
        client.on('error', ignoreWhileCheckedOut);
        // Heartbeats: acknowledged before the WAL reaches the disk (a crash of the server can cost the latest of them).
        // One round trip for both statements: under load each one waits for the database to be scheduled.
        await client.query(options.relaxed ? 'BEGIN; SET LOCAL synchronous_commit = off' : 'BEGIN');
        const result = await fn(sqlOn(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        const code = (err as { code?: string }).code;
        if (attempt >= MAX_ATTEMPTS || !code || !RETRYABLE.has(code)) throw err;
      } finally {
        client.off('error', ignoreWhileCheckedOut);
        client.release(broken);
      }
      // Conflicting transactions wait different times before they run again.
      await sleep(Math.random() * 5 * attempt);
    }
  }

  async reclaim(table: string): Promise<void> {
    // Outside a transaction (VACUUM cannot run in one); `table` is one of the store's own names, never input.
    await this.pool.query(`VACUUM ${table}`);
  }

  async bytes(): Promise<number> {
    return Number((await this.onPool.get<{ n: number }>('SELECT pg_database_size(current_database()) AS n'))?.n ?? 0);
  }

  /** Its own connection, kept open (postgres-readiness.ts). */
  async checkReadable(): Promise<void> {
    try {
      await this.readiness.check();
    } catch (err) {
      throw new Error(`the store cannot be read: PostgreSQL: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.readiness.close();
    await this.changes.close();
    await this.pool.end();
  }
}

/** The health counting triggers of this program's rules (health-counting.ts), unless installed already. */
async function installHealthCounting(client: PoolClient): Promise<void> {
  const { definition, statements } = healthCountingInstall('postgres');
  const installed = async () => (await client.query<{ definition: string }>(INSTALLED_DEFINITION_SQL)).rows[0]?.definition === definition;
  if (await installed()) return;
  await client.query('BEGIN');
  try {
    // Writers wait until the triggers and the recount commit together (readers do not); another replica
    // installing at the same time waits here, then finds them installed.
    await client.query('LOCK TABLE instances IN SHARE ROW EXCLUSIVE MODE');
    if (!(await installed())) for (const statement of statements) await client.query(statement);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** Applies the migrations not applied yet, one replica at a time; refuses a schema newer than this program. */
async function migrate(client: PoolClient): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
    );
    const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    if (newest > PG_SCHEMA_VERSION)
      throw new Error(
        `the database's schema version is ${newest}, newer than this teleboot-control knows (${PG_SCHEMA_VERSION}): a newer release wrote it. ` +
          'Run that release on every replica',
      );
    for (const m of PG_MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          Date.now(),
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
  }
}

export class PgStore extends RecordStore {
  private constructor(private readonly pg: PgEngine) {
    super(pg);
  }

  /** Connects, migrates (under the advisory lock) and returns the store. */
  static async open(options: PgStoreOptions): Promise<PgStore> {
    const connection = connectionConfig(options);
    const pool = new Pool({ ...connection, max: options.poolSize ?? 10, application_name: 'teleboot-control' });
    // Without a listener an idle connection's error (the database restarting) would end the process.
    pool.on('error', (err) => options.onConnectionError?.(err, 'an idle connection failed; the pool replaces it'));
    try {
      const client = await pool.connect();
      try {
        await migrate(client);
        await installHealthCounting(client);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end();
      throw err;
    }
    const changes = new PgChangeFeed(connection, (err, what) => options.onConnectionError?.(err, what));
    return new PgStore(new PgEngine(pool, changes, { ...connection, application_name: 'teleboot-control readiness' }));
  }

  /** Gathers the planner's statistics now, as autovacuum does after many changes (bench/api.ts). */
  async analyze(): Promise<void> {
    await this.pg.pool.query('ANALYZE');
  }

  async schemaVersion(): Promise<number> {
    return Number((await this.pg.pool.query<{ v: number }>('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations')).rows[0].v);
  }
}
