// The cluster's identity: an id made at first start, kept both in the store
// and in <data_dir>/cluster-id. With PostgreSQL and the CA in SSM the
// database's id is the cluster's: a new replica (no file yet) takes it, and
// replicas starting together on an empty database agree on the first one
// recorded. A store that is missing, empty, or from
// another cluster beside the data directory's keys and tokens would start a
// brand-new control plane and leave the fleet unknown to it; the server
// refuses that and says which file is wrong and how to restore it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../contract/files';
import type { Logger } from '../contract/log';
import type { ControlConfig } from './config';
import { dataDirFiles, existingState, FileExistsError, restoreHint, storeHasData, writeNewFile } from './data-dir';
import type { RecordStore } from './store/record-store';

export const FORCE_NEW_CLUSTER_FLAG = '--force-new-cluster';

/** The server must not start on this data directory as it is. */
export class StartRefused extends Error {}

export interface ClusterIdentity {
  clusterId: string;
  /**
   * Nothing was issued from this store yet (no API token, no instance): a
   * first start, one forced, or one that stopped half-way. Only then may a
   * missing CA be generated.
   */
  fresh: boolean;
}

const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The id in the cluster-id file; undefined when there is no file. */
function readIdFile(path: string, dataDir: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const id = text.trim();
  if (!ID_PATTERN.test(id)) throw new StartRefused(`${path} does not hold a cluster id (a UUID); it is damaged: ${restoreHint(dataDir)}`);
  return id;
}

/**
 * Before the store is opened (opening creates it): a store with no data in a
 * directory that already holds a cluster's files is refused, unless a new
 * cluster is started on purpose.
 */
export function refuseMissingStore(config: ControlConfig, forceNewCluster: boolean): void {
  if (storeHasData(config.storePath) || forceNewCluster) return;
  refuseEmptyStore(config, 'is missing or empty');
}

/** A store with nothing in it beside a cluster's files: refused, naming both and the two ways on. */
function refuseEmptyStore(config: ControlConfig, what: string): void {
  const state = existingState(config);
  if (!state.length) return;
  throw new StartRefused(
    `the database ${config.storePath} ${what}, but this data directory already holds a cluster (${state.join(', ')}). ` +
      'Starting would create a new control plane that knows none of the fleet. ' +
      `To recover, ${restoreHint(config.dataDir)}. To begin a new cluster on purpose (every agent enrolls again), ` +
      `start once with ${FORCE_NEW_CLUSTER_FLAG}`,
  );
}

/**
 * Writes the cluster id the store holds into the data directory of a
 * replica joining it: never over another id (replicas sharing a directory
 * write the same one).
 */
function placeIdFile(path: string, clusterId: string, dataDir: string): void {
  try {
    writeNewFile(path, clusterId + '\n', 0o600);
  } catch (err) {
    if (!(err instanceof FileExistsError)) throw err;
    const there = readIdFile(path, dataDir);
    if (there !== clusterId)
      throw new StartRefused(`${path} says cluster ${there}, while the database belongs to cluster ${clusterId}. ${restoreHint(dataDir)}`);
  }
}

/**
 * A replica with no cluster-id file on a PostgreSQL database that has one:
 * a new replica of that cluster. It takes the database's id, when its CA
 * and join token come from SSM (checked against it there): otherwise its
 * data directory may hold keys of another cluster.
 */
async function joinCluster(store: RecordStore, config: ControlConfig, clusterId: string, log: Logger): Promise<ClusterIdentity> {
  const files = dataDirFiles(config);
  placeIdFile(files.clusterId, clusterId, config.dataDir);
  log.info({ clusterId, file: files.clusterId }, "joined the database's cluster as a new replica");
  return { clusterId, fresh: !(await store.hasRecords()) };
}

/** Whether a replica with no cluster-id file may take the database's: PostgreSQL, with the CA from SSM. */
const joinsFromDatabase = (config: ControlConfig): boolean => !!config.postgres && config.ca.source.kind === 'ssm';

/** Checks that the store and the data directory belong to the same cluster; records a new identity at first start. */
export async function reconcileClusterIdentity(
  store: RecordStore,
  config: ControlConfig,
  forceNewCluster: boolean,
  log: Logger,
): Promise<ClusterIdentity> {
  const files = { ...dataDirFiles(config), store: config.postgres?.url ?? config.storePath };
  const inFile = readIdFile(files.clusterId, config.dataDir);
  const inStore = await store.clusterId();
  if (inStore && inFile) {
    if (inStore === inFile) return { clusterId: inStore, fresh: !(await store.hasRecords()) };
    throw new StartRefused(
      `the database ${files.store} belongs to cluster ${inStore}, but ${files.clusterId} says ${inFile}: ` +
        `the two come from different clusters (or backups). ${restoreHint(config.dataDir)}`,
    );
  }
  if (inStore && !inFile) {
    if (joinsFromDatabase(config)) return joinCluster(store, config, inStore, log);
    throw new StartRefused(
      `${files.clusterId} is missing, while the database ${files.store} belongs to cluster ${inStore}: ` +
        `the rest of this data directory may be from another cluster. ${restoreHint(config.dataDir)}; ` +
        `or, if you know this database and these keys belong together, write "${inStore}" into ${files.clusterId}`,
    );
  }
  const hasRecords = await store.hasRecords();
  if (!forceNewCluster) {
    if (inFile)
      throw new StartRefused(
        `the database ${files.store} holds no cluster identity, but ${files.clusterId} says cluster ${inFile}: ` +
          `the database is not this cluster's (empty, replaced, or from an older backup). ${restoreHint(config.dataDir)}. ` +
          `To begin a new cluster on purpose (every agent enrolls again), start once with ${FORCE_NEW_CLUSTER_FLAG}`,
      );
    if (!hasRecords) refuseEmptyStore(config, 'is empty');
  }
  if (inFile) {
    const clusterId = randomUUID();
    await store.recordClusterId(clusterId, Date.now());
    await writeFileAtomic(files.clusterId, clusterId + '\n', { mode: 0o600 });
    log.warn({ clusterId, previous: inFile, file: files.clusterId }, `started a new cluster on purpose (${FORCE_NEW_CLUSTER_FLAG})`);
    return { clusterId, fresh: !hasRecords };
  }
  // Replicas starting together on an empty database: the first id recorded is the cluster's.
  const candidate = randomUUID();
  const clusterId = await store.claimClusterId(candidate, Date.now());
  if (clusterId !== candidate) {
    if (joinsFromDatabase(config)) return joinCluster(store, config, clusterId, log);
    throw new StartRefused(
      `another server started cluster ${clusterId} on the database ${files.store} at the same time as this one. ` +
        'Servers sharing a database share one CA: give every replica ca.source ssm:/PREFIX (docs/HA.md), then start this one again',
    );
  }
  writeNewFile(files.clusterId, clusterId + '\n', 0o600);
  if (hasRecords && !forceNewCluster) {
    // A data directory from a release before identities: this is its cluster.
    log.info({ clusterId, file: files.clusterId }, 'recorded the identity of the existing cluster');
    return { clusterId, fresh: false };
  }
  log.info({ clusterId, file: files.clusterId }, 'started a new cluster');
  return { clusterId, fresh: !hasRecords };
}
