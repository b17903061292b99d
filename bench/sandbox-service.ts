// A bench-only ServiceManager that "starts Teleport" inside the bench
// process: it reads the teleport.yaml the agent rendered, checks the files it
// names, and serves Teleport's diagnostic endpoint (/healthz, /readyz) on the
// configured teleport.diag_addr, so that the agent's real readiness wait runs
// against a real socket. One instance per simulated host.
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { isAbsolute } from 'node:path';
import { parse } from 'yaml';
import type { ServiceManager } from '../agent/service-manager';

/** The Teleport version the sandbox's stand-in reports on /metrics. */
const SANDBOX_TELEPORT_VERSION = '17.0.0';

function splitAddr(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(addr);
  if (!m) throw new Error(`invalid diag_addr ${JSON.stringify(addr)}: expected host:port`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

/**
 * Diagnostic ports the bench holds open from the moment an agent's config is
 * written until its sandbox Teleport binds them. A thousand ports picked up
 * front would otherwise be taken by the bench's own outgoing connections
 * (both draw from the ephemeral range) before the agents get to them.
 */
export class PortReservations {
  private readonly held = new Map<string, net.Server>();

  /** Holds `addr`; false when it is already held here or in use elsewhere. */
  async reserve(addr: string): Promise<boolean> {
    if (this.held.has(addr)) return false;
    const { host, port } = splitAddr(addr);
    const server = net.createServer((socket) => socket.destroy());
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ host, port, exclusive: true }, () => resolve(true));
    });
    if (ok) this.held.set(addr, server);
    return ok;
  }

  /** Frees `addr` for an immediate bind in the same tick (closing a listener releases its port at once). */
  release(addr: string): void {
    const server = this.held.get(addr);
    if (!server) return;
    this.held.delete(addr);
    server.close();
  }

  get size(): number {
    return this.held.size;
  }

  async closeAll(): Promise<void> {
    const servers = [...this.held.values()];
    this.held.clear();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export interface SandboxOptions {
  /** The agent's paths.teleport_config: what the sandbox Teleport reads at start. */
  teleportConfig: string;
  /** Time from start to /readyz answering 200, like TELEPORT_STANDIN_READY_DELAY_MS. */
  readyDelayMs?: number;
  ports?: PortReservations;
}

interface DiagConfig {
  diagAddr: string;
}

export class SandboxServiceManager implements ServiceManager {
  private unit: string | undefined;
  private server: http.Server | undefined;
  private state = 'inactive';
  private readyAt = Infinity;
  /** Why the last start failed, as Teleport would print it. */
  lastError: string | undefined;
  starts = 0;

  constructor(private readonly opts: SandboxOptions) {}

  /** The unit stays in memory: nothing here reads it. True when it changed. */
  async installUnit(unitText: string): Promise<boolean> {
    const changed = unitText !== this.unit;
    this.unit = unitText;
    return changed;
  }

  async ensureRunning(restart: boolean): Promise<void> {
    if (this.server && !restart) return;
    await this.stop();
    await this.start();
  }

  /** SIGHUP: Teleport re-reads its config; a bad one leaves the running process as it is. */
  async reload(): Promise<void> {
    if (!this.server) return;
    await this.readConfig().catch((err: Error) => (this.lastError = `reload failed: ${err.message}`));
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.readyAt = Infinity;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.state = 'inactive';
  }

  async activeState(): Promise<string> {
    return this.state;
  }

  /** What Teleport would have printed: why the last start or reload failed. */
  async logTail(): Promise<string[]> {
    return this.lastError ? [`ERROR: ${this.lastError}`] : [];
  }

  /** Reads teleport.yaml and checks the files it names, as `teleport start` would. */
  private async readConfig(): Promise<DiagConfig> {
    const doc = parse(await fs.readFile(this.opts.teleportConfig, 'utf8')) as Record<string, any> | null;
    if (!doc || doc.version !== 'v3') throw new Error(`${this.opts.teleportConfig}: expected a v3 config`);
    const t = (doc.teleport ?? {}) as Record<string, any>;
    if (typeof t.diag_addr !== 'string') throw new Error(`${this.opts.teleportConfig}: teleport.diag_addr is not set`);
    const token = t.join_params?.token_name;
    if (typeof token === 'string' && isAbsolute(token)) await fs.readFile(token);
    if (doc.proxy_service?.enabled) {
      for (const pair of (doc.proxy_service.https_keypairs ?? []) as Array<{ cert_file: string; key_file: string }>) {
        await Promise.all([fs.readFile(pair.cert_file), fs.readFile(pair.key_file)]);
      }
    }
    return { diagAddr: t.diag_addr };
  }

  /** Like a Teleport that fails to start: the unit shows "failed" and /readyz never answers. */
  private async start(): Promise<void> {
    this.starts++;
    let config: DiagConfig;
    try {
      config = await this.readConfig();
    } catch (err) {
      this.state = 'failed';
      this.lastError = (err as Error).message;
      return;
    }
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        // As Teleport's diag endpoint: the agent reads the running version from it
        // at every report (without it, it would run `teleport version` each time).
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(
          `# TYPE teleport_build_info gauge\nteleport_build_info{gitref="v${SANDBOX_TELEPORT_VERSION}",version="${SANDBOX_TELEPORT_VERSION}"} 1\n`,
        );
        return;
      }
      const ready = Date.now() >= this.readyAt;
      const [code, body] =
        path === '/healthz'
          ? [200, { status: 'ok' }]
          : path === '/readyz'
            ? ready
              ? [200, { status: 'ok' }]
              : [400, { status: "teleport is starting and hasn't joined the cluster yet" }]
            : [404, { error: { message: 'not found' } }];
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    const { host, port } = splitAddr(config.diagAddr);
    this.opts.ports?.release(config.diagAddr);
    const listening = await new Promise<Error | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen(port, host, () => resolve(undefined));
    });
    if (listening) {
      this.state = 'failed';
      this.lastError = `failed to listen on diag_addr ${config.diagAddr}: ${listening.message}`;
      return;
    }
    this.server = server;
    this.state = 'active';
    this.readyAt = Date.now() + (this.opts.readyDelayMs ?? 0);
  }
}
