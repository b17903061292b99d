// Once its boot is over, the agent gives back the memory only the boot
// needed, in two steps, through a 16 KB Node-API addon the package installs
// beside the executable (agent/native/release-memory.cc):
//
// 1. V8's low-memory notification: the boot grew the young generation, which
//    V8's memory reducer would shrink some 10-20 s later; it is done now.
// 2. The executable's pages. It is Node.js itself (~100 MB), and a start
//    touches code and read-only data all over it: some 35 MiB stays mapped in
//    the agent's RSS, though an idle agent runs a part of it.
//    madvise(MADV_DONTNEED) drops those mappings from the process only: the
//    pages stay in the page cache, the next touch maps them again, and the
//    kernel can reclaim the rest as it does any unmapped cache.
//
// Only mappings that cannot hold a private copy of a page are dropped: not
// writable, and no anonymous (copy-on-write) pages in smaps. The dynamic
// loader's RELRO pages are written, then made read-only: dropping them would
// lose the relocations. Without the addon (the agent run by a plain Node.js)
// nothing is done.
import { constants, endianness } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describeError, type Logger } from '../contract/log';

/** The addon's file name; its places are in addonPlaces. */
export const RELEASE_MEMORY_ADDON = 'release-memory.node';
/** Where the package installs it (packaging/build/packages.ts). */
export const INSTALLED_RELEASE_MEMORY_ADDON = `/usr/lib/teleboot-agent/${RELEASE_MEMORY_ADDON}`;

export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  /** device as smaps prints it (major:minor, hexadecimal) and inode */
  device: string;
  inode: number;
  /** the mapped file's path; empty for anonymous memory */
  path: string;
  /** kB, from smaps */
  rssKb: number;
  anonymousKb: number;
}

/** The mappings of a /proc/PID/smaps text, with the fields this module reads. */
export function parseSmaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  let current: Mapping | undefined;
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ ([0-9a-f]+:[0-9a-f]+) (\d+) *(.*)$/.exec(line);
    if (header) {
      current = {
        start: BigInt(`0x${header[1]}`),
        end: BigInt(`0x${header[2]}`),
        perms: header[3],
        device: header[4],
        inode: Number(header[5]),
        path: header[6],
        rssKb: 0,
        anonymousKb: 0,
      };
      mappings.push(current);
      continue;
    }
    const field = /^(Rss|Anonymous):\s+(\d+) kB$/.exec(line);
    if (field && current) current[field[1] === 'Rss' ? 'rssKb' : 'anonymousKb'] = Number(field[2]);
  }
  return mappings;
}

/** AT_PHDR: where the kernel loaded the executable's program headers (getauxval(3)). */
const AT_PHDR = 3n;

/**
 * The executable's file as smaps names it (device and inode), found by where
 * its program headers are mapped (/proc/self/auxv). Not by stat(2): on an
 * overlay file system smaps shows the underlying file's device and inode,
 * which stat of the path does not give.
 */
export function executableFile(mappings: Mapping[], auxv: Buffer): { device: string; inode: number } | undefined {
  let phdr: bigint | undefined;
  const read = (at: number) => (endianness() === 'LE' ? auxv.readBigUInt64LE(at) : auxv.readBigUInt64BE(at));
  for (let at = 0; at + 16 <= auxv.length; at += 16) if (read(at) === AT_PHDR) phdr = read(at + 8);
  const m = phdr === undefined ? undefined : mappings.find((m) => m.start <= phdr && phdr < m.end && m.inode !== 0);
  return m && { device: m.device, inode: m.inode };
}

/** The mappings of one file (by device and inode) that may be released: resident, read-only, no private copies. */
export function releasable(mappings: Mapping[], file: { device: string; inode: number }): Mapping[] {
  return mappings.filter(
    (m) =>
      m.inode === file.inode && m.device === file.device && m.perms[1] === '-' && m.perms[3] === 'p' && m.anonymousKb === 0 && m.rssKb > 0,
  );
}

/** Where the addon may be: beside the executable (a build directory), or where the package installs it. */
export function addonPlaces(executable: string): string[] {
  return [join(dirname(executable), RELEASE_MEMORY_ADDON), INSTALLED_RELEASE_MEMORY_ADDON];
}

interface Addon {
  dropResidentPages(start: bigint, length: bigint): void;
  lowMemoryNotification(): void;
}

export interface Released {
  /** how long the two steps took */
  ms: number;
  /** the executable's resident pages before and right after, in bytes */
  beforeBytes: number;
  afterBytes: number;
  mappings: number;
}

/**
 * The two steps above. Undefined when the addon is not installed; throws
 * when it cannot be loaded or madvise fails.
 */
export function releaseBootMemory(places = addonPlaces(process.execPath)): Released | undefined {
  const addonFile = places.find((p) => existsSync(p));
  if (addonFile === undefined) return undefined;
  const addon = { exports: {} as Addon };
  process.dlopen(addon, addonFile, constants.dlopen.RTLD_NOW);
  const startedAt = performance.now();
  // First: the collections touch code the release would otherwise map again.
  addon.exports.lowMemoryNotification();
  const mappings = parseSmaps(readFileSync('/proc/self/smaps', 'utf8'));
  const file = executableFile(mappings, readFileSync('/proc/self/auxv'));
  if (file === undefined) throw new Error('the executable is not among the mappings of /proc/self/smaps (no AT_PHDR in /proc/self/auxv)');
  const chosen = releasable(mappings, file);
  for (const m of chosen) addon.exports.dropResidentPages(m.start, m.end - m.start);
  const residentKb = (ms: Mapping[]) => ms.reduce((sum, m) => sum + m.rssKb, 0);
  const after = parseSmaps(readFileSync('/proc/self/smaps', 'utf8')).filter((m) => m.inode === file.inode && m.device === file.device);
  return {
    ms: performance.now() - startedAt,
    beforeBytes: residentKb(chosen) * 1024,
    afterBytes: residentKb(after) * 1024,
    mappings: chosen.length,
  };
}

/** releaseBootMemory, logged; never throws (the agent runs on, with the memory). */
export function releaseBootMemoryLogged(log: Logger, places?: string[]): void {
  try {
    const released = releaseBootMemory(places);
    if (released === undefined) return log.debug(`no ${RELEASE_MEMORY_ADDON} beside the executable: the boot's memory is kept`);
    const mib = (bytes: number) => Math.round(bytes / 1048576);
    log.info(
      {
        ms: Math.round(released.ms),
        beforeMiB: mib(released.beforeBytes),
        afterMiB: mib(released.afterBytes),
        mappings: released.mappings,
      },
      "boot over: released the boot's memory and the executable's boot-only pages",
    );
  } catch (err) {
    log.warn({ err: describeError(err) }, "the boot's memory could not be released; the agent runs on with it");
  }
}
