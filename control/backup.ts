// Backup and restore of a control server's data directory: the database
// (SQLite's online backup, consistent while the server runs), the cluster
// identity, the CA and server key pairs and the tokens, in one ustar file
// (0600: it holds the CA key). A restore puts them into a new data directory
// and checks them before the directory takes its name.
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
import { readTar, writeTar, type TarEntry } from './tar';

export const MANIFEST = 'teleboot-backup.json';
const FORMAT = 1;

/** Archive names, each with the data directory file it is and its mode there. */
const MEMBERS = {
  store: { name: 'control.db', mode: 0o600, required: true },
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
  clusterId: string;
  createdAt: string;
  schemaVersion: number;
  version: string;
  /** Archive name → SHA-256 of its content. */
  files: Record<string, string>;
}

export class BackupError extends Error {}

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
  if (!existsSync(files.store)) throw new BackupError(`no control database at ${files.store}; give --data-dir or --config`);
  const work = mkdtempSync(join(tmpdir(), 'teleboot-backup-'));
  try {
    const copy = join(work, 'control.db');
    const live = new Database(files.store, { fileMustExist: true });
    try {
      live.pragma('busy_timeout = 5000');
      // All pages in one step: one read transaction, so the copy is of one
      // moment and the server's writes meanwhile do not restart it.
      await live.backup(copy, { progress: () => 0x7fffffff });
    } finally {
      live.close();
    }
    const checked = checkedCopy(copy, `the database ${files.store}`);
    const idFile = readFileSync(files.clusterId, 'utf8').trim();
    if (idFile !== checked.clusterId)
      throw new BackupError(
        `the database ${files.store} belongs to cluster ${checked.clusterId} but ${files.clusterId} says ${idFile}: this data directory does not hold one cluster`,
      );
    const entries: TarEntry[] = [];
    for (const [key, member] of Object.entries(MEMBERS)) {
      const path = key === 'store' ? copy : files[key as keyof typeof files];
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
      format: FORMAT,
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
  if (manifest.format !== FORMAT)
    throw new BackupError(`${from} has backup format ${manifest.format}; this release reads format ${FORMAT}`);
  if (manifest.schemaVersion > SCHEMA_VERSION)
    throw new BackupError(
      `${from} was taken by a newer release (schema ${manifest.schemaVersion}; this one knows ${SCHEMA_VERSION}); restore it with that release`,
    );
  const known = new Set<string>(Object.values(MEMBERS).map((m) => m.name));
  for (const [name, entry] of entries) {
    if (name === MANIFEST) continue;
    if (!known.has(name)) throw new BackupError(`${from} holds an unexpected member ${name}`);
    if (manifest.files[name] !== sha256(entry.content)) throw new BackupError(`${from} is damaged: ${name} does not match its checksum`);
  }
  for (const member of Object.values(MEMBERS))
    if (member.required && !entries.has(member.name)) throw new BackupError(`${from} is incomplete: it lacks ${member.name}`);
  return { manifest, entries };
}

export interface RestoreSummary {
  dataDir: string;
  clusterId: string;
  /** Where the directory that was there went (with --force). */
  movedAside?: string;
}

/**
 * Restores a backup into `dataDir`: written and checked in a sibling
 * directory, then renamed into place. A data directory that holds files is
 * moved aside with `force`, refused without; nothing is deleted.
 */
export function restoreBackup(from: string, dataDir: string, force: boolean): RestoreSummary {
  const { manifest, entries } = readBackup(from);
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
    const checked = checkedCopy(join(staging, MEMBERS.store.name), `the restored database`);
    const idFile = readFileSync(join(staging, CLUSTER_ID_FILE), 'utf8').trim();
    if (checked.clusterId !== manifest.clusterId || idFile !== manifest.clusterId)
      throw new BackupError(`${from} is inconsistent: its database, cluster-id and manifest name different clusters`);
    let movedAside: string | undefined;
    if (occupied) {
      movedAside = `${dataDir}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      renameSync(dataDir, movedAside);
    } else if (existsSync(dataDir)) {
      rmdirSync(dataDir);
    }
    renameSync(staging, dataDir);
    return { dataDir, clusterId: manifest.clusterId, movedAside };
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}
