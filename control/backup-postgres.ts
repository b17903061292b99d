// The PostgreSQL store in a backup (backup.ts): pg_dump's custom format,
// taken on a snapshot that a read-only transaction of our own exports and in
// which it reads the cluster id, schema version and instance count, so the
// dump and what the backup says of it are of one moment while replicas keep
// writing. Restored with pg_restore, in one transaction, into an empty
// database. The client programs get the connection from libpq's environment
// (PGHOST, PGPASSWORD, PGSSLMODE, ...), the password as the store reads it
// (store.password_file, else PGPASSWORD): never on a command line.
import { spawn } from 'node:child_process';
import { Client } from 'pg';
import type { PostgresConfig } from './config';
import { readPasswordFile } from './store/open';
import { pgTarget } from './store/postgres-target';
import { connectionConfig } from './store/postgres';

export class PgBackupError extends Error {}

export interface StoreFacts {
  clusterId: string;
  schemaVersion: number;
  instances: number;
}

/** The password as the store reads it: store.password_file, else PGPASSWORD (absent: libpq's own, e.g. PGPASSFILE). */
function passwordOf(pg: PostgresConfig): string | undefined {
  return pg.passwordFile ? readPasswordFile(pg.passwordFile) : process.env.PGPASSWORD;
}

/** libpq's environment for pg_dump and pg_restore: the store's target, TLS and password. */
function libpqEnv(pg: PostgresConfig): NodeJS.ProcessEnv {
  const target = pgTarget(pg.url);
  const password = passwordOf(pg);
  const mode = pg.tls?.mode ?? 'disable';
  return {
    ...process.env,
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGDATABASE: target.database,
    PGSSLMODE: mode,
    ...(pg.tls?.caFile ? { PGSSLROOTCERT: pg.tls.caFile } : {}),
    ...(password !== undefined ? { PGPASSWORD: password } : {}),
    PGCONNECT_TIMEOUT: '10',
    PGAPPNAME: 'teleboot-control backup',
  };
}

/** A connection as the store makes one (store.tls: no TLS, TLS, or TLS verified against store.tls.ca_file). */
async function connect(pg: PostgresConfig): Promise<Client> {
  const client = new Client({
    ...connectionConfig({ url: pg.url, password: passwordOf(pg), tls: pg.tls }),
    connectionTimeoutMillis: 10_000,
    application_name: 'teleboot-control backup',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new PgBackupError(`the PostgreSQL store ${pg.url} cannot be reached: ${(err as Error).message}`);
  }
  return client;
}

/** Runs a PostgreSQL client program; rejects with its last lines of stderr. */
function run(program: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new PgBackupError(
          err.code === 'ENOENT'
            ? `${program} is not installed (or not on PATH): install PostgreSQL's client programs of the server's major version or newer (Debian: apt-get install postgresql-client)`
            : `${program} cannot be started: ${err.message}`,
        ),
      ),
    );
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new PgBackupError(`${program} failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' / ')}`)),
    );
  });
}

async function factsOf(client: Client, what: string): Promise<StoreFacts> {
  const identity = await client
    .query<{ cluster_id: string }>('SELECT cluster_id FROM cluster_identity WHERE id = 1')
    .catch(() => undefined);
  const clusterId = identity?.rows[0]?.cluster_id;
  if (!clusterId) throw new PgBackupError(`${what} holds no cluster identity: start teleboot-control serve on it once first`);
  const schemaVersion = Number((await client.query<{ v: number }>('SELECT MAX(version) AS v FROM schema_migrations')).rows[0].v);
  const instances = Number((await client.query<{ n: string }>('SELECT COUNT(*) AS n FROM instances')).rows[0].n);
  return { clusterId, schemaVersion, instances };
}

/** Dumps the store into `file` (pg_dump's custom format), consistent with the facts returned. */
export async function dumpPostgres(pg: PostgresConfig, file: string): Promise<StoreFacts> {
  const client = await connect(pg);
  try {
    // The dump reads the snapshot this transaction exports, so it sees what the facts below saw.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0].id;
    const facts = await factsOf(client, `the PostgreSQL store ${pg.url}`);
    await run('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--snapshot=${snapshot}`, `--file=${file}`], libpqEnv(pg));
    await client.query('COMMIT');
    return facts;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Restores a dump into the store's database, which must hold no teleboot tables yet; returns what it then holds. */
export async function restorePostgres(pg: PostgresConfig, file: string): Promise<StoreFacts> {
  const client = await connect(pg);
  try {
    const taken = (await client.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t")).rows[0].t;
    const { database } = pgTarget(pg.url);
    if (taken)
      throw new PgBackupError(
        `the database ${database} already holds a teleboot-control store: restore into a new, empty database (createdb), then point store.url at it`,
      );
    await run(
      'pg_restore',
      ['--exit-on-error', '--single-transaction', '--no-owner', '--no-privileges', `--dbname=${database}`, file],
      libpqEnv(pg),
    );
    return await factsOf(client, `the restored database ${database}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
