// Host facts for status reports, from systeminformation. Collected after a
// boot, never on its way: a collection loads systeminformation and spawns a
// few processes, which a boot would wait for.
import { loadavg, uptime } from 'node:os';
import type { Systeminformation } from 'systeminformation';
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

/** The OS and CPU do not change while the agent runs: read once (osInfo alone spawns several processes). */
let staticFacts: Promise<[Systeminformation.OsData, Systeminformation.CpuData]> | undefined;

export async function collectHostFacts(root = '/'): Promise<HostFacts> {
  // Loaded at the first collection, after the boot reported ready: a boot does not pay for it.
  const si = (await import('systeminformation')).default;
  // A failed read is not kept: the next collection tries again.
  staticFacts ??= Promise.all([si.osInfo(), si.cpu()]).catch((err: unknown) => {
    staticFacts = undefined;
    throw err;
  });
  const [[os, cpu], mem, disks] = await Promise.all([staticFacts, si.mem(), si.fsSize()]);
  const rootFs = disks.filter((d) => root.startsWith(d.mount)).sort((a, b) => b.mount.length - a.mount.length)[0];
  return {
    os: `${os.distro} ${os.release}`.trim(),
    kernel: os.kernel,
    arch: os.arch,
    cpus: cpu.cores,
    memoryTotalBytes: mem.total,
    memoryAvailableBytes: mem.available,
    loadAverage1m: loadavg()[0],
    uptimeSeconds: Math.round(uptime()),
    rootDiskFreeBytes: rootFs ? rootFs.available : 0,
  };
}
