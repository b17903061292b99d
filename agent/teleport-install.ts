// Installs the Teleport release the settings name, side by side:
//
//   /opt/teleport/15.4.2/{teleport,tctl,tsh,tbot,...}   one directory per release
//   /opt/teleport/current -> 15.4.2                       switched with one rename
//   /opt/teleport/previous -> 15.3.0                      kept for a rollback
//   /usr/local/bin/teleport -> /opt/teleport/current/teleport   (tctl, tsh alike)
//
// teleport, tctl and tsh change together because they all go through
// `current`, which is replaced atomically (symlink to a temporary name,
// rename). The previous release stays, so going back is a switch without a
// download; older ones are removed. A checksum mismatch, a missing object or
// a binary that does not report the release fails before anything is
// switched: the host keeps running what it ran.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../contract/log';
import type { Assignment, ClusterSettings } from '../contract/model';
import { effectiveRelease, releaseArchOf, releaseDirName, type EffectiveRelease, type ReportedVersion } from '../contract/teleport-release';
import type { SecretSource } from './aws';
import type { AgentConfig } from './config';
import { runningVersion } from './diag';
import type { Persist } from './persist';
import { detectPackageManager, installPackage, packageCommand, type PackageManager } from './teleport-package';
import { describeRelease, fetchRelease, isRelease, ReleaseError, reportedVersion } from './teleport-release';

export { ReleaseError };

export interface InstallLayout {
  /** Release directories, `current` and `previous`. */
  installDir: string;
  /** The command paths switched to the current release, by program name. */
  links: { teleport: string; tctl: string; tsh: string };
  packageManager?: PackageManager;
}

export interface InstallOutcome {
  /** The binary at the teleport path changed: Teleport must restart to run it. */
  changed: boolean;
  /** What the host reported before. */
  from?: ReportedVersion;
  /** Downloaded (false: already installed, or kept from before). */
  downloaded: boolean;
}

const CURRENT = 'current';
const PREVIOUS = 'previous';
const SCRATCH_PREFIX = '.tmp-';
/** Names of release directories (15.4.2, 15.4.2-ent, 15.4.2-ent-fips): only these are ever pruned. */
const RELEASE_DIR_RE = /^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/;

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

