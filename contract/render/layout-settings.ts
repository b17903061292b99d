// The layouts of issue 15 as plain renderer inputs: FIPS, PROXY protocol,
// the proxy's web port and the load balancer in front of it, the cache, and
// teleport.yaml fragments. They join the single declaration of cluster
// settings and assignment options in contract/ once it exists; until then
// the renderer reads them here, beside the settings it already knows.
import type { CacheConfig, ProxyProtocolMode } from './teleport-config';
import { TELEPORT_PORTS } from './teleport-config';

/** A piece of teleport.yaml merged into the rendered config (see fragments.ts). */
export type ConfigFragment = Record<string, unknown>;

export const CACHE_SETTINGS = ['in-memory', 'off'] as const;
export type CacheSetting = (typeof CACHE_SETTINGS)[number];

export interface LayoutSettings {
  /**
   * Teleport in FIPS mode: `teleport start --fips` with the Enterprise FIPS
   * build, local authentication off (Teleport refuses to start in FIPS mode
   * otherwise). Needs enterprise.
   */
  fips?: boolean;
  /** proxy_protocol of auth and proxy servers behind a load balancer that sends (on) or never sends (off) PROXY headers. */
  proxyProtocol?: ProxyProtocolMode;
  /**
   * The port of the proxy's web listener: 443 on a bare host (users reach it
   * directly), 3080 behind a load balancer (Teleport's AMI). Default 443 with
   * TLS routing and a Let's Encrypt certificate, 3080 otherwise.
   */
  proxyWebListenPort?: number;
  /**
   * A load balancer forwards proxyPublicAddr to the proxies, so the public
   * port may differ from the web listener's. Without one, the public address
   * must name the port the proxy listens on. ACM implies one.
   */
  behindLoadBalancer?: boolean;
  /** teleport.cache of auth servers and proxies: in-memory (Teleport's AMI writes it for proxies) or off. */
  cache?: CacheSetting;
  /** teleport.yaml merged into every host's config (after the assignment's own fragment is applied on top). */
  configFragment?: ConfigFragment;
}

export interface AssignmentLayoutOptions {
  /** teleport.yaml merged into this instance's config, over the cluster's fragment. */
  configFragment?: ConfigFragment;
}

/** Where a problem or a warning comes from: a setting, and what to change. */
export interface RenderWarning {
  path: string;
  message: string;
  setting?: string;
}

type ProxyLayout = Pick<LayoutSettings, 'proxyWebListenPort' | 'behindLoadBalancer'> & {
  proxyListenerMode?: 'separate' | 'multiplex';
  tlsSource?: 'letsencrypt' | 'acm';
};

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
export function cacheConfigOf(setting: CacheSetting): CacheConfig {
  return setting === 'off' ? { enabled: false } : { type: setting };
}
