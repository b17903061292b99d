// The package route: Teleport from the OS package repository (Teleport's
// apt or yum repository, configured on the host or in the AMI), pinned to
// the release's version. The package manager replaces the binaries in place,
// so there is no side-by-side copy: a rollback installs the older version.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { EffectiveRelease, ReportedVersion } from '../contract/teleport-release';
import { ReleaseError } from './teleport-release';

const run = promisify(execFile);

export type PackageManager = 'apt' | 'dnf' | 'yum';

const PROGRAMS: Record<PackageManager, string> = { apt: '/usr/bin/apt-get', dnf: '/usr/bin/dnf', yum: '/usr/bin/yum' };

/** Teleport's package names: teleport, teleport-ent. */
export function packageNameOf(release: Pick<EffectiveRelease, 'edition' | 'fips'>): string {
  if (release.fips) throw new ReleaseError('the FIPS build is installed from its tarball: set teleport.source to s3');
  return release.edition === 'enterprise' ? 'teleport-ent' : 'teleport';
}

const newer = (a: string, b: string) => {
  const pa = a.split(/[.-]/).map(Number);
  const pb = b.split(/[.-]/).map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] > pb[i];
  return false;
};

/**
 * The command that installs exactly `release`: `apt-get install -y
 * --allow-downgrades teleport=15.4.2`, `dnf -y install teleport-15.4.2`, or
 * `downgrade` for dnf and yum when an installed version is newer (their
 * install refuses to go down).
 */
export function packageCommand(manager: PackageManager, release: EffectiveRelease, installed?: ReportedVersion): string[] {
  const name = packageNameOf(release);
  if (manager === 'apt') return [PROGRAMS.apt, 'install', '-y', '--allow-downgrades', `${name}=${release.version}`];
  const verb = installed && newer(installed.version, release.version) ? 'downgrade' : 'install';
  return [PROGRAMS[manager], '-y', verb, `${name}-${release.version}`];
}

/** The package manager the host has: apt-get, then dnf, then yum. */
export async function detectPackageManager(): Promise<PackageManager> {
  for (const manager of ['apt', 'dnf', 'yum'] as const) {
    try {
      await access(PROGRAMS[manager]);
      return manager;
    } catch {
      /* not this one */
    }
  }
  throw new ReleaseError('teleport.source is package, but this host has neither apt-get, dnf nor yum; use source s3');
}

/** Runs the pinned install; a refusal (unknown version, repository not configured) fails the host with the manager's words. */
export async function installPackage(command: string[]): Promise<void> {
  const [program, ...args] = command;
  try {
    await run(program, args, { timeout: 15 * 60_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const said = (e.stderr || e.message).trim().split('\n').slice(-3).join(' / ');
    throw new ReleaseError(`${command.join(' ')} failed: ${said}`);
  }
}
