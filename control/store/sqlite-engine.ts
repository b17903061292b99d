// The storage port on one SQLite connection (better-sqlite3, synchronous).
// Reads and transactions take turns in one queue: a transaction's statements
// run between awaits, so without the queue another caller's statement could
// run inside it (and be rolled back with it) or see what it has not committed.
// Group commit: transactions that queue up behind one another (a burst of
// enrollments) run as one database transaction, each in a savepoint of its
// own, with one commit (one fsync) for the group; each caller still gets its
// own outcome, and none is answered before the group's commit.
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

/** One caller's transaction, waiting in a group. */
interface Member {
  fn: (sql: Sql) => Promise<unknown>;
  relaxed: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class SqliteEngine implements StorageEngine, Sql {
  readonly kind = 'sqlite';
  readonly dialect = SQLITE_DIALECT;
  private readonly statements = new Map<string, Database.Statement>();
  /** Statements of arrays(), in raw mode: kept apart from those whose rows are objects. */
  private readonly arrayStatements = new Map<string, Database.Statement>();
  private tail: Promise<unknown> = Promise.resolve();
  /** The group queued last and not begun yet: a transaction asked for now joins it. */
  private open: Member[] | undefined;

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

  async arrays(text: string, params: readonly unknown[] = []): Promise<unknown[][]> {
    let statement = this.arrayStatements.get(text);
    if (!statement) this.arrayStatements.set(text, (statement = this.db.prepare(text).raw(true)));
    return statement.all(...bindable(params)) as unknown[][];
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
    // A transaction asked for after this read runs after it, as the caller ordered them.
    this.open = undefined;
    return this.enqueue(() => fn(this));
  }

  transaction<T>(fn: (sql: Sql) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const member: Member = { fn, relaxed: !!options.relaxed, resolve: resolve as (value: unknown) => void, reject };
      if (this.open) return void this.open.push(member);
      const group = [member];
      this.open = group;
      void this.enqueue(() => {
        if (this.open === group) this.open = undefined;
        return this.commitGroup(group);
      });
    });
  }

  /** Runs a group's transactions in one BEGIN ... COMMIT, each in a savepoint when there are several. */
  private async commitGroup(group: Member[]): Promise<void> {
    // FULL syncs the WAL at every commit; relaxed commits (heartbeats) skip
    // the fsync: a power loss can cost at most the latest of them, never a
    // change whose commit is FULL (it syncs everything written before it).
    const relaxed = group.every((m) => m.relaxed);
    const savepoints = group.length > 1;
    const committed: Array<{ member: Member; value: unknown }> = [];
    const settled = new Set<Member>();
    if (relaxed) this.statement('PRAGMA synchronous = NORMAL').run();
    try {
      this.statement('BEGIN IMMEDIATE').run();
      for (const member of group) {
        if (savepoints) this.statement('SAVEPOINT member').run();
        try {
          const value = await member.fn(this);
          if (savepoints) this.statement('RELEASE member').run();
          committed.push({ member, value });
        } catch (err) {
          // SQLite rolled the whole transaction back (I/O error, disk full): nothing of the group is kept.
          if (!this.db.inTransaction) throw err;
          this.statement(savepoints ? 'ROLLBACK TO member' : 'ROLLBACK').run();
          if (savepoints) this.statement('RELEASE member').run();
          settled.add(member);
          member.reject(err);
        }
      }
      if (this.db.inTransaction) this.statement('COMMIT').run();
      for (const { member, value } of committed) {
        settled.add(member);
        member.resolve(value);
      }
    } catch (err) {
      if (this.db.inTransaction) this.statement('ROLLBACK').run();
      for (const member of group) if (!settled.has(member)) member.reject(err);
    } finally {
      if (relaxed) this.statement('PRAGMA synchronous = FULL').run();
    }
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
    this.open = undefined;
    return this.enqueue(async () => {
      await this.checker?.close();
      this.db.close();
    });
  }
}
