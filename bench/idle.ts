// Idle cost of one agent: `teleboot-agent run` (the packaged executable),
// ready and sending heartbeats, sampled from /proc for BENCH_IDLE_SECONDS.
//
// The executable's pages count in its RSS as they are mapped from the page
// cache, and a file the build has just written sits there in larger pieces
// than one read from disk (measured: 58 MiB of file pages against 46 MiB for
// the same bytes read cold). A host reads the agent from disk at boot, so the
// bench drops the executable's cached pages first (POSIX_FADV_DONTNEED, with
// dd), as a freshly booted host has none.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AWS_ENV } from '../test/support/harness';
import type { World } from '../test/support/world';
import { nodeInstance, spawnAgent, stopGroup } from './boot';
import { median } from './stats';

export interface IdleRun {
  seconds: number;
  /** resident set size, sampled every second: median, highest and last sample */
  medianRssBytes: number;
  peakRssBytes: number;
  lastRssBytes: number;
  /** user + system CPU over the window, as a percentage of one CPU */
  cpuPercent: number;
  /** at the last sample: anonymous memory (heap, code, buffers) and mapped file pages (mostly the executable) */
  lastAnonBytes: number;
  lastFileBytes: number;
  /** at the last sample: the executable's own resident pages (of lastFileBytes), and Pss and Private_Dirty (smaps_rollup) */
  lastExecutableBytes: number;
  lastPssBytes: number;
  lastPrivateDirtyBytes: number;
  /** whether the executable's cached pages were dropped before the start (see above) */
  coldStart: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// USER_HZ: 100 on every Linux build Node supports (sysconf(_SC_CLK_TCK)).
const CLOCK_TICKS = 100;

function cpuTicks(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces: utime is the 12th, stime the 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A "Field:  N kB" line of /proc/PID/status or /proc/PID/smaps_rollup (the process's mappings summed), in bytes. */
function procBytes(pid: number, file: 'status' | 'smaps_rollup', field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Resident pages of the mappings of one file (the executable) in /proc/PID/smaps. */
function residentBytesOf(pid: number, file: string): number {
  let total = 0;
  let ofFile = false;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) ofFile = line.endsWith(` ${file}`);
    else if (ofFile && line.startsWith('Rss:')) total += Number(/(\d+) kB/.exec(line)?.[1] ?? 0) * 1024;
  }
  return total;
}

/** Drops a file's pages from the page cache (written back first); false when that cannot be done here. */
function dropCachedPages(file: string): boolean {
  try {
    execFileSync('sync', [file]);
    execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
    return true;
  } catch {
    return false;
  }
}

export async function idleOnce(world: World, agent: string[], seconds: number): Promise<IdleRun> {
  const { id, files } = await nodeInstance(world);
  // Only the agent's own executable: the Node.js binary of BENCH_AGENT=runtime|source is shared with everything else here.
  const coldStart = agent[0] !== process.execPath && dropCachedPages(agent[0]);
  const { child, output } = spawnAgent(agent, 'run', files.configFile, {
    ...process.env,
    ...AWS_ENV,
    NODE_OPTIONS: process.env.BENCH_AGENT_NODE_OPTIONS ?? '',
  });
  try {
    await world.control
      .waitForInstance(id, (i: any) => i.health === 'ready')
      .catch((err: Error) => {
        throw new Error(`${err.message}\nagent log:\n${output()}`);
      });
    // Settle: the first heartbeats and the host facts' first collection are part of a boot, not of idling.
    await sleep(5000);
    const pid = child.pid!;
    const startTicks = cpuTicks(pid);
    const startedAt = Date.now();
    const samples: number[] = [];
    while (Date.now() - startedAt < seconds * 1000) {
      await sleep(Math.min(1000, seconds * 1000 - (Date.now() - startedAt)));
      if (child.exitCode !== null) throw new Error(`the agent exited while idle:\n${output()}`);
      samples.push(procBytes(pid, 'status', 'VmRSS'));
    }
    const elapsed = (Date.now() - startedAt) / 1000;
    const cpuSeconds = (cpuTicks(pid) - startTicks) / CLOCK_TICKS;
    const instance = await world.control.rest('GET', `/v1/instances/${id}`);
    if (instance.body?.health !== 'ready') throw new Error(`${id} is ${instance.body?.health} after idling, not ready`);
    return {
      seconds: elapsed,
      medianRssBytes: median(samples),
      peakRssBytes: Math.max(...samples),
      lastRssBytes: samples[samples.length - 1],
      cpuPercent: (100 * cpuSeconds) / elapsed,
      lastAnonBytes: procBytes(pid, 'status', 'RssAnon'),
      lastFileBytes: procBytes(pid, 'status', 'RssFile'),
      lastExecutableBytes: residentBytesOf(pid, agent[0]),
      lastPssBytes: procBytes(pid, 'smaps_rollup', 'Pss'),
      lastPrivateDirtyBytes: procBytes(pid, 'smaps_rollup', 'Private_Dirty'),
      coldStart,
    };
  } finally {
    await stopGroup(child.pid!);
  }
}
