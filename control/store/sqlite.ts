// The embedded store: one SQLite file in WAL mode, the default for one
// host. The rules are RecordStore's; this file opens, checks and migrates
// the file, and answers what only a data directory has (the cluster id).
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { restoreHint } from '../data-dir';
import { healthCountingInstall, INSTALLED_DEFINITION_SQL } from './health-counting';
import { IntegrityChecker } from './integrity-check';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';
import { RecordStore } from './record-store';
import { SqliteEngine } from './sqlite-engine';

export { REFUSAL_WINDOW_MS } from './refusal-counter';

/** The database file cannot be used as it is: names the file, the cause and what to do. */
export class StoreDamagedError extends Error {
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`${path}: ${(cause as Error).message}. teleboot-control will not start on this database: ${restoreHint(dirname(path))}`);
  }
}

/** What SQLite's quick check finds wrong with the file (the first lines), or undefined; a page it cannot read is reported too. */
function integrityProblem(db: Database.Database): string | undefined {
  try {
    const rows = db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>;
    const found = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
    return found.length ? found.join('; ') : undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function open(path: string): Database.Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Created here with its final mode: SQLite gives the -wal and -shm files the mode of the database.
    closeSync(openSync(path, 'a', 0o600));
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    // FULL syncs the WAL at every commit: an acknowledged change survives a
    // power loss, not only a crash of the process.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const problem = integrityProblem(db);
    if (problem) throw new Error(`the integrity check (PRAGMA quick_check) failed: ${problem}`);
    refuseNewerSchema(db);
    migrate(db);
    installHealthCounting(db);
    return db;
  } catch (err) {
    db?.close();
    throw new StoreDamagedError(path, err);
  }
}

const schemaVersionOf = (db: Database.Database): number =>
  db.prepare('SELECT COALESCE(MAX(version), 0) FROM schema_migrations').pluck().get() as number;

function refuseNewerSchema(db: Database.Database): void {
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!hasTable) return;
  const version = schemaVersionOf(db);
  if (version > SCHEMA_VERSION)
    throw new Error(
      `its schema version is ${version}, newer than this teleboot-control knows (${SCHEMA_VERSION}): a newer release wrote it. ` +
        'Run that release again, or restore a backup taken with this one',
    );
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  const applied = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    })();
  }
}

/** The health counting triggers of this program's rules (health-counting.ts), unless installed already. */
function installHealthCounting(db: Database.Database): void {
  const { definition, statements } = healthCountingInstall('sqlite');
  const installed = () => (db.prepare(INSTALLED_DEFINITION_SQL).pluck().get() as string | undefined) === definition;
  if (installed()) return;
  // IMMEDIATE: no other connection writes the instances between the recount and the triggers.
  db.transaction(() => {
    if (!installed()) for (const statement of statements) db.exec(statement);
  }).immediate();
}

export class SqliteStore extends RecordStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    const db = open(path);
    // quick_check on a connection of its own in a worker thread (none for :memory:).
    const checker = path === ':memory:' ? undefined : new IntegrityChecker(path);
    super(new SqliteEngine(db, checker, () => integrityProblem(db)));
    this.db = db;
  }

  integrityProblem(): string | undefined {
    return integrityProblem(this.db);
  }

  schemaVersion(): number {
    return schemaVersionOf(this.db);
  }
}
