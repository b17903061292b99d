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
import { protoCodecsModule } from './proto-codecs';

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
   * first: in the bundle, before its other modules are evaluated; and, built
   * on its own (earlyScript), in the single executable's loader before the
   * bundle is even compiled, so that what it started (network requests) is
   * under way while the bundle loads. The function must do nothing when
   * called a second time with its work under way.
   */
  early?: { module: string; call: string };
  /** The contract's message functions generated now, not at run time (packaging/build/proto-codecs.ts). */
  protoCodecs?: boolean;
}

export const AGENT_BUNDLE: BundleEntry = {
  name: 'teleboot-agent',
  entry: 'agent/main.ts',
  esmFirst: true,
  configSchema: { schema: AGENT_CONFIG_SCHEMA, module: 'agent/config.ts', exportName: 'AGENT_CONFIG_SCHEMA' },
  // The instance metadata reads of a boot go out while the agent loads.
  early: { module: 'agent/imds-early.ts', call: 'startEarlyImds' },
  protoCodecs: true,
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
export function protoJson(): string {
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
/** Runs the entry's early function (its own module, so that it is evaluated first). */
const EARLY_MODULE = 'teleboot:early';
/** Registers the entry's compiled validator (its own module, evaluated before the program's). */
const REGISTER_MODULE = 'teleboot:config-validator-registration';
const CODECS_MODULE = 'teleboot:proto-codecs';
/** Registers the generated message functions (likewise). */
const REGISTER_CODECS_MODULE = 'teleboot:proto-codecs-registration';

const local = (module: string) => `'./${module.replace(/\.ts$/, '')}'`;

/** The entry's virtual modules: its early call, its validator and the validator's registration. */
function entryModules(entry: BundleEntry): Plugin {
  const { configSchema, early } = entry;
  const modules: Record<string, () => string> = {
    [EARLY_MODULE]: () => (early ? `import { ${early.call} } from ${local(early.module)};\n${early.call}();\n` : ''),
    [REGISTER_MODULE]: () =>
      configSchema
        ? [
            `import { usePrecompiledValidator } from './contract/config-file';`,
            `import { ${configSchema.exportName} } from ${local(configSchema.module)};`,
            `import validate from '${VALIDATOR_MODULE}';`,
            `usePrecompiledValidator(${configSchema.exportName}, validate);`,
          ].join('\n')
        : '',
    [REGISTER_CODECS_MODULE]: () =>
      [
        `import { usePrecompiledCodecs } from './contract/proto-client';`,
        `import codecs from '${CODECS_MODULE}';`,
        `usePrecompiledCodecs(codecs);`,
      ].join('\n'),
    [CODECS_MODULE]: () => protoCodecsModule(protoJson()),
    [VALIDATOR_MODULE]: () => {
      const ajv = new Ajv({ ...CONFIG_AJV_OPTIONS, code: { source: true } });
      return configSchema ? standaloneCode(ajv, ajv.compile(configSchema.schema)) : '';
    },
  };
  return {
    name: 'entry-modules',
    setup(b) {
      b.onResolve({ filter: /^teleboot:/ }, (args) => ({ path: args.path, namespace: 'teleboot' }));
      // Their imports resolve from the repository (Ajv's runtime helpers from its node_modules).
      b.onLoad({ filter: /.*/, namespace: 'teleboot' }, (args) => ({
        contents: modules[args.path](),
        // The validator and the codecs are generated CommonJS JavaScript; the others are written here.
        loader: args.path === VALIDATOR_MODULE || args.path === CODECS_MODULE ? 'js' : 'ts',
        resolveDir: repoRoot(),
      }));
    },
  };
}

/**
 * What esbuild starts from: the program's entry, after its early module
 * (when it has one) has run and its config schema's validator (when compiled
 * ahead of time) and its message functions (likewise) are registered. All are static imports, evaluated in
 * this order (main runs its command when its module is evaluated): a
 * require() would make esbuild wrap every module it reaches, and a wrapped
 * module's imports are all evaluated, used or not (the AWS SDK clients'
 * every command).
 */
function entryPoint(entry: BundleEntry): Pick<BuildOptions, 'entryPoints' | 'stdin' | 'plugins'> {
  const { configSchema, early, protoCodecs } = entry;
  if (!configSchema && !early && !protoCodecs) return { entryPoints: [join(repoRoot(), entry.entry)] };
  const contents = [
    ...(early ? [EARLY_MODULE] : []),
    ...(configSchema ? [REGISTER_MODULE] : []),
    ...(protoCodecs ? [REGISTER_CODECS_MODULE] : []),
    `./${entry.entry.replace(/\.ts$/, '')}`,
  ]
    .map((m) => `import '${m}';`)
    .join('\n');
  return {
    stdin: { contents, resolveDir: repoRoot(), sourcefile: `${entry.name}-entry.ts`, loader: 'ts' },
    plugins: [entryModules(entry)],
  };
}

/** The options every bundle is built with (CommonJS, Node 20), the proto and the version compiled in. */
function commonOptions(entry: BundleEntry, version: string): BuildOptions {
  return {
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
  };
}

/**
 * The entry's early module alone, as a script that runs its early function
 * (for the single executable's loader); undefined for an entry without one.
 */
export async function earlyScript(entry: BundleEntry): Promise<string | undefined> {
  if (!entry.early) return undefined;
  const built = await build({
    ...commonOptions(entry, packageVersion()),
    stdin: { contents: `import '${EARLY_MODULE}';`, resolveDir: repoRoot(), sourcefile: `${entry.name}-early.ts`, loader: 'ts' },
    plugins: [entryModules(entry)],
    write: false,
  });
  return built.outputFiles[0].text;
}

/** Bundles an entry into outFile (CommonJS, Node 20); the proto and the version are compiled in. */
export async function bundle(entry: BundleEntry, outFile: string, version: string): Promise<void> {
  await build({ ...commonOptions(entry, version), ...entryPoint(entry), outfile: outFile });
}
