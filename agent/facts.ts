// Host facts for status reports, read from the kernel and /etc/os-release.
// Collected after a boot, never on its way. No library and no child
// process: a few files and one statfs. (systeminformation, before, stayed
// loaded in an idle agent and spawned processes at every collection.)
import { promises as fs } from 'node:fs';
import { arch, cpus, freemem, loadavg, release, totalmem, uptime } from 'node:os';
import type { HostFacts } from '../contract/model';

/** Facts are collected at most this often; a report carries the last ones. */
const MAX_AGE_MS = 10_000;

let latest: HostFacts | null = null;
let refreshing: Promise<HostFacts> | undefined;
let refreshedAt = 0;

/** The facts collected last (null before the first collection); never waits for one. */
export function hostFacts(): Promise<HostFacts | null> {
  return Promise.resolve(latest);
}

/**
 * Collects the facts anew unless the last collection is recent or one is
 * under way; resolves true when this collection gave the first facts.
 */
export async function refreshHostFacts(now = Date.now()): Promise<boolean> {
  if (refreshing || now - refreshedAt <= MAX_AGE_MS) return false;
  refreshedAt = now;
  const first = latest === null;
  refreshing = collectHostFacts();
  try {
    latest = await refreshing;
    return first;
  } finally {
    refreshing = undefined;
  }
}

/** KEY=value lines of os-release(5), quotes removed. */
function osRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2].replace(/^(["'])(.*)\1$/, '$2');
  }
  return out;
}

/** "Amazon Linux 2023", "Ubuntu 24.04": NAME and VERSION_ID of /etc/os-release (or /usr/lib/os-release). */
async function osName(): Promise<string> {
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      const r = osRelease(await fs.readFile(path, 'utf8'));
      return `${r.NAME ?? 'unknown'} ${r.VERSION_ID ?? ''}`.trim();
    } catch {
      /* the next one */
    }
  }
  return 'unknown';
}

/** MemAvailable of /proc/meminfo (the kernel's estimate of what can be used without swapping); free memory without it. */
async function availableMemory(): Promise<number> {
  try {
    const kib = /^MemAvailable:\s+(\d+) kB$/m.exec(await fs.readFile('/proc/meminfo', 'utf8'))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    /* not Linux */
  }
  return freemem();
}

/** The distribution does not change while the agent runs: read once. */
let distribution: Promise<string> | undefined;

export async function collectHostFacts(root = '/'): Promise<HostFacts> {
  distribution ??= osName();
  // Space an unprivileged user can take, as df's "Available".
  const [os, memoryAvailableBytes, disk] = await Promise.all([distribution, availableMemory(), fs.statfs(root)]);
  return {
    os,
    kernel: release(),
    arch: arch(),
    cpus: cpus().length,
    memoryTotalBytes: totalmem(),
    memoryAvailableBytes,
    loadAverage1m: loadavg()[0],
    uptimeSeconds: Math.round(uptime()),
    rootDiskFreeBytes: disk.bavail * disk.bsize,
  };
}
