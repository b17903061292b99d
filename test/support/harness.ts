// End-to-end harness: the real control server as a separate process, real
// S3 (s3rver), the SSM and IMDS emulators, and agents as separate processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkSharedTempDir } from './systemd-ns';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CONTROL_NODE_FLAGS } from '../../packaging/build/packages';
import { stringify } from 'yaml';
// s3rver ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- s3rver is CommonJS without types
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  /** s3rver is a Koa app: its middleware list, composed when it starts listening. */
  middleware: Array<
    (ctx: { method: string; path: string; headers: Record<string, string | undefined> }, next: () => Promise<void>) => Promise<void>
  >;
};

/** The repository root, from test/support and from dist/test/support alike. */
function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const REPO = repoRoot();
export const CONTROL_BIN = join(REPO, 'dist/control/main.js');
export const AGENT_BIN = join(REPO, 'dist/agent/main.js');
export const TELEPORT_STANDIN = join(REPO, 'test/bin/teleport');
export const TCTL_STANDIN = join(REPO, 'test/bin/tctl');

/** A scratch directory outside /tmp (processes in systemd namespaces see a private /tmp). */
export const scratchDir = (name: string): string => mkSharedTempDir(`${name}-`);

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
    server.on('error', reject);
  });
}

/**
 * Starts a server on ports freePort probed, again on others (3 tries) when
 * its error matches `portTaken`: freePort can only probe, and tests running
 * beside this one may take a port between the probe and the bind.
 */
export async function startOnFreePorts<T>(start: () => Promise<T>, portTaken: RegExp): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      if (attempt === 3 || !portTaken.test((e as Error).message)) throw e;
    }
  }
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a node script to completion without blocking this process, which
 * may itself be serving the emulators the script talks to.
 */
