// The fleet the rollout tests roll changes over (2 auth, 2 proxy, 3 nodes,
// whole agents in process mode or under systemd), and what an operator
// checks of it: the rollout through the REST API, each host's files, and
// the stand-in Teleport's own record of its starts and readiness
// (<data_dir>/standin-events.jsonl, see test/bin/teleport).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { ImdsEmulator } from '../emulators/imds';
import type { ChildProcess } from 'node:child_process';
import { startAgentProcess, type AgentFiles, type ControlProcess } from './harness';
import type { World } from './world';

export const FLEET_ROLES = ['auth', 'auth', 'proxy', 'proxy', 'node', 'node', 'node'];
const RANK: Record<string, number> = { auth: 0, proxy: 1, node: 2 };

export type FleetHost<B> = { id: string; role: string; files: AgentFiles; booted: B };

/**
 * Makes an instance per role, assigns it, boots its agent with `boot` (side
 * by side) and waits until every host is ready on its generation. The hosts
 * come back in the order a rollout reaches them: auth, proxy, node, within a
 * role by instance id (the plan's order).
 */
export async function bootFleet<B extends { files: AgentFiles }>(
  world: World,
  boot: (imds: ImdsEmulator) => Promise<B>,
  opts: { timeoutMs?: number; logs?: (b: B) => string; roles?: string[] } = {},
): Promise<FleetHost<B>[]> {
  const hosts = await Promise.all(
    (opts.roles ?? FLEET_ROLES).map(async (role) => {
      const imds = await world.instance();
      const id = imds.instance.instanceId;
      await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role });
      const booted = await boot(imds);
      return { id, role, files: booted.files, booted };
    }),
  );
  for (const h of hosts)
    await world.control
      .waitForInstance(h.id, converged, opts.timeoutMs ?? 90_000)
      .catch((err: Error) => Promise.reject(new Error(`${err.message}\n${opts.logs?.(h.booted) ?? ''}`)));
  return hosts.sort((a, b) => RANK[a.role] - RANK[b.role] || (a.id < b.id ? -1 : 1));
}

/** An instance (as GET /v1/instances/{id} shows it) that is ready on its newest generation. */
export const converged = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;
/**
 * An instance whose agent last reported Teleport ready. After a rollback a
 * host is served (and applies) an older generation than its newest, so its
 * fleet health stays `converging` although it is ready on what it is served.
 */
export const teleportReady = (i: any) => i.status?.state === 'ready' && i.status?.teleportReady === true;

export const teleportDataDir = (h: { files: AgentFiles }) => join(h.files.root, 'var/lib/teleport');
export const teleportYaml = (h: { files: AgentFiles }) => readFileSync(h.files.teleportConfig, 'utf8');
export const logSeverity = (h: { files: AgentFiles }) => parse(teleportYaml(h)).teleport.log.severity as string;

/** The stand-in's record of its starts, readiness, reloads and stops since `since` (ms). */
export function standinEvents(h: { files: AgentFiles }, since: number): Array<{ event: string; at: number }> {
  const file = join(teleportDataDir(h), 'standin-events.jsonl');
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  return lines.map((l) => JSON.parse(l)).filter((e) => e.at >= since);
}

/** From its next start on, the host's stand-in Teleport never becomes ready; the function returned undoes it. */
export function breakReadiness(h: { files: AgentFiles }): () => void {
  const knobs = join(teleportDataDir(h), 'standin.env');
  writeFileSync(knobs, 'TELEPORT_STANDIN_FAIL_READY=1\n');
  return () => rmSync(knobs, { force: true });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The rollouts through the REST API. */
export function rolloutsApi(control: ControlProcess, timeoutMs = 120_000) {
  const rest = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    control.rest(method, path, body, headers);
  let last: any;
  return {
    rest,
    /** The rollout started last. */
    newest: async () => (await rest('GET', '/v1/rollouts?limit=1')).body.items[0],
    /** GET /v1/rollouts/{id} once it is in one of `states`. */
    rolloutIn: (id: string, states: string[]) =>
      waitFor(
        `rollout ${id} in ${states.join('/')}`,
        async () => {
          last = (await rest('GET', `/v1/rollouts/${id}`)).body;
          return states.includes(last.state) ? last : undefined;
        },
        timeoutMs,
      ).catch((err: Error) => Promise.reject(new Error(`${err.message}; last seen: ${JSON.stringify(last)}`))),
  };
}

type Teardowns = { teardown(fn: () => Promise<void> | void): void };
/** A host whose agent runs as a process (process mode), stopped at `t`'s teardown. */
export type ProcessHost = FleetHost<{ files: AgentFiles; proc: ChildProcess }>;

/** Boots an agent process (process mode) for `imds`, stopped at `t`'s teardown. */
export async function bootProcessAgent(t: Teardowns, world: World, imds: ImdsEmulator) {
  const files = await world.agentConfig(imds, 'process');
  const { proc } = startAgentProcess(t, files);
  return { files, proc };
}

/** One more instance assigned `role` ahead of its boot, its agent started as a process (not waited for). */
export async function bootProcessHost(t: Teardowns, world: World, role: string): Promise<ProcessHost> {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role });
  const booted = await bootProcessAgent(t, world, imds);
  return { id, role, files: booted.files, booted };
}
