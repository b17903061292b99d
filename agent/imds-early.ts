// The first thing a packaged agent runs, before the rest of its bundle has
// loaded: it starts the instance metadata reads every boot begins with
// (IMDSv2 session token, then the identity document, hostname and tag keys),
// so that they are under way, or done, while the agent's modules load.
// ImdsIdentitySource takes them (takeEarlyImds) and reads anything else, and
// anything that failed here, with the AWS SDK's client as before. The
// requests are the ones the SDK sends (same paths, headers, token TTL).
//
// This module must stay small and import nothing but Node.js built-ins: it
// runs before the bundle's other modules are evaluated.
import { readFileSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import type { Socket } from 'node:net';

/** The session token's lifetime, asked for in the token request (the identity source's too). */
export const IMDS_TOKEN_TTL_SECONDS = 300;
/** Per request, as the identity source's SDK client (httpOptions.timeout). */
const TIMEOUT_MS = 2000;
/** The reads an identity needs, as ImdsIdentitySource asks for them (paths under /latest/). */
export const EARLY_READS = ['dynamic/instance-identity/document', 'meta-data/local-hostname', 'meta-data/tags/instance'];

/** What one read gave: a status and body, or no answer at all. */
export type EarlyAnswer = { status: number; body: string } | { error: Error };

export interface EarlyImds {
  endpoint: string;
  /** When the token was asked for (its lifetime counts from then). */
  startedAt: number;
  token: Promise<EarlyAnswer>;
  /** By path under /latest/; each waits for the token. */
  reads: Map<string, Promise<EarlyAnswer>>;
}

/** Where IMDS is: agent.yaml's aws.imds_endpoint, else what the SDK would use (its environment variable, else IPv4). */
export function imdsEndpoint(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return configured ?? env.AWS_EC2_METADATA_SERVICE_ENDPOINT ?? 'http://169.254.169.254';
}

const started = Symbol.for('teleboot.agent.early-imds');
type Holder = { [started]?: { early: EarlyImds; claim: () => void } };

/** The config file the command line names, as main reads it (-c FILE, --config FILE, --config=FILE). */
function configPath(args: string[], fallback: string): string {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-c' || args[i] === '--config') return args[i + 1] ?? fallback;
    if (args[i].startsWith('--config=')) return args[i].slice('--config='.length);
  }
  return fallback;
}

/**
 * aws.imds_endpoint from agent.yaml's block style, read line by line (the
 * YAML library is not loaded yet). A file written otherwise gives undefined
 * here; the identity source then sees another endpoint and reads anew.
 */
export function configuredEndpoint(text: string): string | undefined {
  let inAws = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) inAws = /^aws:\s*(#.*)?$/.test(line);
    const m = inAws ? /^\s+imds_endpoint:\s*(['"]?)([^'"#\s]+)\1\s*(#.*)?$/.exec(line) : null;
    if (m) return m[2];
  }
  return undefined;
}

/**
 * Starts the reads for `teleboot-agent run|once|plan` (nothing for other
 * commands, or when agent.yaml cannot be read: the agent reports that).
 * Sockets do not hold the process open until the identity source claims them.
 * Reads started already and not yet taken (by the packaged agent's loader,
 * which runs this module before the bundle) are left as they are.
 */
export function startEarlyImds(argv: string[] = process.argv, defaultConfig = '/etc/teleboot/agent.yaml'): void {
  if ((globalThis as Holder)[started]) return;
  const [command, ...args] = argv.slice(2);
  if (command !== 'run' && command !== 'once' && command !== 'plan') return;
  let text: string;
  try {
    text = readFileSync(configPath(args, defaultConfig), 'utf8');
  } catch {
    return;
  }
  const configured = configuredEndpoint(text);
  // An endpoint written in a way this reader does not follow (flow style):
  // never send to the default address in its place; the SDK client reads.
  if (configured === undefined && text.includes('imds_endpoint')) return;
  const endpoint = imdsEndpoint(configured);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return;
  }
  let claimed = false;
  const sockets = new Set<Socket>();
  const send = (method: string, path: string, headers: Record<string, string>): Promise<EarlyAnswer> =>
    new Promise((resolve) => {
      let req: ClientRequest;
      try {
        req = request(
          {
            method,
            protocol: url.protocol,
            hostname: url.hostname,
            port: url.port || undefined,
            path,
            headers,
            timeout: TIMEOUT_MS,
            agent: false,
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            res.on('error', (error) => resolve({ error }));
          },
        );
      } catch (error) {
        return resolve({ error: error as Error });
      }
      req.on('socket', (s) => {
        sockets.add(s);
        if (!claimed) s.unref();
        s.once('close', () => sockets.delete(s));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
      req.on('error', (error) => resolve({ error }));
      req.end();
    });
  const startedAt = Date.now();
  // As the SDK: the token from /latest/api/token, the reads under the endpoint's own path.
  const token = send('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': String(IMDS_TOKEN_TTL_SECONDS) });
  const base = url.pathname.replace(/\/+$/, '');
  const reads = new Map(
    EARLY_READS.map((path) => [
      path,
      token.then((t): Promise<EarlyAnswer> | EarlyAnswer =>
        'status' in t && t.status === 200 && t.body
          ? send('GET', `${base}/latest/${path}`, { 'x-aws-ec2-metadata-token': t.body })
          : { error: new Error('no session token') },
      ),
    ]),
  );
  (globalThis as Holder)[started] = {
    early: { endpoint, startedAt, token, reads },
    claim: () => {
      claimed = true;
      for (const s of sockets) s.ref();
    },
  };
}

/** The reads started for this endpoint, once (they keep the process alive from now on); undefined otherwise. */
export function takeEarlyImds(endpoint: string): EarlyImds | undefined {
  const holder = globalThis as Holder;
  const held = holder[started];
  if (!held) return undefined;
  delete holder[started];
  if (held.early.endpoint !== endpoint) return undefined;
  held.claim();
  return held.early;
}
