// Host facts for heartbeats, from systeminformation.
import { loadavg, uptime } from 'node:os';
import { setTimeout } from 'node:timers';
import type { Systeminformation } from 'systeminformation';
import type { HostFacts } from '../contract/model';

let latest: HostFacts | null = null;
let refreshing: Promise<HostFacts> | undefined;
let refreshedAt = 0;

/**
 * The host's facts for a status report. Collecting them spawns a few
 * processes, so they are refreshed at most every 10 s in the background; a
 * report never waits more than `waitMs` for them (the first may go without).
 */
export async function hostFacts(waitMs = 200, now = Date.now()): Promise<HostFacts | null> {
  if (!refreshing && now - refreshedAt > 10_000) {
    refreshedAt = now;
    refreshing = collectHostFacts()
      .then((facts) => (latest = facts))
      .finally(() => (refreshing = undefined));
    refreshing.catch(() => {});
  }
  if (refreshing && latest === null) {
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), waitMs).unref());
    return Promise.race([refreshing.catch(() => null), timeout]);
  }
  return latest;
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
