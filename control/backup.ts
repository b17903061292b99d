// Backup and restore of a control server's data directory: the database
// (SQLite's online backup, or on PostgreSQL pg_dump (backup-postgres.ts);
// consistent while the server runs), the cluster identity, the CA and server
// key pairs and the tokens, in one ustar file (0600: it holds the CA key). A
// restore puts them into a new data directory (and a PostgreSQL dump into an
// empty database) and checks them before the directory takes its name.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { VERSION } from '../contract/version';
import { CLUSTER_ID_FILE, dataDirFiles, writeNewFile } from './data-dir';
import { ADMIN_TOKEN_FILE } from './admin-token';
import type { ControlConfig } from './config';
import { SCHEMA_VERSION } from './store/migrations';
import { PG_SCHEMA_VERSION } from './store/postgres-migrations';
import { dumpPostgres, PgBackupError, restorePostgres } from './backup-postgres';
import { readTar, writeTar, type TarEntry } from './tar';

export const MANIFEST = 'teleboot-backup.json';
/** 1: a SQLite store; 2: a PostgreSQL one (a release that reads 1 only refuses it by its format). */
const FORMATS = { sqlite: 1, postgres: 2 } as const;
type StoreKind = keyof typeof FORMATS;

/** Archive names, each with the data directory file it is and its mode there. */
const MEMBERS = {
  store: { name: 'control.db', mode: 0o600, required: false },
  pgDump: { name: 'control.pgdump', mode: 0o600, required: false },
  clusterId: { name: CLUSTER_ID_FILE, mode: 0o600, required: true },
  caCert: { name: 'tls/ca.pem', mode: 0o644, required: true },
  caKey: { name: 'tls/ca-key.pem', mode: 0o600, required: true },
  serverCert: { name: 'tls/server.pem', mode: 0o644, required: false },
  serverKey: { name: 'tls/server-key.pem', mode: 0o600, required: false },
  joinToken: { name: 'join-token', mode: 0o600, required: false },
  adminToken: { name: ADMIN_TOKEN_FILE, mode: 0o600, required: false },
} as const;

export interface Manifest {
  format: number;
  /** Absent in format 1: SQLite. */
  store?: StoreKind;
  clusterId: string;
  createdAt: string;
  schemaVersion: number;
  version: string;
  /** Archive name → SHA-256 of its content. */
  files: Record<string, string>;
}

export class BackupError extends Error {}

