// Reading what a Teleport binary is, and fetching a release from S3 into a
// directory of its own: the tarball and its published .sha256 are
// downloaded (streamed, hashed on the way), compared, unpacked with the
// host's tar, and the unpacked `teleport version` must report the release.
// Only then is the directory renamed into place: a directory under its
// final name is always a whole, checked release.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  parseTeleportVersion,
  releaseKey,
  type EffectiveRelease,
  type ReportedVersion,
  type TeleportEdition,
} from '../contract/teleport-release';
import { MissingObjectError, type SecretSource } from './aws';

const run = promisify(execFile);

/** The release cannot be installed as asked: retrying the same release does not help (the host is failed). */
export class ReleaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseError';
  }
}

const describe = (r: { version: string; edition: TeleportEdition }) =>
  `Teleport${r.edition === 'enterprise' ? ' Enterprise' : ''} v${r.version}`;
export const describeRelease = describe;

/** What `binary version` reports; undefined when there is no such binary or it does not say. */
export async function reportedVersion(binary: string): Promise<ReportedVersion | undefined> {
  try {
    const { stdout } = await run(binary, ['version'], { timeout: 30_000 });
    return parseTeleportVersion(stdout);
  } catch {
    return undefined;
  }
}

export const isRelease = (reported: ReportedVersion | undefined, want: { version: string; edition: TeleportEdition }): boolean =>
  reported?.version === want.version && reported.edition === want.edition;

/** The checksum in a .sha256 file as `sha256sum` writes it ("<64 hex>  <file name>"); the name, when given, must be the tarball's. */
export function parseChecksumFile(text: string, tarball: string, where: string): string {
  const m = /^([0-9a-fA-F]{64})(?:\s+\*?(\S+))?\s*$/.exec(text.trim().split('\n')[0] ?? '');
  if (!m) throw new ReleaseError(`${where} does not hold a SHA-256 checksum ("<64 hex digits>  ${tarball}")`);
  if (m[2] !== undefined && m[2] !== tarball) throw new ReleaseError(`${where} is the checksum of ${m[2]}, not of ${tarball}`);
  return m[1].toLowerCase();
}

/**
 * Downloads, checks and unpacks `release` in `scratch` (a fresh directory
 * beside the release directories, removed by the caller); returns the
 * unpacked, checked release directory, ready to be renamed into place.
 */
export async function fetchRelease(
  release: EffectiveRelease,
  arch: string,
  source: Pick<SecretSource, 'download'>,
  scratch: string,
): Promise<{ unpacked: string; bytes: number }> {
  if (!release.bucket) throw new ReleaseError('no bucket for the Teleport release: set s3Bucket or teleport.bucket in the settings');
  const key = releaseKey(release, arch);
  const tarball = key.split('/').pop()!;
  const at = (k: string) => `s3://${release.bucket}/${k}`;
  const get = async (k: string, file: string) => {
    try {
      return await source.download(release.bucket, k, file);
    } catch (err) {
      if (err instanceof MissingObjectError)
        throw new ReleaseError(`${at(k)} does not exist: upload ${describe(release)} for linux-${arch} and its .sha256 beside it`);
      throw err;
    }
  };
  const sumFile = join(scratch, `${tarball}.sha256`);
  await get(`${key}.sha256`, sumFile);
  const expected = parseChecksumFile(await fs.readFile(sumFile, 'utf8'), tarball, at(`${key}.sha256`));
  const file = join(scratch, tarball);
  const got = await get(key, file);
  if (got.sha256 !== expected)
    throw new ReleaseError(`${at(key)} has SHA-256 ${got.sha256}, but ${at(`${key}.sha256`)} says ${expected}: refusing to install it`);

  const unpacked = join(scratch, 'unpacked');
  await fs.mkdir(unpacked);
  try {
    await run('tar', ['-xzf', file, '-C', unpacked, '--no-same-owner'], { timeout: 10 * 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new ReleaseError(`${at(key)} cannot be unpacked: ${(e.stderr || e.message).trim()}`);
  }
  // Teleport's tarballs hold one directory, teleport/ (teleport-ent/ for Enterprise), with teleport, tctl, tsh, tbot and the install script.
  const top = (await fs.readdir(unpacked)).find((name) => name === 'teleport' || name === 'teleport-ent');
  if (!top) throw new ReleaseError(`${at(key)} holds no teleport/ or teleport-ent/ directory: is it a Teleport release tarball?`);
  const root = join(unpacked, top);
  const reported = await reportedVersion(join(root, 'teleport'));
  if (!isRelease(reported, release))
    throw new ReleaseError(
      `${at(key)}: ${top}/teleport reports ${reported ? describe(reported) : 'no version (missing or not runnable)'}, expected ${describe(release)}`,
    );
  await fs.rm(file, { force: true });
  return { unpacked: root, bytes: got.bytes };
}
