// The floors under any boot, measured on the same machine at the same moment
// as the boot runs: a bare `node -e 0`, process start to exit; and the
// teleport stand-in alone (a Node.js process itself), start to /readyz 200,
// which every boot waits for and which is not the agent's work.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TELEPORT_STANDIN } from '../test/support/harness';
import { median } from './stats';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

async function nodeOnce(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
  const code = await exited(child);
  if (code !== 0) throw new Error(`${argv.join(' ')} exited with ${code}`);
  return performance.now() - t0;
}

/** Median of `runs` measurements in a row (one warm-up not counted). */
async function medianOf(runs: number, once: () => Promise<number>): Promise<number> {
  await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once());
  return median(times);
}

/** Median wall time of `argv` started `runs` times in a row (one warm-up not counted). */
export function startMedianMs(argv: string[], runs = 7): Promise<number> {
  return medianOf(runs, () => nodeOnce(argv));
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
async function standinOnce(dir: string, readyDelayMs: number): Promise<number> {
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
    env: { ...process.env, NODE_OPTIONS: '', TELEPORT_STANDIN_READY_DELAY_MS: String(readyDelayMs) },
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
export async function standinReadyMedianMs(readyDelayMs: number, runs = 7): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-standin-'));
  try {
    return await medianOf(runs, () => standinOnce(dir, readyDelayMs));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
