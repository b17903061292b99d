// The agent's one native piece: agent/native/release-memory.cc, a Node-API
// addon (agent/boot-memory.ts says what it is for), compiled with the build
// machine's C++ compiler against the Node.js headers its own installation
// ships (include/node beside bin/node). It also calls V8's C++ API, which is
// only stable within one Node.js version: it is built for the node the
// single executable is made of, which is this one (packaging/build/sea.ts).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from './layout';

export function nodeIncludeDir(): string {
  const dir = process.env.TELEBOOT_NODE_INCLUDE ?? join(dirname(dirname(process.execPath)), 'include', 'node');
  if (!existsSync(join(dir, 'node_api.h')))
    throw new Error(
      `no node_api.h in ${dir}: the build needs the Node.js headers (the nodejs.org tarball has them in include/node); ` +
        'set TELEBOOT_NODE_INCLUDE to their directory',
    );
  return dir;
}

/** Compiles the addon to outFile (CXX, else c++). */
export function buildReleaseMemoryAddon(outFile: string): string {
  const cc = process.env.CXX ?? 'c++';
  const source = join(repoRoot(), 'agent', 'native', 'release-memory.cc');
  try {
    execFileSync(
      cc,
      ['-std=c++17', '-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', '-isystem', nodeIncludeDir(), '-o', outFile, source],
      {
        stdio: 'pipe',
      },
    );
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(
      `compiling ${source} with ${cc} failed: ${stderr || (err as Error).message}\n` +
        'the agent package needs a C++ compiler (Debian: apt-get install g++; or set CXX)',
    );
  }
  return outFile;
}