async function readLink(path: string): Promise<string | undefined> {
  try {
    return await fs.readlink(path);
  } catch (err) {
    if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/** Points `link` at `target` by renaming a fresh symlink over it: readers see the old target or the new. */
async function switchLink(link: string, target: string): Promise<void> {
  if ((await readLink(link)) === target) return;
  await fs.mkdir(dirname(link), { recursive: true });
  const tmp = join(dirname(link), `.${basename(link)}.${randomBytes(6).toString('hex')}.tmp`);
  await fs.symlink(target, tmp);
  try {
    await fs.rename(tmp, link);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export class TeleportInstaller {
  private readonly arch: string;

  constructor(
    private readonly layout: InstallLayout,
    private readonly source: () => Pick<SecretSource, 'download'>,
    private readonly log: Logger,
    nodeArch: string = process.arch,
  ) {
    this.arch = releaseArchOf(nodeArch);
  }

  /** Makes the teleport path run `release`; throws ReleaseError when it cannot, with nothing switched. */
  async ensure(release: EffectiveRelease): Promise<InstallOutcome> {
    const from = await reportedVersion(this.layout.links.teleport);
    if (isRelease(from, release)) return { changed: false, from, downloaded: false };
    if (release.source === 'package') return this.fromPackage(release, from);
    const { installDir } = this.layout;
    await fs.mkdir(installDir, { recursive: true, mode: 0o755 });
    const dir = join(installDir, releaseDirName(release));
    let downloaded = false;
    if (!isRelease(await reportedVersion(join(dir, 'teleport')), release)) {
      await this.download(release, dir);
      downloaded = true;
    }
    await this.adoptUnmanaged(from);
    const before = await readLink(join(installDir, CURRENT));
    await this.switchTo(basename(dir));
    const now = await reportedVersion(this.layout.links.teleport);
    if (!isRelease(now, release)) {
      if (before) await switchLink(join(installDir, CURRENT), before);
      throw new ReleaseError(
        `${this.layout.links.teleport} reports ${now ? describeRelease(now) : 'no version'} after the switch to ${dir}; switched back`,
      );
    }
    if (before && before !== basename(dir)) await switchLink(join(installDir, PREVIOUS), before);
    await this.prune([basename(dir), (await readLink(join(installDir, PREVIOUS))) ?? '']);
    this.log.info({ release: describeRelease(release), dir, from: from?.version, downloaded }, 'teleport release installed');
    return { changed: true, from, downloaded };
  }

  /**
   * Fetches the release through a scratch directory beside `dir`, then renames
   * it into place. A leftover `dir` that failed its check is replaced only
   * then, so a failed download leaves whatever was there.
   */
  private async download(release: EffectiveRelease, dir: string): Promise<void> {
    const scratch = await fs.mkdtemp(join(this.layout.installDir, SCRATCH_PREFIX));
    try {
      const { unpacked, bytes } = await fetchRelease(release, this.arch, this.source(), scratch);
      await fs.rename(dir, join(scratch, 'replaced')).catch((err: unknown) => {
        if (!isMissing(err)) throw err;
      });
      await fs.rename(unpacked, dir);
      this.log.info({ release: describeRelease(release), dir, bytes }, 'teleport release downloaded and checked');
    } finally {
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }

  /**
   * A host whose commands are plain files (Teleport baked into the AMI) gets
   * them copied into a release directory first, so that going back to that
   * version needs no download either.
   */
  private async adoptUnmanaged(from: ReportedVersion | undefined): Promise<void> {
    const { installDir, links } = this.layout;
    if (!from || (await readLink(links.teleport)) !== undefined) return;
    const dir = join(installDir, releaseDirName({ ...from, fips: false }));
    if (await fs.stat(dir).catch(() => undefined)) return;
    const scratch = await fs.mkdtemp(join(installDir, SCRATCH_PREFIX));
    try {
      for (const [name, path] of Object.entries(links)) {
        const stat = await fs.lstat(path).catch(() => undefined);
        if (stat?.isFile()) await fs.copyFile(path, join(scratch, name));
      }
      await fs.rename(scratch, dir);
      await switchLink(join(installDir, CURRENT), basename(dir));
      this.log.info({ dir, version: from.version }, 'kept the Teleport the host came with, for a rollback');
    } finally {
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }

  /** `current` to the release directory (one rename), then the command paths to current/<name> (unchanged after the first time). */
  private async switchTo(name: string): Promise<void> {
    const { installDir, links } = this.layout;
    await switchLink(join(installDir, CURRENT), name);
    for (const [program, link] of Object.entries(links)) await switchLink(link, join(installDir, CURRENT, program));
  }

  /** Removes release directories other than `keep`, and scratch directories an interrupted install left. */
  private async prune(keep: string[]): Promise<void> {
    for (const entry of await fs.readdir(this.layout.installDir)) {
      if (keep.includes(entry)) continue;
      if (!RELEASE_DIR_RE.test(entry) && !entry.startsWith(SCRATCH_PREFIX)) continue;
      await fs.rm(join(this.layout.installDir, entry), { recursive: true, force: true });
      this.log.info({ dir: join(this.layout.installDir, entry) }, 'removed an older teleport release');
    }
  }

  private async fromPackage(release: EffectiveRelease, from: ReportedVersion | undefined): Promise<InstallOutcome> {
    const command = packageCommand(this.layout.packageManager ?? (await detectPackageManager()), release, from);
    this.log.info({ command: command.join(' ') }, 'installing teleport from the package repository');
    await installPackage(command);
    const now = await reportedVersion(this.layout.links.teleport);
    if (!isRelease(now, release))
      throw new ReleaseError(
        `after ${command.join(' ')}, ${this.layout.links.teleport} reports ${now ? describeRelease(now) : 'no version'}, expected ${describeRelease(release)}`,
      );
    return { changed: true, from, downloaded: true };
  }
}

/** What convergence needs to install a release. */
export interface ReleaseDeps {
  config: Pick<AgentConfig, 'teleport'>;
  log: Logger;
  persist: Persist;
  secrets: () => Pick<SecretSource, 'download'>;
}

/** The command paths and install directory of an agent's config. */
export function installLayoutOf(config: Pick<AgentConfig, 'teleport'>): InstallLayout {
  const t = config.teleport;
  return {
    installDir: t.installDir ?? '/opt/teleport',
    links: { teleport: t.binary, tctl: t.tctl, tsh: t.tsh ?? join(dirname(t.binary), 'tsh') },
    packageManager: t.packageManager,
  };
}

/**
 * Convergence's install step: the release the desired state names, if the
 * host does not run it yet (none named: nothing to do). An unreachable S3 is
 * waited for; a release that cannot be installed comes back as its error.
 */
export async function installDesiredRelease(
  desired: { assignment: Assignment; cluster: ClusterSettings },
  deps: ReleaseDeps,
  signal: AbortSignal | undefined,
  onWait: (err: unknown) => void,
): Promise<InstallOutcome | ReleaseError> {
  const release = effectiveRelease(desired);
  if (!release) return { changed: false, downloaded: false };
  const installer = new TeleportInstaller(installLayoutOf(deps.config), deps.secrets, deps.log);
  let outcome: InstallOutcome;
  try {
    outcome = await deps.persist(`${describeRelease(release)} (${release.source})`, () => installer.ensure(release), signal, {
      isPermanent: (err) => err instanceof ReleaseError,
      onWait,
    });
  } catch (err) {
    if (err instanceof ReleaseError) return err;
    throw err;
  }
  if (outcome.changed) return outcome;
  // The binary is right, but the running Teleport may predate it (an agent stopped between the switch and the restart).
  const running = await runningVersion(deps.config.teleport.diagAddr);
  if (running === undefined || running === release.version) return outcome;
  deps.log.warn({ running, installed: release.version }, 'teleport runs another release than the one installed; restarting it');
  return { ...outcome, changed: true };
}
