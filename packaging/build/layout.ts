// What goes into each package: files, their modes, conffiles, the state
// directories the maintainer scripts create. One list feeds both the .deb
// and the .rpm builder, so the two formats cannot drift apart.
import { join } from 'node:path';

/** Where the repository is, from packaging/build and from dist/packaging/build alike. */
export function repoRoot(): string {
  return __dirname.includes('/dist/') ? join(__dirname, '..', '..', '..') : join(__dirname, '..', '..');
}

/** One file in a package: copied from the staging tree (`from`, relative to it) or written as text. */
export interface PackageFile {
  /** absolute path on the host */
  path: string;
  mode: number;
  /** staged file (absolute path on the build machine) */
  from?: string;
  text?: string;
  /** an operator edits it: kept on upgrade (dpkg conffile, rpm %config(noreplace)) */
  conffile?: boolean;
}

export interface StateDir {
  path: string;
  mode: number;
  owner: string;
}

export interface PackageSpec {
  name: string;
  summary: string;
  description: string;
  files: PackageFile[];
  /** directories the package owns and removes when empty */
  dirs: string[];
  /** created by the post-install script with this owner and mode (kept on removal, removed on purge) */
  stateDirs: StateDir[];
  /** the systemd unit; enabled by whoever bakes the image, restarted on upgrade when it runs */
  unit: string;
  /** Debian dependencies and RPM requirements besides the C library */
  debDepends: string[];
  rpmRequires: string[];
}

/** The build machine's architecture in each format's own words. */
export function architectures(arch = process.arch): { deb: string; rpm: string } {
  switch (arch) {
    case 'x64':
      return { deb: 'amd64', rpm: 'x86_64' };
    case 'arm64':
      return { deb: 'arm64', rpm: 'aarch64' };
    default:
      throw new Error(`packages are built for x64 and arm64 only, not ${arch}: build on an amd64 or arm64 machine`);
  }
}

export const MAINTAINER = 'teleboot maintainers <teleboot@users.noreply.github.com>';
export const HOMEPAGE = 'https://github.com/teleboot/teleboot';
