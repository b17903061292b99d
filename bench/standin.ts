// The teleport stand-in (test/bin/teleport, a Node.js program) as the boot
// bench runs it: given the yaml library as one file, as a real teleport is
// one binary, so that its start does not resolve and compile some sixty
// modules; and alone, start to /readyz 200, which every boot waits for and
// which is not the agent's work.
import { spawn } from 'node:child_process';
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

/** The environment the bench starts the stand-in with (through the agent, which passes its own on). */
export function standinEnv(readyDelayMs: number): NodeJS.ProcessEnv {
  const dir = join(REPO, 'dist', 'bench-agent');
  mkdirSync(dir, { recursive: true });
  const yaml = join(dir, 'standin-yaml.js');
  buildSync({ entryPoints: [require.resolve('yaml')], outfile: yaml, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  return { TELEPORT_STANDIN_YAML: yaml, TELEPORT_STANDIN_READY_DELAY_MS: String(readyDelayMs) };
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
async function standinOnce(dir: string, env: NodeJS.ProcessEnv): Promise<number> {
  const diag = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'teleport.yaml');
  writeFileSync(
    config,
    `version: v3\nteleport:\n  nodename: bench\n  auth_server: 127.0.0.1:3025\n  diag_addr: ${diag}\n` +
      `auth_service:\n  enabled: false\nproxy_service:\n  enabled: false\nssh_service:\n  enabled: true\n`,
  );
  const t0 = performance.now();
  const child = spawn(TELEPORT_STANDIN, ['start', `--config=${config}`], {
    stdio: 'ignore',
    env: { ...process.env, NODE_OPTIONS: '', ...env },
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
export async function standinReadyMedianMs(env: NodeJS.ProcessEnv, runs = 7): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-standin-'));
  try {
    return await medianOf(runs, () => standinOnce(dir, env));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
