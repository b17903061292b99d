// teleboot-agent processes for the demo: one per instance, each in its own
// process group so that the stand-in Teleport it starts can be found (and
// stopped) through the group even when it outlives its agent.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AGENT_BIN, AWS_ENV, type AgentFiles } from '../support/harness';

export interface AgentProcess {
  instanceId: string;
  name: string;
  files: AgentFiles;
  logFile: string;
  proc: ChildProcess;
  exited: Promise<void>;
}

/** A process left in an agent's group after the agent itself exited. */
export interface Leftover {
  pid: number;
  command: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A small environment, as under systemd: the emulators' credentials, PATH with
 * this node first (the stand-in Teleport is `#!/usr/bin/env node`), and no
 * NODE_OPTIONS or AWS_* settings inherited from the user's shell.
 */
function agentEnv(): NodeJS.ProcessEnv {
  const path = [dirname(process.execPath), process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'].join(':');
  return { PATH: path, HOME: process.env.HOME ?? '/', ...AWS_ENV, NODE_OPTIONS: '' };
}

export function startAgent(instanceId: string, name: string, files: AgentFiles): AgentProcess {
  const logFile = join(files.root, 'agent.log');
  const fd = openSync(logFile, 'a');
  const proc = spawn(process.execPath, [AGENT_BIN, 'run', '-c', files.configFile], {
    env: agentEnv(),
    stdio: ['ignore', fd, fd],
    // Its own process group: Ctrl-C in the terminal reaches the demo, which stops agents in order.
    detached: true,
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.once('error', () => resolve()); // could not start at all
  });
  return { instanceId, name, files, logFile, proc, exited };
}

export const isRunning = (a: AgentProcess): boolean => a.proc.exitCode === null && a.proc.signalCode === null;

export function logTail(a: AgentProcess, lines = 15): string {
  if (!existsSync(a.logFile)) return '(no log)';
  return readFileSync(a.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  const done = await Promise.race([p.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

/** Live (non-zombie) members of a process group; via /proc on Linux, by probing elsewhere. */
function groupMembers(pgid: number): Leftover[] {
  if (!existsSync('/proc/self/stat')) {
    try {
      process.kill(-pgid, 0);
      return [{ pid: -pgid, command: `process group ${pgid}` }];
    } catch {
      return [];
    }
  }
  const members: Leftover[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) !== pgid || state === 'Z') continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      members.push({ pid: Number(entry), command });
    } catch {
      /* gone meanwhile */
    }
  }
  return members;
}

async function waitForEmptyGroup(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupMembers(pgid).length > 0) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** SIGTERM the agent, then whatever it left in its process group; returns what was left. */
export async function stopAgent(a: AgentProcess): Promise<Leftover[]> {
  if (isRunning(a)) {
    a.proc.kill('SIGTERM');
    if (!(await within(a.exited, 10_000))) a.proc.kill('SIGKILL');
  }
  await a.exited;
  const pgid = a.proc.pid;
  if (pgid === undefined) return [];
  const leftovers = groupMembers(pgid);
  if (leftovers.length === 0) return [];
  process.kill(-pgid, 'SIGTERM');
  if (!(await waitForEmptyGroup(pgid, 5_000))) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await waitForEmptyGroup(pgid, 2_000);
  }
  return leftovers;
}
