/**
 * A Debian 12 machine's root file system, made once with debootstrap
 * (minbase + systemd) and kept under .test-tmp/roots (outside /tmp, so that
 * CI reuses it for the rest of its run and systemd namespaces can see it).
 * Tests boot it through an overlay (startSystemdNamespace's osRoot), never
 * changing it. About 100 s and 240 MB the first time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_TMP_ROOT } from './systemd-ns';

export const DEBIAN_ROOT = join(TEST_TMP_ROOT, 'roots', 'bookworm-systemd');
const MIRROR = 'http://deb.debian.org/debian';

function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** The root, made when missing; or why it cannot be had here (for a tap skip). */
export function debianRoot(): { root?: string; reason?: string } {
  if (existsSync(join(DEBIAN_ROOT, 'lib/systemd/systemd'))) return { root: DEBIAN_ROOT };
  if (!which('debootstrap')) return { reason: 'debootstrap is not installed (apt-get install debootstrap; .ci/run does)' };
  const partial = `${DEBIAN_ROOT}.partial-${process.pid}`;
  mkdirSync(join(TEST_TMP_ROOT, 'roots'), { recursive: true });
  rmSync(partial, { recursive: true, force: true });
  const r = spawnSync('debootstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,dbus', 'bookworm', partial, MIRROR], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.status !== 0) {
    rmSync(partial, { recursive: true, force: true });
    return {
      reason: `debootstrap from ${MIRROR} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`,
    };
  }
  // Another test process may have finished first: keep whichever came first.
  if (existsSync(DEBIAN_ROOT)) rmSync(partial, { recursive: true, force: true });
  else renameSync(partial, DEBIAN_ROOT);
  return { root: DEBIAN_ROOT };
}
