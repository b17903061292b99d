// The agent as a Node.js single executable application: the node binary of
// the build machine with the bundle and its V8 code cache injected, so a
// host needs no Node.js and skips compiling the agent at every boot.
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './layout';

// The fuse Node.js looks for to know a blob was injected (documented with single executable applications).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export function singleExecutable(bundleFile: string, outFile: string, workDir: string): void {
  const config = join(workDir, 'sea-config.json');
  const blob = join(workDir, 'sea-prep.blob');
  writeFileSync(config, JSON.stringify({ main: bundleFile, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'pipe' });
  copyFileSync(process.execPath, outFile);
  chmodSync(outFile, 0o755);
  const postject = join(repoRoot(), 'node_modules', 'postject', 'dist', 'cli.js');
  execFileSync(process.execPath, [postject, outFile, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { stdio: 'ignore' });
}
