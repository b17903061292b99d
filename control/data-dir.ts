// The control server's data directory: what lives in it, its modes, and
// writes that never replace a file that is already there (keys above all).
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import type { Logger } from '../contract/log';
import { ADMIN_TOKEN_FILE } from './admin-token';
import type { ControlConfig } from './config';

export const CLUSTER_ID_FILE = 'cluster-id';

/** How an operator gets a damaged or mixed-up data directory back; every refusal at start ends with it. */
export const restoreHint = (dataDir: string): string =>
  `restore the data directory from a backup: teleboot-control restore --from BACKUP --data-dir ${dataDir} --force ` +
  '(README "Backup and restore")';

/** The files of a data directory, each by what it is; paths follow the configuration. */
export function dataDirFiles(config: ControlConfig) {
  const tls = join(config.dataDir, 'tls');
  return {
    clusterId: join(config.dataDir, CLUSTER_ID_FILE),
    store: config.storePath,
    caCert: config.tls.caFile ?? join(tls, 'ca.pem'),
    caKey: config.tls.caKeyFile ?? join(tls, 'ca-key.pem'),
    serverCert: config.tls.certFile ?? join(tls, 'server.pem'),
    serverKey: config.tls.keyFile ?? join(tls, 'server-key.pem'),
    joinToken: config.joinTokenFile,
    adminToken: join(config.dataDir, ADMIN_TOKEN_FILE),
  };
}

/** Files that only a server that already ran leaves behind (the store itself aside). */
export function existingState(config: ControlConfig): string[] {
  const { store: _store, ...others } = dataDirFiles(config);
  return Object.values(others).filter((path) => existsSync(path));
}

/** Whether the store file holds anything: missing and empty (0 bytes) are alike. */
export function storeHasData(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

/** Takes group and other access away; logs what it changed. */
function restrict(path: string, wanted: number, log: Logger): void {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o077) === 0) return;
  chmodSync(path, wanted);
  log.warn({ path, was: octal(mode), now: octal(wanted) }, 'took group and other access away from a data file');
}

/**
 * The data directory and its tls/ 0700; the database, its WAL and shared
 * memory, keys and tokens 0600. Created so; an existing directory from an
 * earlier release (0755, 0644) is put right and the change logged.
 */
export function secureDataDir(config: ControlConfig, log: Logger): void {
  const files = dataDirFiles(config);
  for (const dir of [config.dataDir, join(config.dataDir, 'tls')]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    restrict(dir, 0o700, log);
  }
  if (dirname(config.storePath) !== config.dataDir) mkdirSync(dirname(config.storePath), { recursive: true, mode: 0o700 });
  // Secrets configured elsewhere (tls.key_file, a join token under /etc) are the operator's to manage.
  const inDataDir = (path: string) => path.startsWith(config.dataDir + sep);
  const secrets = [files.caKey, files.serverKey, files.joinToken, files.adminToken, files.clusterId].filter(inDataDir);
  for (const path of [files.store, `${files.store}-wal`, `${files.store}-shm`, ...secrets]) restrict(path, 0o600, log);
}

export class FileExistsError extends Error {}

/**
 * Writes a file that must not exist yet: complete (temp file, fsync) and then
 * linked into place, which fails when the name is taken. A key or an
 * identity already on disk is never replaced.
 */
export function writeNewFile(path: string, content: string | Buffer, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(tmp, 'wx', mode);
  try {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    for (let at = 0; at < data.length;) at += writeSync(fd, data, at, data.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new FileExistsError(`${path} already exists; teleboot-control never replaces it (move it away yourself if you mean to)`);
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
