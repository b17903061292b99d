// Idle cost of one agent: `teleboot-agent run` (the packaged executable),
// ready and sending heartbeats, sampled from /proc for BENCH_IDLE_SECONDS.
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

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export async function idleOnce(world: World, agent: string[], seconds: number): Promise<IdleRun> {
  const { id, files } = await nodeInstance(world);
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
      samples.push(rssBytes(pid));
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
    };
  } finally {
    await stopGroup(child.pid!);
  }
}
