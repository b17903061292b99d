// The agent as a Node.js single executable application: the node binary of
// the build machine with the bundle and a V8 code cache injected, so a host
// needs no Node.js and skips compiling the agent at every boot.
//
// The code cache is made after the bundle has run once (`version`, which
// evaluates every module the program imports at start), not right after it
// was compiled as Node's own `useCodeCache` does: V8 compiles most functions
// lazily, at their first call, and only a cache made after those calls holds
// them. The executable's main is then a loader that compiles the bundle with
// that cache (measured: a third less CPU to start the agent).
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './layout';

// The fuse Node.js looks for to know a blob was injected (documented with single executable applications).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The bundle as CommonJS wraps it; the cache is only valid for this very source text. */
const WRAP_START = '(function (exports, require, module, __filename, __dirname) {';
const WRAP_END = '\n})';
/** The name the bundle is compiled under (stack traces show it). */
const FILENAME = 'teleboot-agent.js';
const ASSETS = { bundle: 'bundle.js', cache: 'bundle.cache' };

/**
 * The executable's main: compiles the bundle (an asset) with its code cache
 * (another) and runs it as the main module. A cache V8 rejects (another
 * node, other flags) costs the compile it would have saved, nothing else.
 */
const LOADER = `'use strict';
const { getAsset } = require('node:sea');
const { Script } = require('node:vm');
const source = ${JSON.stringify(WRAP_START)} + getAsset(${JSON.stringify(ASSETS.bundle)}, 'utf8') + ${JSON.stringify(WRAP_END)};
const cachedData = new Uint8Array(getAsset(${JSON.stringify(ASSETS.cache)}));
new Script(source, { filename: ${JSON.stringify(FILENAME)}, cachedData }).runInThisContext()(exports, require, module, __filename, __dirname);
`;

/**
 * Run once at build time: runs the bundle's `version` command from a
 * vm.Script compiled as the loader compiles it, and writes the script's code
 * cache when the process exits. Plain JavaScript of its own, run by the
 * build's node without flags (a cache made under V8 flags is rejected without them).
 */
const WARMER = `'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');
const [bundleFile, cacheFile] = process.argv.slice(2);
const script = new Script(${JSON.stringify(WRAP_START)} + readFileSync(bundleFile, 'utf8') + ${JSON.stringify(WRAP_END)}, { filename: ${JSON.stringify(FILENAME)} });
process.on('exit', () => writeFileSync(cacheFile, script.createCachedData()));
process.argv = [process.argv[0], ${JSON.stringify(FILENAME)}, 'version'];
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require, mod, ${JSON.stringify(FILENAME)}, '.');
`;

export function singleExecutable(bundleFile: string, outFile: string, workDir: string): void {
  const loader = join(workDir, 'sea-main.js');
  const warmer = join(workDir, 'sea-warm.cjs');
  const cache = join(workDir, ASSETS.cache);
  writeFileSync(loader, LOADER);
  writeFileSync(warmer, WARMER);
  execFileSync(process.execPath, [warmer, bundleFile, cache], { stdio: 'pipe', env: { ...process.env, NODE_OPTIONS: '' } });
  const config = join(workDir, 'sea-config.json');
  const blob = join(workDir, 'sea-prep.blob');
  writeFileSync(
    config,
    JSON.stringify({
      main: loader,
      output: blob,
      disableExperimentalSEAWarning: true,
      assets: { [ASSETS.bundle]: bundleFile, [ASSETS.cache]: cache },
    }),
  );
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'pipe' });
  copyFileSync(process.execPath, outFile);
  chmodSync(outFile, 0o755);
  const postject = join(repoRoot(), 'node_modules', 'postject', 'dist', 'cli.js');
  execFileSync(process.execPath, [postject, outFile, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { stdio: 'ignore' });
}
