// The floor under any boot: a bare `node -e 0`, process start to exit, on
// the same machine at the same moment as the boot runs.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { median } from './stats';

function once(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(' ')} exited with ${code}`)),
    );
  });
}

/** Median wall time of `argv` started `runs` times in a row (one warm-up not counted). */
export async function startMedianMs(argv: string[], runs = 7): Promise<number> {
  await once(argv);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once(argv));
  return median(times);
}
