// The storage port on one SQLite connection (better-sqlite3, synchronous).
// Reads and transactions take turns in one queue: a transaction's statements
// run between awaits, so without the queue another caller's statement could
// run inside it (and be rolled back with it) or see what it has not committed.
import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Sql, SqlDialect, StorageEngine, TransactionOptions } from './engine';
import type { IntegrityChecker } from './integrity-check';

export const SQLITE_DIALECT: SqlDialect = {
  jsonNumber: (column, key) => `json_extract(${column}, '$.${key}')`,
  // 'now' is fixed for the whole of one statement.
  nowMs: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
};

/** better-sqlite3 binds neither undefined nor booleans. */
const bindable = (params: readonly unknown[]): unknown[] =>
  params.map((p) => (p === undefined ? null : typeof p === 'boolean' ? (p ? 1 : 0) : p));

export class SqliteEngine implements StorageEngine, Sql {
  readonly kind = 'sqlite';
  readonly dialect = SQLITE_DIALECT;
  private readonly statements = new Map<string, Database.Statement>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly db: Database.Database,
    private readonly checker: IntegrityChecker | undefined,
    private readonly integrityProblem: () => string | undefined,
  ) {}

  /** A prepared statement, compiled once per SQL text: compiling costs more than running. */
  statement(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  async all<R>(text: string, params: readonly unknown[] = []): Promise<R[]> {
    return this.statement(text).all(...bindable(params)) as R[];
  }

  async get<R>(text: string, params: readonly unknown[] = []): Promise<R | undefined> {
    return this.statement(text).get(...bindable(params)) as R | undefined;
  }

  async run(text: string, params: readonly unknown[] = []): Promise<number> {
    return this.statement(text).run(...bindable(params)).changes;
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.enqueue(() => fn(this));
  }

  transaction<T>(fn: (sql: Sql) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.enqueue(async () => {
      // FULL syncs the WAL at every commit; relaxed commits (heartbeats) skip
      // the fsync: a power loss can cost at most the latest of them, never a
      // change whose commit is FULL (it syncs everything written before it).
      if (options.relaxed) this.statement('PRAGMA synchronous = NORMAL').run();
      this.statement('BEGIN IMMEDIATE').run();
      try {
        const result = await fn(this);
        this.statement('COMMIT').run();
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.statement('ROLLBACK').run();
        throw err;
      } finally {
        if (options.relaxed) this.statement('PRAGMA synchronous = FULL').run();
      }
    });
  }

  async bytes(): Promise<number> {
    const pages = (this.db.pragma('page_count', { simple: true }) as number) * (this.db.pragma('page_size', { simple: true }) as number);
    let wal = 0;
    try {
      wal = statSync(`${this.db.name}-wal`).size;
    } catch {
      // No write-ahead log (in memory, or checkpointed and removed).
    }
    return pages + wal;
  }

  async checkReadable(): Promise<void> {
    const problem = this.checker ? await this.checker.check() : this.integrityProblem();
    if (problem) throw new Error(`the store cannot be read: ${problem}`);
  }

  close(): Promise<void> {
    return this.enqueue(async () => {
      await this.checker?.close();
      this.db.close();
    });
  }
}
