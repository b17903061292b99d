// What `serve` checks before it loads the servers: the data directory's
// modes, a store that belongs with the directory (refused before anything is
// written), the cluster identity, and the key pairs. Kept apart from
// server.ts so that a refusal costs a fraction of a second, not the loading
// of gRPC, fastify and the AWS SDK.
import type { Logger } from '../contract/log';
import { reconcileClusterIdentity, refuseMissingStore, type ClusterIdentity } from './cluster-identity';
import type { ControlConfig } from './config';
import { secureDataDir } from './data-dir';
import { openStore } from './store/open';
import type { RecordStore } from './store/record-store';
import { loadTlsMaterial, type TlsMaterial } from './tls-material';

export interface StartOptions {
  /** Begin a new cluster on an empty store even though the data directory holds one (--force-new-cluster). */
  forceNewCluster?: boolean;
}

export interface OpenedDataDir {
  store: RecordStore;
  identity: ClusterIdentity;
  tls: TlsMaterial;
  /** With ca.source ssm: the join token every replica accepts (otherwise the server reads its file). */
  bootstrapToken?: string;
}

export async function openDataDir(config: ControlConfig, log: Logger, options: StartOptions = {}): Promise<OpenedDataDir> {
  const forceNewCluster = options.forceNewCluster ?? false;
  secureDataDir(config, log);
  // A SQLite file missing beside a cluster's files is refused before opening creates it.
  if (!config.postgres) refuseMissingStore(config, forceNewCluster);
  const store = await openStore(config, log);
  try {
    const identity = await reconcileClusterIdentity(store, config, forceNewCluster, log);
    const source = config.ca.source;
    if (source.kind === 'ssm') {
      // The AWS SDK only for replicas that share their CA through SSM.
      const { loadSharedClusterIdentity } = await import('./cluster-ca-ssm.js');
      return { store, identity, ...(await loadSharedClusterIdentity(source.prefix, config, log, identity.fresh)) };
    }
    const tls = await loadTlsMaterial(config, log, identity.fresh);
    return { store, identity, tls };
  } catch (err) {
    await store.close();
    throw err;
  }
}
