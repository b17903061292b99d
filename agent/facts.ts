// Host facts for heartbeats, from systeminformation.
import si from 'systeminformation';
import type { HostFacts } from '../common/model';

let cached: { at: number; facts: Promise<HostFacts> } | undefined;

/** Facts change slowly and cost a few process spawns; reuse them for 10 s. */
export function hostFacts(now = Date.now()): Promise<HostFacts> {
  if (!cached || now - cached.at > 10_000) {
    const facts = collectHostFacts();
    facts.catch(() => (cached = undefined));
    cached = { at: now, facts };
  }
  return cached.facts;
}

export async function collectHostFacts(root = '/'): Promise<HostFacts> {
  const [os, cpu, mem, load, disks] = await Promise.all([si.osInfo(), si.cpu(), si.mem(), si.currentLoad(), si.fsSize()]);
  const rootFs = disks.filter((d) => root.startsWith(d.mount)).sort((a, b) => b.mount.length - a.mount.length)[0];
  return {
    os: `${os.distro} ${os.release}`.trim(),
    kernel: os.kernel,
    arch: os.arch,
    cpus: cpu.cores,
    memoryTotalBytes: mem.total,
    memoryAvailableBytes: mem.available,
    loadAverage1m: load.avgLoad,
    uptimeSeconds: Math.round(si.time().uptime),
    rootDiskFreeBytes: rootFs ? rootFs.available : 0,
  };
}
