// The floor under any boot: a bare `node -e 0`, process start to exit, on
// the same machine at the same moment as the boot runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { median } from './stats';

export function exited(child: ChildProcess): Promise<number | null> {
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
export async function medianOf(runs: number, once: () => Promise<number>): Promise<number> {
  await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once());
  return median(times);
}

/** Median wall time of `argv` started `runs` times in a row (one warm-up not counted). */
export function startMedianMs(argv: string[], runs = 7): Promise<number> {
  return medianOf(runs, () => nodeOnce(argv));
}
