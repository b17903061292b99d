// Several teleboot-control replicas on one throwaway PostgreSQL, sharing one
// cluster identity (the CA and the join token from SSM, in the SSM
// emulator), each its own process with its own ports, as behind a load
// balancer. Callers skip first with postgresUnavailable()'s reason.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { startSsmEmulator, type SsmEmulator } from '../emulators/ssm';
import { AWS_ENV, ControlProcess, removeDir, scratchDir, until } from './harness';
import { testCluster, type PgCluster, type PgDatabase } from './postgres';
import { RolloutAgent } from './rollout-agent';

export interface Replicas {
  replicas: ControlProcess[];
  cluster: PgCluster;
  db: PgDatabase;
  ssm: SsmEmulator;
  /** A scratch directory removed at the end of the test. */
  dir: string;
  caPem: string;
  joinToken: string;
}

export interface ReplicaSite {
  cluster: PgCluster;
  db: PgDatabase;
  ssm: SsmEmulator;
  /** A scratch directory removed at the end of the test. */
  dir: string;
  /** A replica (not started) with its own data directory, stopped at the test's end. */
  replica(dataDir: string): ControlProcess;
}

/**
 * What replicas share: a throwaway PostgreSQL database, the SSM emulator
 * holding the cluster CA and join token, and one control.yaml; `args`
 * added to each command line, `config` to control.yaml.
 */
export async function replicaSite(
  t: Test,
  { args: extraArgs = [], config: extraConfig = {} }: { args?: string[]; config?: Record<string, unknown> } = {},
): Promise<ReplicaSite> {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const ssm = await startSsmEmulator();
  t.teardown(() => ssm.close());
  const dir = scratchDir('replicas');
  t.teardown(() => removeDir(dir));
  const config = join(dir, 'control.yaml');
  writeFileSync(
    config,
    stringify({ aws: { region: 'us-east-1', ssm_endpoint: ssm.endpoint }, ca: { kms_key_id: 'alias/teleboot-ca' }, ...extraConfig }),
  );
  const args = ['--store', db.url, '--config', config, '--ca-source', `ssm:/teleboot/${randomUUID().slice(0, 8)}`, ...extraArgs];
  const replica = (dataDir: string) => {
    const r = new ControlProcess(dataDir, args, { ...AWS_ENV, PGPASSWORD: db.password });
    t.teardown(() => r.stop());
    return r;
  };
  return { cluster, db, ssm, dir, replica };
}

/** `count` replicas started one after the other (the first makes the cluster), stopped at the test's end. */
export async function startReplicas(
  t: Test,
  count: number,
  options: { args?: string[]; config?: Record<string, unknown> } = {},
): Promise<Replicas> {
  const site = await replicaSite(t, options);
  // One data directory for all, as replicas sharing one cluster identity.
  const dataDir = join(site.dir, 'control');
  const replicas = Array.from({ length: count }, () => site.replica(dataDir));
  for (const r of replicas) await r.start();
  return {
    replicas,
    cluster: site.cluster,
    db: site.db,
    ssm: site.ssm,
    dir: site.dir,
    caPem: readFileSync(replicas[0].caFile, 'utf8'),
    joinToken: readFileSync(replicas[0].joinTokenFile, 'utf8').trim(),
  };
}

/** Rows of one query on the replicas' database (a connection of its own, closed after). */
export async function queryDb(fleet: { cluster: PgCluster; db: PgDatabase }, sql: string, params: unknown[] = []): Promise<any[]> {
  const client = fleet.cluster.connect(fleet.db.name);
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** The instance id of fleet host number `i`. */
export const instanceIdOf = (i: number): string => `i-0${(i + 1).toString(16).padStart(16, '0')}`;

/** One role per host: `shape` counts per role, in that order. */
export const fleetRoles = (shape: Record<string, number>): string[] =>
  Object.entries(shape).flatMap(([role, count]) => Array<string>(count).fill(role));

/**
 * A fleet of lightweight agents (support/rollout-agent.ts), host `i` with
 * role `roles[i]`: each assigned through the first replica, then enrolled
 * knowing every replica (control.endpoints), host `i` starting at replica
 * `i % replicas`. Closed at the test's end.
 */
export async function startAgents(
  t: Test,
  fleet: Replicas,
  roles: string[],
  options: { applyMs: [number, number]; heartbeatMs?: number },
): Promise<RolloutAgent[]> {
  const endpoint = { endpoints: fleet.replicas.map((r) => r.grpcAddr), caPem: fleet.caPem };
  const agents: RolloutAgent[] = [];
  t.teardown(() => agents.forEach((a) => a.close()));
  for (let i = 0; i < roles.length; i += 25) {
    await Promise.all(
      roles.slice(i, i + 25).map(async (role, k) => {
        const id = instanceIdOf(i + k);
        const put = await fleet.replicas[0].rest('PUT', `/v1/instances/${id}/assignment`, { role });
        if (put.status !== 200) throw new Error(`assigning ${id}: ${put.status} ${JSON.stringify(put.body)}`);
        const agent = new RolloutAgent(id, endpoint, { applyMs: options.applyMs, startAt: (i + k) % fleet.replicas.length });
        agents.push(agent);
        await agent.start(fleet.joinToken, options.heartbeatMs);
      }),
    );
  }
  return agents;
}

export interface RolloutWatch {
  /** The rollout as last read, no longer running. */
  final: any;
  /** Per group: the most hosts seen applying at one poll, and the group's maxUnavailable. */
  maxApplying: Record<string, number>;
  pace: Record<string, number>;
}

/** Polls GET /v1/rollouts/{id} through `replica` until it stops running; `onPoll` sees each reading. */
export async function pollRollout(
  replica: ControlProcess,
  id: string,
  timeoutMs: number,
  onPoll: (rollout: any) => Promise<void> | void = () => undefined,
): Promise<RolloutWatch> {
  const maxApplying: Record<string, number> = {};
  const pace: Record<string, number> = {};
  const final = await until(
    `rollout ${id} to finish`,
    async () => {
      const res = await replica.rest('GET', `/v1/rollouts/${id}`);
      if (res.status !== 200) return false;
      for (const [group, counts] of Object.entries<{ applying: number; maxUnavailable: number }>(res.body.groups)) {
        maxApplying[group] = Math.max(maxApplying[group] ?? 0, counts.applying);
        pace[group] = counts.maxUnavailable;
      }
      await onPoll(res.body);
      return res.body.state !== 'running' && res.body;
    },
    timeoutMs,
  );
  return { final, maxApplying, pace };
}

/**
 * Per group, the most hosts applying at once, from the hosts' release and
 * finish times (the server's clock): at each release, the hosts released
 * by then and not yet finished.
 */
export function maxApplyingFromHosts(hosts: Array<{ group: string; releasedAt?: number; finishedAt?: number }>): Record<string, number> {
  const most: Record<string, number> = {};
  for (const h of hosts) {
    if (h.releasedAt === undefined) continue;
    const at = h.releasedAt;
    const applying = hosts.filter(
      (o) => o.group === h.group && o.releasedAt !== undefined && o.releasedAt <= at && (o.finishedAt === undefined || o.finishedAt > at),
    ).length;
    most[h.group] = Math.max(most[h.group] ?? 0, applying);
  }
  return most;
}
