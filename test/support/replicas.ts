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
import { AWS_ENV, ControlProcess, removeDir, scratchDir } from './harness';
import { testCluster, type PgCluster, type PgDatabase } from './postgres';

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

/**
 * `count` replicas started one after the other (the first makes the cluster), stopped at the test's end;
 * `args` added to each command line, `config` to their control.yaml.
 */
export async function startReplicas(
  t: Test,
  count: number,
  { args: extraArgs = [], config: extraConfig = {} }: { args?: string[]; config?: Record<string, unknown> } = {},
): Promise<Replicas> {
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
  // One data directory for all, as replicas sharing one cluster identity.
  const dataDir = join(dir, 'control');
  const args = ['--store', db.url, '--config', config, '--ca-source', `ssm:/teleboot/${randomUUID().slice(0, 8)}`, ...extraArgs];
  const replicas = Array.from({ length: count }, () => new ControlProcess(dataDir, args, { ...AWS_ENV, PGPASSWORD: db.password }));
  t.teardown(() => Promise.all(replicas.map((r) => r.stop())));
  for (const r of replicas) await r.start();
  return {
    replicas,
    cluster,
    db,
    ssm,
    dir,
    caPem: readFileSync(replicas[0].caFile, 'utf8'),
    joinToken: readFileSync(replicas[0].joinTokenFile, 'utf8').trim(),
  };
}
