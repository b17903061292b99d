// Atomic file writes: a reader sees the old content or the new, never half of
// one. Temp file in the same directory, fsync, rename, fsync the directory.
//
// On file descriptors through the callback API: a FileHandle of fs/promises
// costs about twice as much to open and close, and an agent booting writes
// a handful of files with two descriptors each.
import { randomBytes } from 'node:crypto';
import { close, fchmod, fchown, fstat, fsync, mkdir, open, read, rename, rm, write, type Stats } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { promisify } from 'node:util';

export interface WriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
}

const fd = {
  open: promisify(open),
  close: promisify(close),
  fstat: promisify(fstat),
  read: promisify(read),
  write: promisify(write),
  fchmod: promisify(fchmod),
  fchown: promisify(fchown),
  fsync: promisify(fsync),
};

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** Runs `work` on the open descriptor and closes it, whatever happens. */
async function withFd<T>(descriptor: number, work: (descriptor: number) => Promise<T>): Promise<T> {
  try {
    return await work(descriptor);
  } finally {
    await fd.close(descriptor);
  }
}

async function writeAll(descriptor: number, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length;) at += (await fd.write(descriptor, data, at, data.length - at, null)).bytesWritten;
}

/** The temporary a write of `name` goes through: `.NAME.<12 hex>.tmp` (see isTemporaryOf). */
const temporaryName = (name: string): string => `.${name}.${randomBytes(6).toString('hex')}.tmp`;
const TEMPORARY_RE = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;

/** True when `entry` is a temporary writeFileAtomic made, for one of `names` (any name when absent). */
export function isTemporaryOf(entry: string, names?: ReadonlySet<string>): boolean {
  const m = TEMPORARY_RE.exec(entry);
  return m !== null && (names === undefined || names.has(m[1]));
}

export async function writeFileAtomic(path: string, content: string | Buffer, opts: WriteOptions): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, temporaryName(basename(path)));
  // Created with the final mode: a secret is never readable by others, not even briefly.
  const create = () => fd.open(tmp, 'wx', opts.mode);
  let descriptor: number;
  try {
    descriptor = await create();
  } catch (err) {
    if (!isMissing(err)) throw err;
    // The directory does not exist yet: created here, on the first write into it.
    await promisify(mkdir)(dir, { recursive: true });
    descriptor = await create();
  }
  try {
    await withFd(descriptor, async (d) => {
      await writeAll(d, typeof content === 'string' ? Buffer.from(content) : content);
      await fd.fchmod(d, opts.mode);
      if (opts.uid !== undefined || opts.gid !== undefined) await fd.fchown(d, opts.uid ?? -1, opts.gid ?? -1);
      await fd.fsync(d);
    });
    await promisify(rename)(tmp, path);
  } catch (err) {
    await promisify(rm)(tmp, { force: true });
    throw err;
  }
  await withFd(await fd.open(dir, 'r'), fd.fsync);
}

/** Content and status of the file at `path` when its size is `size`; only the status otherwise; undefined when it does not exist. */
async function currentFile(path: string, size: number): Promise<{ stat: Stats; content?: Buffer } | undefined> {
  let descriptor: number;
  try {
    descriptor = await fd.open(path, 'r');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  return withFd(descriptor, async (d) => {
    const stat = await fd.fstat(d);
    if (stat.size !== size) return { stat };
    // Up to the size the stat gave, as fs.readFile reads.
    const content = Buffer.alloc(size);
    let length = 0;
    for (let n = -1; n !== 0 && length < size; length += n) n = (await fd.read(d, content, length, size - length, length)).bytesRead;
    return { stat, content: content.subarray(0, length) };
  });
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