/** The member that holds each store's database. */
const DATABASE_MEMBER = { sqlite: MEMBERS.store.name, postgres: MEMBERS.pgDump.name } as const;
const SCHEMA_VERSIONS = { sqlite: SCHEMA_VERSION, postgres: PG_SCHEMA_VERSION } as const;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Opens a database copy, checks it and reads its cluster id. */
function checkedCopy(path: string, what: string): { clusterId: string; schemaVersion: number; instances: number } {
  const db = new Database(path, { fileMustExist: true });
  try {
    const problems = (db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>)
      .map((r) => r.quick_check)
      .filter((r) => r !== 'ok');
    if (problems.length) throw new BackupError(`${what} fails SQLite's integrity check: ${problems.join('; ')}`);
    const clusterId = db.prepare('SELECT cluster_id FROM cluster_identity WHERE id = 1').pluck().get() as string | undefined;
    if (!clusterId) throw new BackupError(`${what} holds no cluster identity: start teleboot-control serve on it once first`);
    const schemaVersion = db.prepare('SELECT MAX(version) FROM schema_migrations').pluck().get() as number;
    const instances = db.prepare('SELECT COUNT(*) FROM instances').pluck().get() as number;
    return { clusterId, schemaVersion, instances };
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${what} cannot be read: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

export interface BackupSummary {
  file: string;
  clusterId: string;
  instances: number;
  bytes: number;
  members: string[];
}

/** Writes a backup of the configured data directory to `to`, which must not exist yet. */
export async function createBackup(config: ControlConfig, to: string): Promise<BackupSummary> {
  if (existsSync(to)) throw new BackupError(`${to} already exists; give a new file name`);
  const files = dataDirFiles(config);
  const kind: StoreKind = config.postgres ? 'postgres' : 'sqlite';
  const where = config.postgres ? `the PostgreSQL store ${config.postgres.url}` : `the database ${files.store}`;
  if (!config.postgres && !existsSync(files.store))
    throw new BackupError(`no control database at ${files.store}; give --data-dir or --config`);
  if (!existsSync(files.clusterId))
    throw new BackupError(`no ${files.clusterId}: give the data directory of the server (--data-dir or --config)`);
  const work = mkdtempSync(join(tmpdir(), 'teleboot-backup-'));
  try {
    const copy = join(work, DATABASE_MEMBER[kind]);
    const checked = config.postgres ? await dumpChecked(config.postgres, copy) : await sqliteCopy(files.store, copy);
    const idFile = readFileSync(files.clusterId, 'utf8').trim();
    if (idFile !== checked.clusterId)
      throw new BackupError(
        `${where} belongs to cluster ${checked.clusterId} but ${files.clusterId} says ${idFile}: this data directory does not hold one cluster`,
      );
    const entries: TarEntry[] = [];
    for (const [key, member] of Object.entries(MEMBERS)) {
      if (key === 'store' || key === 'pgDump') {
        if (member.name === DATABASE_MEMBER[kind]) entries.push({ name: member.name, mode: member.mode, content: readFileSync(copy) });
        continue;
      }
      const path = files[key as keyof typeof files];
      if (!existsSync(path)) {
        if (key === 'caKey' && config.ca.source.kind === 'ssm')
          throw new BackupError(
            `with ca.source ssm:${config.ca.source.prefix} the CA key is in SSM (${config.ca.source.prefix}/ca), not in ${path}: ` +
              'this backup covers a data-directory CA only. Keep the parameter (SSM keeps its versions) and back up the database itself',
          );
        if (member.required) throw new BackupError(`${path} is missing; a backup without it could not be restored`);
        continue;
      }
      entries.push({ name: member.name, mode: member.mode, content: readFileSync(path) });
    }
    const manifest: Manifest = {
      format: FORMATS[kind],
      ...(kind === 'postgres' ? { store: kind } : {}),
      clusterId: checked.clusterId,
      createdAt: new Date().toISOString(),
      schemaVersion: checked.schemaVersion,
      version: VERSION,
      files: Object.fromEntries(entries.map((e) => [e.name, sha256(e.content)])),
    };
    const archive = writeTar([{ name: MANIFEST, mode: 0o600, content: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') }, ...entries]);
    writeNewFile(to, archive, 0o600);
    return {
      file: to,
      clusterId: checked.clusterId,
      instances: checked.instances,
      bytes: archive.length,
      members: entries.map((e) => e.name),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** SQLite's online backup of `store` into `copy`, checked. */
async function sqliteCopy(store: string, copy: string): Promise<{ clusterId: string; schemaVersion: number; instances: number }> {
  const live = new Database(store, { fileMustExist: true });
  try {
    live.pragma('busy_timeout = 5000');
    // All pages in one step: one read transaction, so the copy is of one
    // moment and the server's writes meanwhile do not restart it.
    await live.backup(copy, { progress: () => 0x7fffffff });
  } finally {
    live.close();
  }
  return checkedCopy(copy, `the database ${store}`);
}

/** The PostgreSQL client programs' failures as backup errors (the CLI prints them). */
async function asBackupError<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw err instanceof PgBackupError ? new BackupError(err.message) : err;
  }
}

const dumpChecked = (pg: NonNullable<ControlConfig['postgres']>, file: string) => asBackupError(dumpPostgres(pg, file));

/** The manifest and members of a backup file, each checked against the manifest. */
export function readBackup(from: string): { manifest: Manifest; entries: Map<string, TarEntry> } {
  let archive: Buffer;
  try {
    archive = readFileSync(from);
  } catch (err) {
    throw new BackupError(`cannot read ${from}: ${(err as Error).message}`);
  }
  let all: TarEntry[];
  try {
    all = readTar(archive);
  } catch (err) {
    throw new BackupError(`${from} is not a teleboot-control backup: ${(err as Error).message}`);
  }
  const entries = new Map(all.map((e) => [e.name, e]));
  const manifestEntry = entries.get(MANIFEST);
  if (!manifestEntry) throw new BackupError(`${from} is not a teleboot-control backup: it has no ${MANIFEST}`);
  const manifest = JSON.parse(manifestEntry.content.toString('utf8')) as Manifest;
  const kind: StoreKind = manifest.store ?? 'sqlite';
  if (manifest.format !== FORMATS[kind])
    throw new BackupError(`${from} has backup format ${manifest.format}; this release reads formats 1 (SQLite) and 2 (PostgreSQL)`);
  if (manifest.schemaVersion > SCHEMA_VERSIONS[kind])
    throw new BackupError(
      `${from} was taken by a newer release (schema ${manifest.schemaVersion}; this one knows ${SCHEMA_VERSIONS[kind]}); restore it with that release`,
    );
  const known = new Set<string>(Object.values(MEMBERS).map((m) => m.name));
  for (const [name, entry] of entries) {
    if (name === MANIFEST) continue;
    if (!known.has(name)) throw new BackupError(`${from} holds an unexpected member ${name}`);
    if (manifest.files[name] !== sha256(entry.content)) throw new BackupError(`${from} is damaged: ${name} does not match its checksum`);
  }
  for (const name of [
    ...Object.values(MEMBERS)
      .filter((m) => m.required)
      .map((m) => m.name),
    DATABASE_MEMBER[kind],
  ])
    if (!entries.has(name)) throw new BackupError(`${from} is incomplete: it lacks ${name}`);
  return { manifest, entries };
}

export interface RestoreSummary {
  dataDir: string;
  clusterId: string;
  /** The instances the restored database holds. */
  instances: number;
  /** Where the directory that was there went (with --force). */
  movedAside?: string;
}

/**
 * Restores a backup into `dataDir`: written and checked in a sibling
 * directory, then renamed into place. A data directory that holds files is
 * moved aside with `force`, refused without; nothing is deleted. A
 * PostgreSQL backup's database goes into `postgres`'s database, which must
 * be empty (the data directory then keeps no control.db).
 */
export async function restoreBackup(
  from: string,
  dataDir: string,
  force: boolean,
  postgres?: ControlConfig['postgres'],
): Promise<RestoreSummary> {
  const { manifest, entries } = readBackup(from);
  const kind: StoreKind = manifest.store ?? 'sqlite';
  if (kind === 'postgres' && !postgres)
    throw new BackupError(
      `${from} holds a PostgreSQL store: give --store postgres://user@host:port/database (a new, empty database; the password from PGPASSWORD) or --config with store.url`,
    );
  if (kind === 'sqlite' && postgres)
    throw new BackupError(`${from} holds a SQLite store: restore it without --store (into the data directory), then migrate if you wish`);
  const occupied = existsSync(dataDir) && readdirSync(dataDir).length > 0;
  if (occupied && !force)
    throw new BackupError(
      `${dataDir} exists and holds files; give --force to move it aside (to ${dataDir}.before-restore-<time>) and restore in its place`,
    );
  mkdirSync(dirname(dataDir), { recursive: true });
  const staging = join(dirname(dataDir), `.${basename(dataDir)}.restoring-${randomBytes(4).toString('hex')}`);
  mkdirSync(join(staging, 'tls'), { recursive: true, mode: 0o700 });
  try {
    for (const member of Object.values(MEMBERS)) {
      const entry = entries.get(member.name);
      if (entry) writeNewFile(join(staging, member.name), entry.content, member.mode);
    }
    const inconsistent = () => new BackupError(`${from} is inconsistent: its database, cluster-id and manifest name different clusters`);
    // Checked before a database is written.
    if (readFileSync(join(staging, CLUSTER_ID_FILE), 'utf8').trim() !== manifest.clusterId) throw inconsistent();
    let checked: { clusterId: string; instances: number };
    if (postgres) {
      const dump = join(staging, MEMBERS.pgDump.name);
      checked = await asBackupError(restorePostgres(postgres, dump));
      rmSync(dump);
    } else checked = checkedCopy(join(staging, MEMBERS.store.name), `the restored database`);
    if (checked.clusterId !== manifest.clusterId) throw inconsistent();
    let movedAside: string | undefined;
    if (occupied) {
      movedAside = `${dataDir}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      renameSync(dataDir, movedAside);
    } else if (existsSync(dataDir)) {
      rmdirSync(dataDir);
    }
    renameSync(staging, dataDir);
    return { dataDir, clusterId: manifest.clusterId, instances: checked.instances, movedAside };
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}
