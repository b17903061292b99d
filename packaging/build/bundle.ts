// One file per program (esbuild): what a host loads at boot is one script
// instead of some thousand modules resolved on disk.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProtosWithOptionsSync } from '@grpc/proto-loader/build/src/util';
import { repoRoot } from './layout';

export interface BundleEntry {
  /** the command's name: /usr/bin/<name> */
  name: string;
  /** TypeScript entry point, relative to the repository */
  entry: string;
  /** packages loaded from node_modules beside the bundle (native addons) */
  external?: string[];
}

export const AGENT_BUNDLE: BundleEntry = { name: 'teleboot-agent', entry: 'agent/main.ts' };

/**
 * Programs of the control package, each bundled and run by its private Node.js.
 * The operator CLI (branch `cli`) joins this list as { name: 'teleboot', entry: 'cli/main.ts' }
 * and gets /usr/bin/teleboot with nothing else to change.
 */
export const CONTROL_BUNDLES: BundleEntry[] = [
  // pg-native is pg's optional C binding, never used; better-sqlite3 is a native addon shipped beside the bundle.
  { name: 'teleboot-control', entry: 'control/main.ts', external: ['better-sqlite3', 'pg-native'] },
  // The operator CLI rides along on the control host (/usr/bin/teleboot).
  { name: 'teleboot', entry: 'cli/main.ts' },
];

/** The gRPC contract as protobufjs JSON, loaded with the options contract/proto.ts uses. */
function protoJson(): string {
  const root = loadProtosWithOptionsSync('teleboot/v1/bootstrap.proto', {
    includeDirs: [join(repoRoot(), 'proto')],
    keepCase: false,
  });
  return JSON.stringify(root.toJSON());
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Bundles an entry into outFile (CommonJS, Node 20); the proto and the version are compiled in. */
export async function bundle(entry: BundleEntry, outFile: string, version: string): Promise<void> {
  await build({
    entryPoints: [join(repoRoot(), entry.entry)],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    // Class names appear in error messages and logs.
    keepNames: true,
    legalComments: 'none',
    external: entry.external ?? [],
    define: {
      TELEBOOT_BUNDLED_PROTO: JSON.stringify(protoJson()),
      TELEBOOT_BUNDLED_VERSION: JSON.stringify(version),
    },
    logLevel: 'warning',
  });
}
