// The teleport stand-in as the boot bench runs it, and alone: start to
// /readyz 200, which every boot waits for and which is not the agent's work.
//
// BENCH_STANDIN=compiled (the default when a C compiler is there): a small
// native stand-in (bench/standin-teleport.c) that, as the real Teleport (one
// Go binary), starts in milliseconds; it still reads teleport.yaml, refuses
// one it cannot use and serves /readyz only after. BENCH_STANDIN=node: the
// tests' stand-in (test/bin/teleport, a Node.js program: its start is
// Node.js's), given the yaml library as one file so that its start does not
// resolve and compile some sixty modules.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildSync } from 'esbuild';
import { REPO, TELEPORT_STANDIN } from '../test/support/harness';
import { exited, medianOf } from './node-start';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BenchStandin {
  kind: 'compiled' | 'node';
  /** what the agent runs as `teleport` (its agent.yaml teleport.binary) */
  binary: string;
  /** its knobs, passed on by the agent */
  env: NodeJS.ProcessEnv;
}

/** The native stand-in, built into dir; undefined without a C compiler. */
function compiledStandin(dir: string): string | undefined {
  const out = join(dir, 'teleport-standin');
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', out, join(REPO, 'bench', 'standin-teleport.c')], { stdio: 'pipe' });
    return out;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(
      `compiling bench/standin-teleport.c failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? (err as Error).message}`,
    );
  }
}

/** The stand-in the bench gives the agent (BENCH_STANDIN=compiled|node). */
export function benchStandin(readyDelayMs: number, wanted = process.env.BENCH_STANDIN): BenchStandin {
  if (wanted !== undefined && wanted !== 'compiled' && wanted !== 'node') throw new Error(`BENCH_STANDIN=${wanted}: use compiled or node`);
  const dir = join(REPO, 'dist', 'bench-agent');
  mkdirSync(dir, { recursive: true });
  const delay = { TELEPORT_STANDIN_READY_DELAY_MS: String(readyDelayMs) };
  if (wanted !== 'node') {
    const binary = compiledStandin(dir);
    if (binary) return { kind: 'compiled', binary, env: delay };
    if (wanted === 'compiled') throw new Error('BENCH_STANDIN=compiled needs a C compiler (cc, or CC)');
  }
  const yaml = join(dir, 'standin-yaml.js');
  buildSync({ entryPoints: [require.resolve('yaml')], outfile: yaml, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  return { kind: 'node', binary: TELEPORT_STANDIN, env: { TELEPORT_STANDIN_YAML: yaml, ...delay } };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

const readyz = (addr: string) =>
  new Promise<boolean>((resolve) => {
    get(`http://${addr}/readyz`, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).once('error', () => resolve(false));
  });

/** The stand-in `teleport start` with a node's teleport.yaml, from spawn to its first /readyz 200 (polled every 2 ms). */
async function standinOnce(dir: string, standin: BenchStandin): Promise<number> {
  const diag = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'teleport.yaml');
  writeFileSync(
    config,
    `version: v3\nteleport:\n  nodename: bench\n  auth_server: 127.0.0.1:3025\n  diag_addr: ${diag}\n` +
      `auth_service:\n  enabled: false\nproxy_service:\n  enabled: false\nssh_service:\n  enabled: true\n`,
  );
  const t0 = performance.now();
  const child = spawn(standin.binary, ['start', `--config=${config}`], {
    stdio: 'ignore',
    env: { ...process.env, NODE_OPTIONS: '', ...standin.env },
  });
  const exit = exited(child);
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the teleport stand-in exited with ${child.exitCode}`);
      if (await readyz(diag)) return performance.now() - t0;
      await sleep(2);
    }
  } finally {
    child.kill('SIGTERM');
    await exit;
  }
}

/** Median time from starting the teleport stand-in to its first /readyz 200. */
export async function standinReadyMedianMs(standin: BenchStandin, runs = 7): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-standin-'));
  try {
    return await medianOf(runs, () => standinOnce(dir, standin));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
