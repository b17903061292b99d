// Where to connect and with what: each of address, CA file and token comes
// from its flag, else its environment variable, else the profile written by
// `teleboot login`, else the default (address only).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { usageError } from './exit-codes';
import { profilePath, readProfile, type Profile } from './profile';

export const DEFAULT_ADDR = 'https://127.0.0.1:7080';

export const ENV = { addr: 'TELEBOOT_ADDR', caCert: 'TELEBOOT_CACERT', token: 'TELEBOOT_TOKEN' } as const;

export interface ConnectionFlags {
  addr?: string;
  caCert?: string;
  token?: string;
}

export interface Connection {
  /** https://host:port, no trailing slash. */
  addr: string;
  caCert?: { path: string; pem: string; from: string };
  token?: { value: string; from: string };
}

/** "host:port" or "https://host:port[/]" -> "https://host:port"; plain HTTP is refused (the API is HTTPS only). */
export function normalizeAddr(raw: string, from: string): string {
  const text = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw usageError(`${from}: "${raw}" is not an address; give host:port or https://host:port, e.g. ${DEFAULT_ADDR}`);
  }
  if (url.protocol !== 'https:')
    throw usageError(
      `${from}: "${raw}" uses ${url.protocol.slice(0, -1)}; the control server's REST API is HTTPS only (https://host:port)`,
    );
  if (url.pathname !== '/' || url.search || url.hash)
    throw usageError(`${from}: "${raw}" has a path; give only https://host:port (the REST listener, rest_listen)`);
  return url.origin;
}

function pick(flag: string | undefined, flagName: string, envName: string, fromProfile: string | undefined, env: NodeJS.ProcessEnv) {
  if (flag !== undefined) return { value: flag, from: flagName };
  const fromEnv = env[envName];
  if (fromEnv) return { value: fromEnv, from: envName };
  if (fromProfile !== undefined) return { value: fromProfile, from: `the profile ${profilePath(env)}` };
  return undefined;
}

/** `useProfile` false: flags, environment and defaults only (login, which writes the profile). */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, useProfile = true): Connection {
  const needProfile = useProfile && (flags.addr === undefined || flags.caCert === undefined || flags.token === undefined);
  const profile: Profile | undefined = needProfile ? readProfile(profilePath(env)) : undefined;
  const addr = pick(flags.addr, '--addr', ENV.addr, profile?.addr, env);
  const ca = pick(flags.caCert, '--ca-cert', ENV.caCert, profile?.caCert, env);
  const token = pick(flags.token, '--token', ENV.token, profile?.token, env);
  return {
    addr: addr ? normalizeAddr(addr.value, addr.from) : DEFAULT_ADDR,
    ...(ca ? { caCert: readCa(ca.value, ca.from) } : {}),
    ...(token ? { token: { value: token.value.trim(), from: token.from } } : {}),
  };
}

function readCa(file: string, from: string): { path: string; pem: string; from: string } {
  const path = resolve(file);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (err as Error).message;
    throw usageError(`the CA file ${path} (from ${from}) ${why}; pass --ca-cert with the control server's tls/ca.pem`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw usageError(`the CA file ${path} (from ${from}) holds no PEM certificate; pass --ca-cert with the control server's tls/ca.pem`);
  return { path, pem, from };
}
