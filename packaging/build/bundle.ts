// One file per program (esbuild): what a host loads at boot is one script
// instead of some thousand modules resolved on disk.
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProtosWithOptionsSync } from '@grpc/proto-loader/build/src/util';
import { AGENT_CONFIG_SCHEMA } from '../../agent/config';
import { CONFIG_AJV_OPTIONS } from '../../contract/config-file';
import { repoRoot } from './layout';

/** A config schema compiled when the program is bundled: the schema itself and where the program exports it. */
export interface PrecompiledSchema {
  schema: object;
  /** module exporting it, relative to the repository, and the export's name */
  module: string;
  exportName: string;
}

export interface BundleEntry {
  /** the command's name: /usr/bin/<name> */
  name: string;
  /** TypeScript entry point, relative to the repository */
  entry: string;
  /** packages loaded from node_modules beside the bundle (native addons) */
  external?: string[];
  /**
   * Prefer packages' ES module builds ("module") to their CommonJS ones: esbuild
   * drops what the program never imports from them (the AWS SDK clients' other
   * commands and their schemas), which a boot would otherwise evaluate.
   */
  esmFirst?: boolean;
  /** its config file's schema, compiled into the bundle (see contract/config-file usePrecompiledValidator) */
  configSchema?: PrecompiledSchema;
  /**
   * A small module (Node.js built-ins only) and the function of it that runs
   * first, before the bundle's other modules are evaluated; they are evaluated
   * one event loop turn later, so that what it started (network requests) is
   * under way while they load.
   */
  early?: { module: string; call: string };
}

export const AGENT_BUNDLE: BundleEntry = {
  name: 'teleboot-agent',
  entry: 'agent/main.ts',
  esmFirst: true,
  configSchema: { schema: AGENT_CONFIG_SCHEMA, module: 'agent/config.ts', exportName: 'AGENT_CONFIG_SCHEMA' },
  // The instance metadata reads of a boot go out while the agent loads.
  early: { module: 'agent/imds-early.ts', call: 'startEarlyImds' },
};

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

const VALIDATOR_MODULE = 'teleboot:config-validator';

/** The schema's validator as Ajv standalone code, with the options the program would compile it with. */
function validatorPlugin(schema: object): Plugin {
  return {
    name: 'config-validator',
    setup(b) {
      b.onResolve({ filter: /^teleboot:config-validator$/ }, (args) => ({ path: args.path, namespace: 'teleboot' }));
      b.onLoad({ filter: /.*/, namespace: 'teleboot' }, () => {
        const ajv = new Ajv({ ...CONFIG_AJV_OPTIONS, code: { source: true } });
        // Its runtime helpers (ajv/dist/runtime/...) resolve from the repository's node_modules.
        return { contents: standaloneCode(ajv, ajv.compile(schema)), loader: 'js', resolveDir: repoRoot() };
      });
    },
  };
}

/**
 * What esbuild starts from: the program's entry, after its config schema's
 * validator (when compiled ahead of time) is registered, and after its early
 * module (when it has one) has run. main runs its command when its module is
 * evaluated, hence the require() after that; required modules are evaluated
 * only then, which is what lets the early module run before them.
 */
function entryPoint(entry: BundleEntry): Pick<BuildOptions, 'entryPoints' | 'stdin' | 'plugins'> {
  const { configSchema, early } = entry;
  if (!configSchema && !early) return { entryPoints: [join(repoRoot(), entry.entry)] };
  const local = (module: string) => `'./${module.replace(/\.ts$/, '')}'`;
  const rest = [
    ...(configSchema
      ? [
          `require('./contract/config-file').usePrecompiledValidator(`,
          `  require(${local(configSchema.module)}).${configSchema.exportName},`,
          `  require('${VALIDATOR_MODULE}').default,`,
          `);`,
        ]
      : []),
    `require(${local(entry.entry)});`,
  ];
  const contents = early
    ? [`import { ${early.call} } from ${local(early.module)};`, `${early.call}();`, `setImmediate(() => {`, ...rest, `});`]
    : rest;
  return {
    stdin: { contents: contents.join('\n'), resolveDir: repoRoot(), sourcefile: `${entry.name}-entry.ts`, loader: 'ts' },
    plugins: configSchema ? [validatorPlugin(configSchema.schema)] : [],
  };
}

/** Bundles an entry into outFile (CommonJS, Node 20); the proto and the version are compiled in. */
export async function bundle(entry: BundleEntry, outFile: string, version: string): Promise<void> {
  await build({
    ...entryPoint(entry),
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
    // ES module builds import some built-ins with import(), which a single executable cannot
    // run (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): esbuild turns each into a require().
    ...(entry.esmFirst ? { mainFields: ['module', 'main'], supported: { 'dynamic-import': false } } : {}),
    define: {
      TELEBOOT_BUNDLED_PROTO: JSON.stringify(protoJson()),
      TELEBOOT_BUNDLED_VERSION: JSON.stringify(version),
    },
    logLevel: 'warning',
  });
}
