// Data directories of a real control server for the start-up tests: one
// made by a first start, files in it damaged on purpose, and `serve` run on
// it as its own process.
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { CONTROL_BIN, ControlProcess, removeDir, runNode, scratchDir, type CommandResult } from './harness';

/** A data directory a real server made at its first start (then stopped). */
export async function startedDataDir(name: string): Promise<string> {
  const dir = join(scratchDir(name), 'data');
  const control = new ControlProcess(dir);
  await control.start();
  await control.stop();
  return dir;
}

/**
 * `count` data directories, each of its own cluster, made before the tests
 * of `t` run and removed after them; read them inside the tests.
 */
export function clustersFor(t: Test, name: string, count: number): string[] {
  const dirs: string[] = [];
  t.before(async () => {
    dirs.push(...(await Promise.all(Array.from({ length: count }, (_, i) => startedDataDir(`${name}-${i}`)))));
  });
  t.teardown(() => {
    for (const dir of dirs) removeDir(join(dir, '..'));
  });
  return dirs;
}

/**
 * `teleboot-control serve` on `dataDir`, expected to refuse: resolves with
 * its exit once it stops on its own. A server that starts anyway is killed
 * after `timeoutMs`, and the result then says so (code null).
 */
export function serveExpectingRefusal(dataDir: string, extraArgs: string[] = [], timeoutMs = 60_000): Promise<CommandResult> {
  return runNode(
    CONTROL_BIN,
    ['serve', '--data-dir', dataDir, '--grpc-listen', '127.0.0.1:0', '--rest-listen', '127.0.0.1:0', ...extraArgs],
    {},
    timeoutMs,
  );
}

/** A copy of a data directory (modes kept), in a scratch directory of its own. */
export function copyDataDir(dataDir: string, name: string): string {
  const copy = join(scratchDir(name), 'data');
  cpSync(dataDir, copy, { recursive: true, preserveTimestamps: true });
  return copy;
}

export const readText = (path: string): string => readFileSync(path, 'utf8');

/** Removes the database with its WAL and shared memory, as a lost or wiped file. */
export function removeStore(dataDir: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(join(dataDir, `control.db${suffix}`), { force: true });
}
