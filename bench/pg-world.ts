// The benchmark world on PostgreSQL: two teleboot-control replicas on one
// throwaway PostgreSQL cluster, sharing one cluster identity (the CA in the
// SSM emulator, as docs/HA.md sets replicas up), beside the same S3 and SSM
// as the SQLite world. Replica A is the world's control server; B is the
// second process on the same data directory (the same CA file and join token).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AWS_ENV, ControlProcess, removeDir, scratchDir } from '../test/support/harness';
import { PgCluster } from '../test/support/postgres';
import type { World, WorldOptions } from '../test/support/world';

export interface PgWorld {
  world: World;
  /** [A, B]: A is world.control. */
  replicas: ControlProcess[];
  cluster: PgCluster;
  /** CPU seconds (user + system) the PostgreSQL server's processes used so far, exited backends included. */
  databaseCpuSeconds: () => number;
  close(): Promise<void>;
}

/** utime, stime, cutime, cstime of /proc/PID/stat, and the parent pid. */
function procTimes(pid: number): { ppid: number; own: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), own: (Number(f[11]) + Number(f[12])) / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
  } catch {
    return undefined; // exited meanwhile
  }
}

/** The postmaster and its live backends; exited backends are in the postmaster's children times. */
export function postgresCpuSeconds(cluster: PgCluster): number {
  const postmaster = Number(readFileSync(join(cluster.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const root = procTimes(postmaster);
  if (!root) return NaN;
  let total = root.own + root.children;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const t = procTimes(Number(entry));
    if (t?.ppid === postmaster) total += t.own;
  }
  return total;
}

/**
 * Two replicas on a fresh database. `openWorld` is the bench's own (it
 * tracks worlds for cleanup); `controlArgs` are added to both replicas.
 */
export async function openPgWorld(
  name: string,
  controlArgs: string[],
  openWorld: (name: string, opts: WorldOptions) => Promise<World>,
  closeWorld: (world: World) => Promise<void>,
): Promise<PgWorld> {
  const cluster = await PgCluster.create();
  const secrets = scratchDir(`${name}-secret`);
  const replicas: ControlProcess[] = [];
  let world: World | undefined;
  const close = async () => {
    await Promise.all(replicas.slice(1).map((r) => r.stop()));
    if (world) await closeWorld(world);
    await cluster.destroy();
    removeDir(secrets);
  };
  try {
    const db = await cluster.createDatabase();
    const passwordFile = join(secrets, 'db-password');
    writeFileSync(passwordFile, db.password, { mode: 0o600 });
    const args = [...controlArgs, '--store', db.url, '--ca-source', `ssm:/teleboot/${name}`];
    world = await openWorld(name, {
      controlArgs: args,
      controlConfig: ({ ssmEndpoint }) => ({
        aws: { region: AWS_ENV.AWS_REGION, ssm_endpoint: ssmEndpoint },
        ca: { kms_key_id: 'alias/teleboot-ca' },
        store: { password_file: passwordFile },
      }),
    });
    replicas.push(world.control);
    // startWorld wrote control.yaml into its directory and gave it to A with --config.
    const b = new ControlProcess(world.control.dataDir, [...args, '--config', join(world.dir, 'control.yaml')], AWS_ENV);
    replicas.push(b);
    await b.start();
    return { world, replicas, cluster, databaseCpuSeconds: () => postgresCpuSeconds(cluster), close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}
