// A settings change rolled over a fleet of hosts (default 2 auth, 50 proxy,
// 948 nodes) at the default pace, against a real control server (a child
// process on SQLite). The hosts are the agents' real gRPC client without the
// rest of the agent: each enrolls, watches its assignment and, 1 to 3 s
// after a new generation reaches it, reports ready on it (Teleport's
// restart, simulated). Figures: time to complete, the most hosts of each
// group applying at once (from the rollout's own record, polled) next to its
// maxUnavailable, and the control server's CPU during the rollout.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlProcess, removeDir, restRequest, scratchDir } from '../test/support/harness';
import { CLUSTER } from '../test/support/world';
import { WatchingHost } from './watching-host';

export interface RolloutBenchOptions {
  auth: number;
  proxy: number;
  nodes: number;
  progress: (line: string) => void;
}

export interface RolloutBenchResult {
  hosts: number;
  completeMs: number;
  state: string;
  maxApplying: Record<string, number>;
  maxUnavailable: Record<string, number>;
  controlCpuSeconds: number;
  polls: number;
}

/** CPU seconds (user + system) of a process, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 (1-based) of the whole line: 12 and 13 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const HEARTBEAT_MS = 10_000;
const idOf = (i: number) => `i-0${i.toString(16).padStart(16, '0')}`;

export async function benchRollout(opts: RolloutBenchOptions): Promise<RolloutBenchResult> {
  const dir = scratchDir('bench-rollout');
  const control = new ControlProcess(join(dir, 'control'), ['--heartbeat-interval', `${HEARTBEAT_MS / 1000}s`]);
  const watching: WatchingHost[] = [];
  try {
    await control.start();
    const rest = (method: string, path: string, body?: unknown) =>
      restRequest({ port: control.restPort, ca: readFileSync(control.caFile, 'utf8'), token: control.adminToken }, method, path, body);
    await rest('PATCH', '/v1/settings', CLUSTER);
    const roles = [
      ...Array<string>(opts.auth).fill('auth'),
      ...Array<string>(opts.proxy).fill('proxy'),
      ...Array<string>(opts.nodes).fill('node'),
    ];
    const joinToken = readFileSync(control.joinTokenFile, 'utf8').trim();
    const caPem = readFileSync(control.caFile, 'utf8');
    const hosts = roles.map((role, i) => ({ id: idOf(i + 1), role }));
    opts.progress(`assigning and enrolling ${hosts.length} hosts`);
    for (let i = 0; i < hosts.length; i += 50) {
      await Promise.all(
        hosts.slice(i, i + 50).map(async (h) => {
          const put = await rest('PUT', `/v1/instances/${h.id}/assignment`, { role: h.role });
          if (put.status !== 200) throw new Error(`assign ${h.id}: ${put.status} ${JSON.stringify(put.body)}`);
          const host = new WatchingHost({
            instanceId: h.id,
            endpoint: control.grpcAddr,
            caPem,
            joinToken,
            heartbeatMs: HEARTBEAT_MS,
            // Teleport restarting: ready 1 to 3 s later.
            onGeneration: (_generation, report) => void setTimeout(() => void report().catch(() => undefined), 1000 + Math.random() * 2000),
          });
          watching.push(host);
          await host.start();
        }),
      );
      opts.progress(`enrolled ${Math.min(i + 50, hosts.length)} of ${hosts.length}`);
    }
    await new Promise((r) => setTimeout(r, 3000));
    const pid = control.proc!.pid!;
    const cpuBefore = cpuSeconds(pid);
    const started = Date.now();
    const patched = await rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' });
    if (patched.status !== 200) throw new Error(`PATCH /v1/settings: ${patched.status} ${JSON.stringify(patched.body)}`);
    const id = (await rest('GET', '/v1/rollouts?limit=1')).body.items[0].id as string;
    const maxApplying: Record<string, number> = { auth: 0, proxy: 0, other: 0 };
    let maxUnavailable: Record<string, number> = {};
    let state = 'running';
    let polls = 0;
    for (; Date.now() - started < 30 * 60_000; polls++) {
      const r = (await rest('GET', `/v1/rollouts/${id}`)).body;
      maxUnavailable = Object.fromEntries(Object.entries<{ maxUnavailable: number }>(r.groups).map(([g, c]) => [g, c.maxUnavailable]));
      for (const [g, c] of Object.entries<{ applying: number }>(r.groups)) maxApplying[g] = Math.max(maxApplying[g], c.applying);
      state = r.state;
      if (state !== 'running') break;
      if (polls % 20 === 0) opts.progress(`rollout ${r.currentWave ?? '-'}: ${r.hosts.ready}/${r.hosts.total} ready`);
      await new Promise((res) => setTimeout(res, 250));
    }
    const completeMs = Date.now() - started;
    return {
      hosts: hosts.length,
      completeMs,
      state,
      maxApplying,
      maxUnavailable,
      controlCpuSeconds: cpuSeconds(pid) - cpuBefore,
      polls,
    };
  } finally {
    for (const h of watching) h.close();
    await control.stop();
    removeDir(dir);
  }
}

export function printRollout(r: RolloutBenchResult): string {
  const groups = ['auth', 'proxy', 'other'].map((g) => `${g} ${r.maxApplying[g]} (max ${r.maxUnavailable[g]})`).join(', ');
  return [
    `rollout of a settings change over ${r.hosts} hosts (real control server, gRPC clients as agents, ready 1-3 s after a release):`,
    `  ${r.state} in ${(r.completeMs / 1000).toFixed(1)} s; most applying at once: ${groups}`,
    `  control server CPU during the rollout: ${r.controlCpuSeconds.toFixed(1)} s (${((r.controlCpuSeconds * 1000 * 100) / r.completeMs).toFixed(0)} % of one core)`,
  ].join('\n');
}
