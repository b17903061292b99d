// A fresh machine for end-to-end tests: its own systemd in a private
// namespace, then `teleboot-agent run` inside it, stopped with the test.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Test } from 'tap';
import { parse, stringify } from 'yaml';
import type { ImdsEmulator } from '../emulators/imds';
import { AGENT_BIN, AWS_ENV, type AgentFiles } from './harness';
import { startSystemdNamespace, type SystemdNamespace } from './systemd-ns';
import type { World } from './world';

export interface Booted {
  ns: SystemdNamespace;
  files: AgentFiles;
  agent: ChildProcess;
  logs: () => string;
}

export const agentEnv = { ...AWS_ENV, NODE_OPTIONS: '', TELEBOOT_LOG_LEVEL: 'debug' };

/**
 * Boots an instance: agent.yaml (with `extraConfig` merged over its top
 * level), `before` to prepare the host's files, then the agent under systemd.
 */
export async function bootUnderSystemd(
  t: Test,
  world: World,
  imds: ImdsEmulator,
  extraConfig: Record<string, unknown> = {},
  before?: (files: AgentFiles) => void,
): Promise<Booted> {
  const ns = await startSystemdNamespace();
  const files = await world.agentConfig(imds, 'systemd', '1s');
  if (Object.keys(extraConfig).length)
    writeFileSync(files.configFile, stringify({ ...parse(readFileSync(files.configFile, 'utf8')), ...extraConfig }));
  before?.(files);
  const agent = ns.spawn([process.execPath, AGENT_BIN, 'run', '-c', files.configFile], {
    env: agentEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  agent.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  agent.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  t.teardown(async () => {
    if (agent.exitCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    await ns.stop();
  });
  return { ns, files, agent, logs: () => output };
}
