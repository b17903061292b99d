// Atomic file writes: a reader sees the old content or the new, never half of
// one. Temp file in the same directory, fsync, rename, fsync the directory.
import { randomBytes } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

export interface WriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

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

/** Content and status of the file at `path` when its size is `size`; only the status otherwise; undefined when it does not exist. */
async function currentFile(path: string, size: number): Promise<{ stat: Stats; content?: Buffer } | undefined> {
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (stat.size !== size) return { stat };
    // Up to the size the stat gave, as fs.readFile reads.
    const content = Buffer.alloc(size);
    let length = 0;
    for (let n = -1; n !== 0 && length < size; length += n) n = (await handle.read(content, length, size - length, length)).bytesRead;
    return { stat, content: content.subarray(0, length) };
  } finally {
    await handle.close();
  }
}

/**
 * Writes only when content, mode or owner differ from what is on disk.
 * Resolves true when it wrote.
 */
export async function writeFileIfChanged(path: string, content: string | Buffer, opts: WriteOptions): Promise<boolean> {
  const wanted = typeof content === 'string' ? Buffer.from(content) : content;
  const current = await currentFile(path, wanted.length);
  if (current?.content) {
    const { stat } = current;
    const sameOwner = (opts.uid === undefined || stat.uid === opts.uid) && (opts.gid === undefined || stat.gid === opts.gid);
    if (current.content.equals(wanted) && (stat.mode & 0o7777) === opts.mode && sameOwner) return false;
  }
  await writeFileAtomic(path, wanted, opts);
  return true;
}
