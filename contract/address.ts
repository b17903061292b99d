// Host names, IP addresses and "host:port": one rule for the REST settings,
// the config files, the renderer's checks and the servers' listen addresses.

/** A DNS host name: labels of letters, digits and "-" (not at either end), up to 63 each, 253 in all. */
const HOST_NAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
/** An IPv6 literal without brackets: hex digits, ":" (at least one) and "." (an embedded IPv4). */
const IPV6_RE = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

/** "host:port" for JSON schemas of the config files: a host without ":" or whitespace, or [IPv6]. */
export const HOST_PORT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\s]+):\\d{1,5}$';

export const isHostName = (value: string): boolean => HOST_NAME_RE.test(value);
export const isIpv4 = (value: string): boolean => IPV4_RE.test(value);
export const isIpv6 = (value: string): boolean => IPV6_RE.test(value);
export const isHostOrIp = (value: string): boolean => isIpv4(value) || isHostName(value) || isIpv6(value);

/**
 * "host:port", "[IPv6]:port" or a bare host (an IPv6 address without
 * brackets included) as its host, without brackets, and its port when one
 * is given.
 */
export function parseHostPort(address: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(address);
  if (bracketed) return bracketed[2] === undefined ? { host: bracketed[1] } : { host: bracketed[1], port: Number(bracketed[2]) };
  const plain = /^([^:]*):(\d+)$/.exec(address);
  if (plain) return { host: plain[1], port: Number(plain[2]) };
  return { host: address };
}

/** Host part of "host:port" (IPv6 without its brackets); the address itself when it has no port. */
export const hostOf = (address: string): string => parseHostPort(address).host;

/** A listen address "host:port" ("[::1]:80" for IPv6) as its host and port; NaN when no port is given. */
export function splitHostPort(address: string): { host: string; port: number } {
  const { host, port } = parseHostPort(address);
  return { host, port: port ?? NaN };
}

/** "host:port" with IPv6 hosts put back in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Why `address` is not a usable "host:port" (host name, IPv4 or [IPv6], port 1-65535), or undefined. */
export function hostPortProblem(address: unknown): string | undefined {
  if (typeof address !== 'string' || address === '') return 'must be host:port, got nothing';
  const bracketed = /^\[([^\]]*)\]:(\d{1,5})$/.exec(address);
  const plain = /^([^:[\]]*):(\d{1,5})$/.exec(address);
  const m = bracketed ?? plain;
  if (!m) return `must be host:port, got ${JSON.stringify(address)}`;
  const hostOk = bracketed ? isIpv6(m[1]) : isIpv4(m[1]) || isHostName(m[1]);
  if (!hostOk) return `must be host:port with a valid host, got ${JSON.stringify(address)}`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port must be 1-65535, got ${JSON.stringify(address)}`;
  return undefined;
}

export const isHostPort = (address: string): boolean => hostPortProblem(address) === undefined;
