// Atomic file writes: a reader sees the old content or the new, never half of
// one. Temp file in the same directory, fsync, rename, fsync the directory.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, basename, join } from 'node:path';

export interface WriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
}

export async function writeFileAtomic(path: string, content: string | Buffer, opts: WriteOptions): Promise<void> {
  const dir = dirname(path);
  await fs.mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  // Created with the final mode: a secret is never readable by others, not even briefly.
  const handle = await fs.open(tmp, 'wx', opts.mode);
  try {
    await handle.writeFile(content);
    await handle.chmod(opts.mode);
    if (opts.uid !== undefined || opts.gid !== undefined) await handle.chown(opts.uid ?? -1, opts.gid ?? -1);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await fs.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/**
 * Writes only when content, mode or owner differ from what is on disk.
 * Resolves true when it wrote.
 */
export async function writeFileIfChanged(path: string, content: string | Buffer, opts: WriteOptions): Promise<boolean> {
  const wanted = typeof content === 'string' ? Buffer.from(content) : content;
  try {
    const [current, stat] = await Promise.all([fs.readFile(path), fs.stat(path)]);
    const sameOwner = (opts.uid === undefined || stat.uid === opts.uid) && (opts.gid === undefined || stat.gid === opts.gid);
    if (current.equals(wanted) && (stat.mode & 0o7777) === opts.mode && sameOwner) return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await writeFileAtomic(path, wanted, opts);
  return true;
}
