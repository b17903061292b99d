// The profile `teleboot login` writes: the control server's address, the CA
// file that verifies it, and the API token. Mode 0600 in a 0700 directory,
// because it holds a bearer token; written atomically.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../contract/files';
import { usageError } from './exit-codes';

export interface Profile {
  addr: string;
  /** Absolute path of the CA certificate (PEM); absent: the system's CAs. */
  caCert?: string;
  token: string;
}

/** $XDG_CONFIG_HOME/teleboot/profile.json, else ~/.config/teleboot/profile.json. */
export function profilePath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && xdg.startsWith('/') ? xdg : join(env.HOME || homedir(), '.config');
  return join(base, 'teleboot', 'profile.json');
}

export function readProfile(path = profilePath()): Profile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw usageError(`cannot read the profile ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw usageError(`the profile ${path} is not valid JSON; run "teleboot login" again to rewrite it`);
  }
  const p = parsed as Partial<Profile>;
  if (typeof p !== 'object' || p === null || typeof p.addr !== 'string' || typeof p.token !== 'string')
    throw usageError(`the profile ${path} lacks "addr" or "token"; run "teleboot login" again to rewrite it`);
  if (p.caCert !== undefined && typeof p.caCert !== 'string') throw usageError(`the profile ${path}: "caCert" must be a file path`);
  return { addr: p.addr, token: p.token, ...(p.caCert ? { caCert: p.caCert } : {}) };
}

export async function writeProfile(profile: Profile, path = profilePath()): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, `${JSON.stringify(profile, null, 2)}\n`, { mode: 0o600 });
}

export function removeProfile(path = profilePath()): boolean {
  try {
    rmSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
