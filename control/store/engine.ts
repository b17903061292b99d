// The storage port: what a database gives the store and nothing more —
// statements and transactions. The rules (trust at enrollment, rule
// matching, leases, audit) live above it in record-store.ts and are the same
// for every database; the SQL in records.ts is written once, in the subset
// SQLite and PostgreSQL share ("?" parameters, ON CONFLICT, RETURNING).

import type { ChangeFeed } from './postgres-changes';

/** Statements on one connection (inside a transaction) or on any (a read). */
export interface Sql {
  all<R>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** all with each row an array of its columns in the select's order: cheaper to make than objects on a big page. */
  arrays(text: string, params?: readonly unknown[]): Promise<unknown[][]>;
  get<R>(text: string, params?: readonly unknown[]): Promise<R | undefined>;
  /** A statement that returns no rows; how many rows it changed. */
  run(text: string, params?: readonly unknown[]): Promise<number>;
}

/** The few expressions the two databases spell differently. */
export interface SqlDialect {
  /** A number member of a JSON document kept in a TEXT column; NULL when absent. */
  jsonNumber(column: string, key: string): string;
  /**
   * A statement that holds a lock on one name ("?") until the transaction
   * ends, so that writers deciding on the same thing take turns; absent when
   * transactions already run one at a time.
   */
  lockSql?: string;
  /**
   * The database's clock in unix ms, the same value everywhere in one
   * statement: leases are decided on it, so replicas whose clocks drift
   * apart still agree on who holds one.
   */
  readonly nowMs: string;
  /**
   * The instances have a row_version, new at every insert and update
   * (PostgreSQL migration 9): the REST list reads the versions of a page,
   * and the columns only of the rows it holds no view of.
   */
  readonly instanceRowVersions?: boolean;
}

export interface TransactionOptions {
  /**
   * The commit need not survive a power loss (heartbeats: the next one
   * replaces it); a crash of the server still keeps it.
   */
  relaxed?: boolean;
}

export interface StorageEngine {
  readonly kind: string;
  readonly dialect: SqlDialect;
  /** Changes between replicas sharing the database; none for a database one process owns. */
  readonly changes?: ChangeFeed;
  /** Statements that change nothing; they see committed data only. */
  read<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * All of fn's statements commit together or not at all (fn throws: nothing
   * is written). fn must only run statements: it may be run again when the
   * database reports a conflict with a concurrent transaction.
   */
  transaction<T>(fn: (sql: Sql) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Frees the room of a table's deleted rows now, not at the database's next
   * routine pass (PostgreSQL: VACUUM; until it, every scan of the table reads
   * them): for a small table that is read whole often and emptied in bulk.
   */
  reclaim?(table: string): Promise<void>;
  /** Bytes the database takes on disk. */
  bytes(): Promise<number>;
  /** Throws, saying why, when the stored data cannot be read. */
  checkReadable(): Promise<void>;
  close(): Promise<void>;
}
