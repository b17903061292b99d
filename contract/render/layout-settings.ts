// What the renderer derives from the layout settings of issue 15 (declared
// in contract/settings.ts): the load balancer in front of the proxies, the
// proxy's web port and the cache.
import type { ClusterSettings } from '../settings';
import type { CacheConfig } from './teleport-config';
import { TELEPORT_PORTS } from './teleport-config';

/** A piece of teleport.yaml merged into the rendered config (see fragments.ts). */
export type ConfigFragment = Record<string, unknown>;

/** Something a preview shows but does not refuse: a fragment key teleboot does not know. */
export interface RenderWarning {
  path: string;
  message: string;
  setting?: string;
}

type ProxyLayout = Pick<ClusterSettings, 'proxyWebListenPort' | 'behindLoadBalancer' | 'proxyListenerMode' | 'tlsSource'>;

/** A load balancer in front of the proxies: declared, or implied by ACM (its certificate lives on the balancer). */
export function hasLoadBalancer(c: ProxyLayout): boolean {
  return c.behindLoadBalancer === true || c.tlsSource === 'acm';
}

/**
 * The proxy's web port. TLS routing that terminates its own (Let's Encrypt)
 * TLS takes 443, where clients arrive; everything else keeps Teleport's 3080,
 * where the AMI's load balancers forward to.
 */
export function webListenPortOf(c: ProxyLayout): number {
  if (c.proxyWebListenPort !== undefined) return c.proxyWebListenPort;
  const multiplex = c.proxyListenerMode === 'multiplex';
  return multiplex && c.tlsSource !== 'acm' ? TELEPORT_PORTS.proxyTlsRouting : TELEPORT_PORTS.proxyWeb;
}

/** teleport.cache for a cache setting. */
export function cacheConfigOf(setting: NonNullable<ClusterSettings['cache']>): CacheConfig {
  return setting === 'off' ? { enabled: false } : { type: setting };
}
