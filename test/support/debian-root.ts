/**
 * A Debian 12 machine's root file system, made once with debootstrap
 * (minbase + systemd, make-debian-root.sh) and kept under .test-tmp/roots
 * (outside /tmp, so that CI, whose .ci/run makes it before the tests, reuses
 * it for the whole run, and systemd namespaces can see it). Tests boot it
 * through an overlay (startSystemdNamespace's osRoot), never changing it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_TMP_ROOT } from './systemd-ns';

export const DEBIAN_ROOT = join(TEST_TMP_ROOT, 'roots', 'bookworm-systemd');

/** The root, made when missing; or why it cannot be had here (for a tap skip). */
export function debianRoot(): { root?: string; reason?: string } {
  if (existsSync(join(DEBIAN_ROOT, 'lib/systemd/systemd'))) return { root: DEBIAN_ROOT };
  if (spawnSync('sh', ['-c', 'command -v debootstrap']).status !== 0)
    return { reason: 'debootstrap is not installed (apt-get install debootstrap; .ci/run does)' };
  const r = spawnSync(join(TEST_TMP_ROOT, '..', 'test', 'support', 'make-debian-root.sh'), [DEBIAN_ROOT], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.status !== 0) return { reason: `debootstrap of Debian 12 failed: ${(r.stderr || String(r.error)).trim()}` };
  return { root: DEBIAN_ROOT };
}

/**
 * This Node.js, hard-linked (or copied) into `dir` and returned: for what a
 * test runs on the Debian root, which has no Node.js of its own (and must
 * keep having none where the agent could lean on it).
 */
export function nodeInto(dir: string): string {
  const node = join(dir, 'node');
  try {
    linkSync(process.execPath, node);
  } catch {
    copyFileSync(process.execPath, node);
  }
  return node;
}
