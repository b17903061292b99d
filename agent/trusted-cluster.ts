// Leaf clusters (seed 000_*): the auth server holding the publisher lease
// takes the root cluster's trusted_cluster join token from SSM and creates
// Teleport's trusted_cluster resource with `tctl create -f`. The resource is
// a typed value rendered with the yaml library and handed to tctl on stdin:
// it carries the token, so it is never written to disk and never logged.
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { ClusterSettings, RoleMapping } from '../contract/model';

/** Teleport's trusted_cluster resource, version v2 (TrustedClusterV2 in Teleport's api/types). */
export interface TrustedClusterResource {
  kind: 'trusted_cluster';
  version: 'v2';
  /** The name must be the root cluster's cluster_name. */
  metadata: { name: string };
  spec: {
    enabled: boolean;
    /** The root's join token of type trusted_cluster. */
    token: string;
    /** host:port of the root's web proxy, where the leaf validates the token. */
    web_proxy_addr: string;
    /** host:port of the root's reverse tunnel, which the leaf dials. */
    tunnel_addr: string;
    role_map: Array<{ remote: string; local: string[] }>;
  };
}

/** What a leaf cluster's settings say about its root. */
export interface LeafTrust {
  rootClusterName: string;
  rootWebProxyAddr: string;
  rootTunnelAddr: string;
  roleMap: RoleMapping[];
}

/** The root a leaf trusts, or undefined for a standalone or root cluster (or incomplete settings, refused at the REST call). */
export function leafTrustOf(cluster: Partial<ClusterSettings>): LeafTrust | undefined {
  if (cluster.trustRole !== 'leaf' || !cluster.rootClusterName || !cluster.rootWebProxyAddr) return undefined;
  return {
    rootClusterName: cluster.rootClusterName,
    rootWebProxyAddr: cluster.rootWebProxyAddr,
    // Teleport's own default: the tunnel shares the web port (TLS routing).
    rootTunnelAddr: cluster.rootTunnelAddr ?? cluster.rootWebProxyAddr,
    roleMap: (cluster.rootRoleMap ?? []).map((m) => ({ remote: m.remote, local: [...m.local] })),
  };
}

export function trustedClusterResource(trust: LeafTrust, token: string): TrustedClusterResource {
  return {
    kind: 'trusted_cluster',
    version: 'v2',
    metadata: { name: trust.rootClusterName },
    spec: {
      enabled: true,
      token,
      web_proxy_addr: trust.rootWebProxyAddr,
      tunnel_addr: trust.rootTunnelAddr,
      role_map: trust.roleMap.map((m) => ({ remote: m.remote, local: [...m.local] })),
    },
  };
}

/** The YAML document `tctl create` reads; the yaml library quotes whatever needs quoting. */
export function renderTrustedCluster(resource: TrustedClusterResource): string {
  return stringify(resource, { lineWidth: 0 });
}

/** What is compared to decide whether to look at the resource again: a hash of the settings (rendered without a token). */
export function resourceHash(document: string): string {
  return createHash('sha256').update(document).digest('hex');
}
