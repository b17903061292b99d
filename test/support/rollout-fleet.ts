// A small fleet for the rollout tests: a world (test/support/world.ts) with
// agents in process mode, each supervising the stand-in teleport, which
// records its starts and readiness in <data_dir>/standin-events.jsonl; and
// the polls those tests share.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { ChildProcess } from 'node:child_process';
import { startAgentProcess, type AgentFiles } from './harness';
import type { World } from './world';

export type Host = { id: string; role: string; files: AgentFiles; proc: ChildProcess };

/**
 * Starts one agent per role (assigned before it boots, or with `tags` and no
 * assignment when `assign` is false), waits until all are ready, and returns
 * them in the order a rollout reaches them: auth, proxy, node; within a role
 * by instance id (the plan's order).
 */
export async function startFleet(
  t: { teardown(fn: () => Promise<void> | void): void },
  world: World,
  roles: string[],
  options: { tags?: Record<string, string> } = {},
): Promise<Host[]> {
  const hosts: Host[] = [];
  for (const role of roles) hosts.push(await bootHost(t, world, role, options.tags));
  for (const h of hosts)
    await world.control.waitForInstance(h.id, (i) => i.health === 'ready' && i.appliedGeneration === i.generation, 90_000);
  const rank = { auth: 0, proxy: 1, node: 2 } as Record<string, number>;
  return hosts.sort((a, b) => rank[a.role] - rank[b.role] || (a.id < b.id ? -1 : 1));
}

/** One more instance assigned `role` ahead of its boot, and its agent started (not waited for). */
export async function bootHost(
  t: { teardown(fn: () => Promise<void> | void): void },
  world: World,
  role: string,
  tags?: Record<string, string>,
): Promise<Host> {
  const imds = await world.instance(tags ? { tags } : {});
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role });
  const files = await world.agentConfig(imds, 'process');
  const { proc } = startAgentProcess(t, files);
  return { id, role, files, proc };
}

export const dataDir = (n: { files: AgentFiles }) => join(n.files.root, 'var/lib/teleport');
/** The log severity in the host's teleport.yaml (what a settings change in these tests alters). */
export const severity = (n: { files: AgentFiles }) => parse(readFileSync(n.files.teleportConfig, 'utf8')).teleport.log.severity as string;

export function standinEvents(n: { files: AgentFiles }, since: number): Array<{ event: string; at: number }> {
  const file = join(dataDir(n), 'standin-events.jsonl');
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  return lines.map((l) => JSON.parse(l)).filter((e) => e.at >= since);
}

/** Polls `fn` until it returns a value (generous deadline: the machine is shared and loaded). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The REST calls the rollout tests make, as admin. */
export function rolloutCalls(world: World) {
  const rest = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    world.control.rest(method, path, body, headers);
  return {
    rest,
    rolloutIn: (id: string, states: string[]) =>
      waitFor(`rollout ${id} in ${states.join('/')}`, async () => {
        const res = await rest('GET', `/v1/rollouts/${id}`);
        return states.includes(res.body.state) ? res.body : undefined;
      }),
    newest: async () => (await rest('GET', '/v1/rollouts?limit=1')).body.items[0],
  };
}
