// One host's boot-to-ready: `teleboot-agent once` as its own process, from
// process start to its exit after reporting ready, against the real control
// server process, s3rver and the SSM/IMDS emulators. service_manager is
// `process`: the agent starts the teleport stand-in (test/bin/teleport).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parse, stringify } from 'yaml';
import { AWS_ENV } from '../test/support/harness';
import { stopProcessGroup } from '../packaging/build/process-group';
import type { BenchStandin } from './standin';
import type { World } from '../test/support/world';
import type { AgentFiles } from '../test/support/harness';

/** Agent log messages that mark the phases of a boot, in order. */
export const PHASES = [
  ['identity read from instance metadata', 'IMDS identity read'],
  ['enrolled', 'enrolled'],
  ['config applied', 'files written, teleport started'],
  ['teleport ready', '/readyz answered 200'],
  ['bootstrap finished', 'status reported'],
] as const;

/** The phase label of an agent log message, if it marks one. */
export function phaseOf(msg: string | undefined): string | undefined {
  const name = msg === 'config unchanged' ? 'config applied' : msg;
  return PHASES.find(([m]) => m === name)?.[1];
}

export interface BootRun {
  instanceId: string;
  /** Process start to exit (exit code 0: ready and reported). */
  wallMs: number;
  /** Process start to the instance's status.reportedAt (state ready) on the control server. */
  controlViewMs: number;
  /** Process start to each phase's log record (ms), by phase label. */
  phases: Record<string, number>;
  /** The agent process's own CPU (user + system, ms; 10 ms steps), not its Teleport's; NaN without /usr/bin/time. */
  cpuMs: number;
}

export interface BootOptions {
  /** the agent's command line before its arguments (bench/agent-command.ts) */
  agent: string[];
  /** the teleport stand-in the agent starts, and its knobs (bench/standin.ts), passed on by the agent */
  standin: BenchStandin;
  timeoutMs: number;
}

/** GNU time reports the CPU of the process it waits for (the agent), not of the Teleport the agent leaves running. */
const TIME = '/usr/bin/time';
const CPU_MARK = 'bench-agent-cpu';
const hasTime = existsSync(TIME);

/** Agents still running, or their teleport stand-ins: process group ids, for cleanup. */
export const liveGroups = new Set<number>();

/** Stops a process group (the agent and the teleport it started): TERM, then KILL after 2 s. */
export async function stopGroup(pgid: number): Promise<void> {
  await stopProcessGroup(pgid);
  liveGroups.delete(pgid);
}

/** Stops whatever a boot run left behind (on failure or interruption). */
export async function cleanupBoots(): Promise<void> {
  await Promise.all([...liveGroups].map(stopGroup));
}

/** Resolves with the exit code and the moment of exit (performance.now()). */
function waitForExit(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; at: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`teleboot-agent once did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, at: performance.now() });
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A fresh instance pre-assigned "node", and its agent.yaml (service_manager: process; teleport: the given stand-in, or the tests'). */
export async function nodeInstance(world: World, teleportBinary?: string): Promise<{ id: string; files: AgentFiles }> {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  const assigned = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  if (assigned.status !== 200) throw new Error(`pre-assigning ${id} failed: ${JSON.stringify(assigned.body)}`);
  const files = await world.agentConfig(imds, 'process');
  if (teleportBinary) {
    const config = parse(readFileSync(files.configFile, 'utf8')) as { teleport: { binary: string } };
    config.teleport.binary = teleportBinary;
    writeFileSync(files.configFile, stringify(config));
  }
  return { id, files };
}

/**
 * Starts `agent <command> -c configFile` in its own process group (the agent leaves teleport
 * running, which the bench must stop with stopGroup), collecting its output.
 */
export function spawnAgent(
  agent: string[],
  command: string,
  configFile: string,
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; output: () => string } {
  const [exe, ...args] = agent;
  const child = spawn(exe, [...args, command, '-c', configFile], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  liveGroups.add(child.pid!);
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return { child, output: () => output };
}

export async function bootOnce(world: World, opts: BootOptions): Promise<BootRun> {
  const { id, files } = await nodeInstance(world, opts.standin.binary);
  const env = { ...process.env, ...AWS_ENV, NODE_OPTIONS: '', ...opts.standin.env };

  const startedAt = Date.now();
  const t0 = performance.now();
  const agent = hasTime ? [TIME, '-f', `${CPU_MARK} %U %S`, ...opts.agent] : opts.agent;
  const { child, output: agentOutput } = spawnAgent(agent, 'once', files.configFile, env);
  let exit: { code: number | null; at: number };
  try {
    exit = await waitForExit(child, opts.timeoutMs);
  } finally {
    await stopGroup(child.pid!);
  }
  const { code } = exit;
  const wallMs = exit.at - t0;
  const output = agentOutput();
  if (code !== 0) throw new Error(`teleboot-agent once exited with ${code}:\n${output}`);

  const instance = await world.control.rest('GET', `/v1/instances/${id}`);
  const status = instance.body?.status;
  if (status?.state !== 'ready' || !status.teleportReady)
    throw new Error(`the control server does not show ${id} ready: ${JSON.stringify(instance.body)}`);

  const phases: Record<string, number> = {};
  let cpuMs = NaN;
  for (const line of output.split('\n')) {
    if (line.startsWith(CPU_MARK)) {
      const [user, system] = line.slice(CPU_MARK.length).trim().split(' ').map(Number);
      cpuMs = (user + system) * 1000;
    }
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; time?: number };
      const phase = phaseOf(rec.msg);
      if (phase && rec.time !== undefined && phases[phase] === undefined) phases[phase] = rec.time - startedAt;
    } catch {
      /* not a log record */
    }
  }
  return { instanceId: id, wallMs, controlViewMs: Date.parse(status.reportedAt) - startedAt, phases, cpuMs };
}
