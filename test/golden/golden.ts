// Golden files (issue 10): for each layout under test/golden/<layout>/, the
// files an instance gets from input.json (assignment, cluster settings,
// instance facts), rendered by the agent's own code. `npm run golden`
// rewrites them; test/golden.test.ts compares, so a change in output shows as
// a diff in review.
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DEFAULT_HOST_PATHS, fetchesOf, renderHostFiles, type Fetched } from '../../contract/render/plan';
import type { RenderInput } from '../../contract/render/render';

/** The repository's test/golden, whether this runs from test/ (tap) or from dist/test/ (npm run golden). */
export const GOLDEN_DIR = join(repositoryRoot(__dirname), 'test', 'golden');

function repositoryRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${from}`);
}

/** What a layout's input.json holds. */
export interface GoldenInput {
  /** One line saying what the layout is and where it comes from (a seed, Teleport's AMI). */
  description: string;
  assignment: RenderInput['assignment'];
  settings: RenderInput['cluster'];
  instance: RenderInput['instance'];
}

/** The CA pin the agent would read from SSM; any fixed value makes the files reproducible. */
const GOLDEN_PIN = `sha256:${'0123456789abcdef'.repeat(4)}`;

/** Output file names: what the agent writes (the environment file only when rendered), and the preview's warnings when there are any. */
export const OUTPUTS = ['teleport.yaml', 'teleport.service', 'etc-default-teleport', 'warnings.txt'] as const;

/** The files `input` renders to, by output name. Throws RenderError like the agent would. */
export function renderGolden(input: GoldenInput): Record<string, string> {
  const fetches = fetchesOf(input.assignment, input.settings, DEFAULT_HOST_PATHS);
  const fetched: Fetched = { ssm: {}, s3: {} };
  // Secrets land in files the config names, never in the config, so their values do not matter here.
  for (const f of fetches.ssm) fetched.ssm[f.name] = f.purpose === 'CA pin' ? GOLDEN_PIN : 'secret';
  for (const f of fetches.s3) fetched.s3[f.key] = 'secret';
  const host = renderHostFiles(
    { assignment: input.assignment, cluster: input.settings },
    input.instance,
    DEFAULT_HOST_PATHS,
    fetches,
    fetched,
  );
  return {
    'teleport.yaml': host.teleportYaml,
    'teleport.service': host.unit,
    ...(host.environment !== undefined ? { 'etc-default-teleport': host.environment } : {}),
    ...(host.warnings.length > 0 ? { 'warnings.txt': host.warnings.map((w) => `${w.path} (${w.setting ?? ''}): ${w.message}\n`).join('') } : {}),
  };
}

/** Every layout directory (one holding input.json), sorted. */
export function goldenLayouts(): string[] {
  return readdirSync(GOLDEN_DIR)
    .filter((name) => statSync(join(GOLDEN_DIR, name)).isDirectory() && existsSync(join(GOLDEN_DIR, name, 'input.json')))
    .sort();
}

export function readGoldenInput(layout: string): GoldenInput {
  const path = join(GOLDEN_DIR, layout, 'input.json');
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as GoldenInput;
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** Rewrites the outputs of every layout; removes an output a layout no longer renders. */
export function regenerate(): string[] {
  const written: string[] = [];
  for (const layout of goldenLayouts()) {
    let files: Record<string, string>;
    try {
      files = renderGolden(readGoldenInput(layout));
    } catch (err) {
      throw new Error(`test/golden/${layout}/input.json: ${(err as Error).message}`);
    }
    for (const name of OUTPUTS) {
      const path = join(GOLDEN_DIR, layout, name);
      if (files[name] === undefined) {
        rmSync(path, { force: true });
      } else {
        writeFileSync(path, files[name]);
        written.push(join(layout, name));
      }
    }
  }
  return written;
}

if (require.main === module) {
  const written = regenerate();
  process.stdout.write(`wrote ${written.length} golden files under test/golden/:\n${written.map((w) => `  ${w}\n`).join('')}`);
}
