// `npm run package`: teleboot-agent and teleboot-control as .deb and .rpm
// for the build machine's architecture, in dist/packages/.
//   --version V   package version (default: package.json's)
//   --only deb|rpm
import { performance } from 'node:perf_hooks';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RELEASE_MEMORY_ADDON } from '../../agent/boot-memory';
import { buildReleaseMemoryAddon } from './addon';
import { AGENT_BUNDLE, bundle, CONTROL_BUNDLES, earlyScript, packageVersion } from './bundle';
import { buildDeb } from './deb';
import { architectures, repoRoot, type PackageSpec } from './layout';
import { agentSpec, controlSpec } from './packages';
import { buildRpm } from './rpm';
import { singleExecutable, type TrainingBoot } from './sea';

export interface BuiltAgent {
  /** the bundle (what BENCH_AGENT=runtime runs with a Node.js) */
  bundle: string;
  /** the single executable: /usr/bin/teleboot-agent */
  executable: string;
  /** the Node-API addon that releases the executable's boot-only pages (agent/boot-memory.ts) */
  releaseMemory: string;
}

export interface BuiltPackages {
  deb: string[];
  rpm: string[];
}

/**
 * The agent's bundle and its single executable (what the package installs as /usr/bin/teleboot-agent), in dir;
 * its code cache trained by a whole boot when given one (packaging/build/training.ts), else by the closed-port run.
 */
export async function buildAgentExecutable(dir: string, version: string, training?: TrainingBoot): Promise<BuiltAgent> {
  mkdirSync(dir, { recursive: true });
  const agentJs = join(dir, `${AGENT_BUNDLE.name}.js`);
  await bundle(AGENT_BUNDLE, agentJs, version);
  const executable = join(dir, AGENT_BUNDLE.name);
  await singleExecutable(agentJs, executable, dir, { training, early: await earlyScript(AGENT_BUNDLE) });
  // Beside the executable, where the agent looks for it in a build directory (agent/boot-memory.ts).
  const releaseMemory = buildReleaseMemoryAddon(join(dir, RELEASE_MEMORY_ADDON));
  return { bundle: agentJs, executable, releaseMemory };
}

/** Bundles both programs and lays out their package specs under workDir. */
export async function prepare(workDir: string, version: string, training?: TrainingBoot): Promise<PackageSpec[]> {
  rmSync(workDir, { recursive: true, force: true });
  const agentDir = join(workDir, 'agent');
  const controlDir = join(workDir, 'control');
  mkdirSync(agentDir, { recursive: true });
  mkdirSync(controlDir, { recursive: true });
  const agent = await buildAgentExecutable(agentDir, version, training);
  for (const b of CONTROL_BUNDLES) await bundle(b, join(controlDir, `${b.name}.js`), version);
  return [agentSpec(agent), controlSpec(controlDir, CONTROL_BUNDLES, version)];
}

export function buildAll(specs: PackageSpec[], version: string, outDir: string, workDir: string, only?: string): BuiltPackages {
  const built: BuiltPackages = { deb: [], rpm: [] };
  for (const spec of specs) {
    if (only !== 'rpm') built.deb.push(buildDeb(spec, version, outDir, workDir));
    if (only !== 'deb') built.rpm.push(buildRpm(spec, version, outDir, workDir));
  }
  return built;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { version: { type: 'string' }, only: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write('Usage: npm run package -- [--version V] [--only deb|rpm]\nExample: npm run package -- --version 0.2.0\n');
    return;
  }
  const version = values.version ?? packageVersion();
  const t0 = performance.now();
  const workDir = join(repoRoot(), 'dist', 'pkgroot');
  const outDir = join(repoRoot(), 'dist', 'packages');
  // Loaded here only: the training boot's local servers are no concern of the package tests, which call prepare().
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { withTrainingBoot } = require('./training') as typeof import('./training');
  const specs = await withTrainingBoot((training) => prepare(workDir, version, training));
  const built = buildAll(specs, version, outDir, workDir, values.only);
  const arch = architectures();
  process.stdout.write(`built for ${arch.deb}/${arch.rpm} in ${((performance.now() - t0) / 1000).toFixed(1)} s:\n`);
  for (const f of [...built.deb, ...built.rpm]) process.stdout.write(`  ${f}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