export function runNode(script: string, args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolveRun) => {
    const proc = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, NODE_OPTIONS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** Polls `check` (every 25 ms) until it gives a value, which is returned; throws naming `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * `teleboot-agent run` as its own process, stopped (SIGTERM, as systemd
 * would) when the test ends; `logs()` is everything it printed so far.
 */
export function startAgentProcess(
  t: { teardown(fn: () => Promise<void> | void): void },
  files: AgentFiles,
): { proc: ChildProcess; logs: () => string } {
  const proc = spawn(process.execPath, [AGENT_BIN, 'run', '-c', files.configFile], {
    env: { ...process.env, ...AWS_ENV, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
  t.teardown(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  });
  return { proc, logs: () => output };
}

/**
 * Runs an agent for one subtest only. When the subtest ends its host is
 * deregistered, as an operator does for a terminated instance: a stopped
 * host whose last report did not arrive is still counted online for three
 * heartbeats, and a later subtest's rollout would wait for it.
 */
export function startSubtestAgent(
  t: { teardown(fn: () => Promise<void> | void): void },
  files: AgentFiles,
  control: { rest(method: string, path: string): Promise<unknown> },
  instanceId: string,
): { proc: ChildProcess; logs: () => string } {
  // Added first, so run after the agent's own (tap runs teardowns last in, first out): a running agent would enroll again.
  t.teardown(async () => {
    await control.rest('DELETE', `/v1/instances/${instanceId}`);
  });
  return startAgentProcess(t, files);
}

/** Credentials s3rver and the emulators accept (s3rver checks SigV4 against S3RVER/S3RVER). */
export const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  // The SDK's notice about Node 20 support ending is not what these tests read.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export interface RestResponse<T = any> {
  status: number;
  body: T;
  headers: IncomingHttpHeaders;
}

export class ControlProcess {
  proc: ChildProcess | undefined;
  grpcPort = 0;
  restPort = 0;
  logs = '';
  constructor(
    readonly dataDir: string,
    private readonly extraArgs: string[] = [],
    private readonly env: Record<string, string> = {},
  ) {}

  get caFile(): string {
    return join(this.dataDir, 'tls/ca.pem');
  }
  get joinTokenFile(): string {
    return join(this.dataDir, 'join-token');
  }
  /** The admin API token the server generated on first start. */
  get adminTokenFile(): string {
    return join(this.dataDir, 'admin-token');
  }
  get adminToken(): string {
    return readFileSync(this.adminTokenFile, 'utf8').trim();
  }
  get grpcAddr(): string {
    return `localhost:${this.grpcPort}`;
  }

  /** Starts the server; after a restart it keeps the ports agents know. */
  async start(): Promise<void> {
    const args = [
      // As a host runs it (its /usr/bin wrapper), then the bench's own flags.
      ...CONTROL_NODE_FLAGS,
      // Node flags for the server process, e.g. --cpu-prof (bench/run.ts documents it).
      ...(process.env.BENCH_CONTROL_FLAGS ?? '').split(' ').filter(Boolean),
      CONTROL_BIN,
      'serve',
      '--data-dir',
      this.dataDir,
      '--grpc-listen',
      `127.0.0.1:${this.grpcPort}`,
      '--rest-listen',
      `127.0.0.1:${this.restPort}`,
      ...this.extraArgs,
    ];
    const proc = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TELEBOOT_LOG_LEVEL: 'info', ...this.env },
    });
    this.proc = proc;
    await new Promise<void>((resolveStart, reject) => {
      let buffered = '';
      const onData = (chunk: Buffer) => {
        this.logs += chunk.toString();
        buffered += chunk.toString();
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.includes('teleboot-control serving')) {
            const rec = JSON.parse(line) as { grpcPort: number; restUrl: string };
            this.grpcPort = rec.grpcPort;
            this.restPort = Number(new URL(rec.restUrl).port);
            resolveStart();
          }
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', (c: Buffer) => (this.logs += c.toString()));
      proc.on('exit', (code) => reject(new Error(`teleboot-control exited with ${code} before serving:\n${this.logs}`)));
    });
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    // Gone already: exited, or killed by a signal (a test's SIGKILL).
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((done) => {
      proc.once('exit', () => done());
      proc.kill('SIGTERM');
    });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** A REST call with the admin token, unless `headers` carries an authorization (or `token` is null: none). */
  rest<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    token: string | null = this.adminToken,
  ): Promise<RestResponse<T>> {
    return restRequest<T>(
      { port: this.restPort, ca: readFileSync(this.caFile, 'utf8'), token: token ?? undefined },
      method,
      path,
      body,
      headers,
    );
  }

  /** Polls an instance until `check` accepts it. */
  async waitForInstance(id: string, check: (instance: any) => boolean, timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: RestResponse | undefined;
    while (Date.now() < deadline) {
      last = await this.rest('GET', `/v1/instances/${id}`);
      if (last.status === 200 && check(last.body)) return last.body;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`instance ${id} did not reach the expected state; last seen: ${JSON.stringify(last?.body)}`);
  }
}

/** One HTTPS request to a REST API that trusts `ca`, with `token` as bearer when given; a JSON body is parsed. */
export function restRequest<T = any>(
  target: { port: number; ca: string; token?: string },
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<RestResponse<T>> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolveRes, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: target.port,
        method,
        path,
        ca: target.ca,
        agent: false,
        headers: {
          // An explicit length: Node sends no body on a DELETE without one.
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON: keep the text */
          }
          resolveRes({ status: res.statusCode ?? 0, body: parsed as T, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** A write as s3rver received it (s3rver itself keeps no encryption headers). */
export interface S3Write {
  method: string;
  path: string;
  serverSideEncryption?: string;
  kmsKeyId?: string;
}

export interface S3Server {
  endpoint: string;
  client: S3Client;
  /** Every PUT and POST received, oldest first. */
  writes: S3Write[];
  put(bucket: string, key: string, body: string): Promise<void>;
  close(): Promise<void>;
}

export async function startS3(buckets: string[], dir: string): Promise<S3Server> {
  const port = await freePort();
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory: dir,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const writes: S3Write[] = [];
  // First in line, so that it sees every request before s3rver's router answers it.
  server.middleware.unshift(async (ctx, next) => {
    if (ctx.method === 'PUT' || ctx.method === 'POST') {
      writes.push({
        method: ctx.method,
        path: ctx.path,
        serverSideEncryption: ctx.headers['x-amz-server-side-encryption'],
        kmsKeyId: ctx.headers['x-amz-server-side-encryption-aws-kms-key-id'],
      });
    }
    await next();
  });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  return {
    endpoint,
    client,
    writes,
    async put(bucket, key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async close() {
      client.destroy();
      await server.close();
    },
  };
}

export interface AgentFiles {
  root: string;
  configFile: string;
  teleportConfig: string;
  secretsDir: string;
  stateDir: string;
  diagAddr: string;
  /** The HTTP CONNECT proxy environment (/etc/default/teleport on a real host). */
  environmentFile: string;
}

export interface AgentConfigInput {
  control: ControlProcess;
  imdsEndpoint: string;
  ssmEndpoint: string;
  s3Endpoint: string;
  serviceManager: 'systemd' | 'process';
  heartbeat?: string;
  /** join_token (default: the control server's bootstrap token) or ec2 (the signed identity document). */
  enrollment?: 'join_token' | 'ec2';
  /** Directory for the agent's files (outside /tmp). */
  root: string;
}

/** Writes agent.yaml with every path inside `root`, as a sandboxed agent uses them. */
export async function writeAgentConfig(input: AgentConfigInput): Promise<AgentFiles> {
  const { root } = input;
  mkdirSync(root, { recursive: true });
  const diagAddr = `127.0.0.1:${await freePort()}`;
  const files: AgentFiles = {
    root,
    configFile: join(root, 'agent.yaml'),
    teleportConfig: join(root, 'etc/teleport.yaml'),
    secretsDir: join(root, 'var/lib/teleboot/secrets'),
    stateDir: join(root, 'var/lib/teleboot'),
    diagAddr,
    environmentFile: join(root, 'etc/default/teleport'),
  };
  const config = {
    control: { endpoints: [input.control.grpcAddr], ca_file: input.control.caFile },
    enrollment: input.enrollment === 'ec2' ? { method: 'ec2' } : { join_token_file: input.control.joinTokenFile },
    paths: {
      state_dir: files.stateDir,
      secrets_dir: files.secretsDir,
      teleport_config: files.teleportConfig,
      teleport_data_dir: join(root, 'var/lib/teleport'),
      environment_file: files.environmentFile,
    },
    teleport: { binary: TELEPORT_STANDIN, tctl: TCTL_STANDIN, diag_addr: diagAddr, ready_timeout: '20s' },
    service_manager: { type: input.serviceManager },
    aws: { imds_endpoint: input.imdsEndpoint, ssm_endpoint: input.ssmEndpoint, s3_endpoint: input.s3Endpoint, s3_force_path_style: true },
    heartbeat_interval: input.heartbeat ?? '1s',
    retry: { initial_delay: '100ms', max_delay: '1s' },
    log_level: 'debug',
  };
  writeFileSync(files.configFile, stringify(config));
  return files;
}

/**
 * Stops every process whose command line names a path under `dir`: the
 * stand-in Teleports that `teleboot-agent once` with the process supervisor
 * leaves running (as a one-shot command, it does not stay to supervise).
 */
export function stopProcessesUnder(dir: string): number {
  let stopped = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.split('\0').some((arg) => arg.includes(`${dir}/`))) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      stopped++;
    } catch {
      /* already gone */
    }
  }
  return stopped;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
