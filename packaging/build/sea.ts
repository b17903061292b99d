// The agent as a Node.js single executable application: the node binary of
// the build machine with a small loader injected and the bundle and a V8
// code cache appended (see PAYLOAD_MAGIC), so a host needs no Node.js and
// skips compiling the agent at every boot.
//
// The code cache is made after a training run of the bundle, not right after
// it was compiled as Node's own `useCodeCache` does: V8 compiles most
// functions lazily, at their first call, and only a cache made after those
// calls holds them. The best training run is a whole boot (`once` to ready,
// given a TrainingBoot: packaging/build/training.ts sets one up against a
// local control server and the SSM and IMDS emulators): the cache then holds
// the functions of every step, from the config to the status report.
// Measured against a cache made in a run that stops at enrollment: some
// 20-30 ms less CPU per boot, most of it after enrollment (the assignment,
// SSM, rendering, the files, Teleport's start and the report).
//
// Without a TrainingBoot (the package tests), the run gets as far as it can
// on the build machine alone: `once` with a config read, an identity from a
// local stand-in for IMDS, a fresh enrollment key and a gRPC call set up to a
// local port that closes every connection (nothing leaves the machine; no
// token is sent: the TLS handshake never completes), stopped after a while.
// The executable's main is then a loader that compiles the bundle with that cache.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './layout';
import { stopProcessGroup } from './process-group';

// The fuse Node.js looks for to know a blob was injected (documented with single executable applications).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The bundle as CommonJS wraps it; the cache is only valid for this very source text. */
const WRAP_START = '(function (exports, require, module, __filename, __dirname) {';
const WRAP_END = '\n})';
/** The name the bundle is compiled under (stack traces show it). */
const FILENAME = 'teleboot-agent.js';

/**
 * The bundle and its code cache follow the executable's ELF image, after
 * the last byte any segment maps, and a trailer says where: the magic
 * string, then the source's and the cache's lengths (64-bit little-endian).
 * Not single executable assets: those sit in a segment the kernel maps, and
 * reading them once (the loader copies both) leaves all of their 4.6 MB
 * resident in the agent's RSS for its whole life as file pages. read(2)
 * puts them in the page cache only, which the agent does not hold.
 */
const PAYLOAD_MAGIC = 'TELEBOOT-PAYLOAD-1';
const TRAILER_BYTES = PAYLOAD_MAGIC.length + 16;

/**
 * The executable's main: reads the bundle and its code cache from the end
 * of the executable (/proc/self/exe: the very file this process runs, even
 * when a package upgrade has replaced the path since), compiles the bundle
 * with that cache and runs it as the main module. A cache V8 rejects
 * (another node, other flags) costs the compile it would have saved,
 * nothing else.
 */
const LOADER = `'use strict';
const { closeSync, fstatSync, openSync, readSync } = require('node:fs');
const { Script } = require('node:vm');
const fd = (() => { try { return openSync('/proc/self/exe', 'r'); } catch { return openSync(process.execPath, 'r'); } })();
const read = (length, position) => {
  const buffer = Buffer.allocUnsafeSlow(length);
  for (let done = 0; done < length; ) {
    const n = readSync(fd, buffer, done, length - done, position + done);
    if (n === 0) throw new Error('teleboot-agent: the executable is cut short (' + process.execPath + '); reinstall the package');
    done += n;
  }
  return buffer;
};
const end = fstatSync(fd).size;
const trailer = read(${TRAILER_BYTES}, end - ${TRAILER_BYTES});
if (trailer.toString('latin1', 0, ${PAYLOAD_MAGIC.length}) !== ${JSON.stringify(PAYLOAD_MAGIC)})
  throw new Error('teleboot-agent: no bundle at the end of the executable (' + process.execPath + '); reinstall the package');
const sourceLength = Number(trailer.readBigUInt64LE(${PAYLOAD_MAGIC.length}));
const cacheLength = Number(trailer.readBigUInt64LE(${PAYLOAD_MAGIC.length + 8}));
const sourceAt = end - ${TRAILER_BYTES} - cacheLength - sourceLength;
const source = read(sourceLength, sourceAt).toString('utf8');
const cachedData = read(cacheLength, sourceAt + sourceLength);
closeSync(fd);
new Script(source, { filename: ${JSON.stringify(FILENAME)}, cachedData }).runInThisContext()(exports, require, module, __filename, __dirname);
`;

/**
 * Appends the source the loader compiles (the bundle already wrapped: no
 * second 2 MB string made at every start), its cache and the trailer (see
 * PAYLOAD_MAGIC) to the executable.
 */
function appendPayload(executable: string, bundleFile: string, cacheFile: string): void {
  const source = Buffer.concat([Buffer.from(WRAP_START), readFileSync(bundleFile), Buffer.from(WRAP_END)]);
  const cache = readFileSync(cacheFile);
  const trailer = Buffer.alloc(TRAILER_BYTES);
  trailer.write(PAYLOAD_MAGIC, 0, 'latin1');
  trailer.writeBigUInt64LE(BigInt(source.length), PAYLOAD_MAGIC.length);
  trailer.writeBigUInt64LE(BigInt(cache.length), PAYLOAD_MAGIC.length + 8);
  appendFileSync(executable, Buffer.concat([source, cache, trailer]));
}

/**
 * Run once at build time: the training run (above) of the bundle, from a
 * vm.Script compiled as the loader compiles it; the script's code cache is
 * written when the process exits. Plain JavaScript of its own, run by the
 * build's node without flags (a cache made under V8 flags is rejected
 * without them). Whatever the run reaches, the cache holds; a run that stops
 * early only leaves a smaller cache. Its arguments: the bundle, the cache
 * file, how long the run may go on, and the agent.yaml of a TrainingBoot
 * (none: the closed-port run).
 */
const WARMER = `'use strict';
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { rootCertificates } = require('node:tls');
const { Script } = require('node:vm');
const [bundleFile, cacheFile, runMs, bootConfig] = process.argv.slice(2);
const script = new Script(${JSON.stringify(WRAP_START)} + readFileSync(bundleFile, 'utf8') + ${JSON.stringify(WRAP_END)}, { filename: ${JSON.stringify(FILENAME)} });
const cleanups = [];
process.on('exit', () => {
  writeFileSync(cacheFile, script.createCachedData());
  for (const cleanup of cleanups) cleanup();
});
// No proxy of the build machine's (gRPC and the SDK would go through it): the run talks to loopback only.
for (const name of ['grpc_proxy', 'https_proxy', 'http_proxy', 'GRPC_PROXY', 'HTTPS_PROXY', 'HTTP_PROXY']) delete process.env[name];
function runAgent(configFile) {
  process.argv = [process.argv[0], ${JSON.stringify(FILENAME)}, 'once', '-c', configFile];
  // The agent stops on SIGTERM as it does under systemd; its exit writes the cache.
  setTimeout(() => process.kill(process.pid, 'SIGTERM'), Number(runMs)).unref();
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, require, mod, ${JSON.stringify(FILENAME)}, '.');
}
function closedPortRun() {
  const dir = mkdtempSync(join(tmpdir(), 'teleboot-agent-training-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // AWS credentials from the environment: the SDK looks nowhere else (no instance profile of the build machine).
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'training', AWS_SECRET_ACCESS_KEY: 'training', AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', TELEBOOT_LOG_LEVEL: 'fatal' });
  const document = JSON.stringify({ instanceId: 'i-00000000000000000', region: 'us-east-1', availabilityZone: 'us-east-1a',
    accountId: '000000000000', privateIp: '127.0.0.1', instanceType: 't3.micro', imageId: 'ami-00000000000000000' });
  const imds = http.createServer((req, res) => {
    const path = (req.url || '').replace(/\\/+/g, '/');
    const body = path === '/latest/api/token' ? 'training' : path.endsWith('/document') ? document
      : path.endsWith('/local-hostname') ? 'localhost' : undefined;
    res.writeHead(body === undefined ? 404 : 200);
    res.end(body === undefined ? '' : body);
  });
  // The control server and SSM of the run: a port that closes every connection it accepts.
  const closed = net.createServer((socket) => socket.destroy());
  imds.listen(0, '127.0.0.1', () => closed.listen(0, '127.0.0.1', () => {
    const at = (server) => '127.0.0.1:' + server.address().port;
    writeFileSync(join(dir, 'ca.pem'), rootCertificates[0]);
    writeFileSync(join(dir, 'join-token'), 'training\\n');
    writeFileSync(join(dir, 'agent.yaml'), [
      'control: {endpoints: [' + at(closed) + '], ca_file: ' + join(dir, 'ca.pem') + '}',
      'enrollment: {join_token_file: ' + join(dir, 'join-token') + '}',
      'paths: {state_dir: ' + join(dir, 'state') + ', secrets_dir: ' + join(dir, 'secrets') + ', teleport_config: ' + join(dir, 'teleport.yaml') +
        ', teleport_data_dir: ' + join(dir, 'teleport') + ', unit_dir: ' + join(dir, 'units') + ', environment_file: ' + join(dir, 'environment') + '}',
      'service_manager: {type: process}',
      // Block style, as agent/imds-early.ts reads it: the early IMDS reads go to the stand-in too.
      'aws:',
      '  imds_endpoint: http://' + at(imds),
      '  ssm_endpoint: http://' + at(closed),
      'retry: {initial_delay: 50ms, max_delay: 100ms}',
      'log_level: fatal',
    ].join('\\n') + '\\n');
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = 'http://' + at(imds);
    runAgent(join(dir, 'agent.yaml'));
  }));
}
if (bootConfig) runAgent(bootConfig);
else closedPortRun();
`;

/** A boot the training run makes in full (packaging/build/training.ts): its agent.yaml, and the environment it needs. */
export interface TrainingBoot {
  configFile: string;
  env: NodeJS.ProcessEnv;
}

/** How long the closed-port run goes on: long enough to reach its enrollment attempts on a busy build machine. */
const CLOSED_PORT_RUN_MS = 2000;
/** How long a whole training boot may take on a busy build machine before it counts as failed. */
const TRAINING_BOOT_MS = 60_000;

/**
 * Runs the warmer; the cache file is the result. The closed-port run's exit
 * code (stopped by SIGTERM) says nothing; a training boot must end ready
 * (exit 0), or the cache would silently miss what it was run for. The
 * warmer's process group is stopped after: `once` leaves its Teleport running.
 */
async function trainCodeCache(warmer: string, bundleFile: string, cache: string, boot?: TrainingBoot): Promise<void> {
  rmSync(cache, { force: true });
  const runMs = boot ? TRAINING_BOOT_MS : CLOSED_PORT_RUN_MS;
  const child = spawn(process.execPath, [warmer, bundleFile, cache, String(runMs), ...(boot ? [boot.configFile] : [])], {
    env: { ...process.env, ...boot?.env, NODE_OPTIONS: '' },
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  // The training boot's Teleport.
  await stopProcessGroup(child.pid!);
  if (!existsSync(cache) || statSync(cache).size === 0)
    throw new Error(`the code cache's training run of ${bundleFile} wrote no cache (exit ${code}):\n${stderr}`);
  if (boot && code !== 0)
    throw new Error(`the code cache's training boot (${boot.configFile}) did not end ready (exit ${code}):\n${stderr}`);
}

/**
 * The executable's main with an early script (the bundle's early module on
 * its own, see BundleEntry.early): that runs first, and the loader one event
 * loop turn later, so that what it started (the instance metadata reads)
 * goes out while the bundle loads. Each runs in a function of its own, so
 * that their names do not meet. Written beside the plain loader; its path.
 */
function writeEarlyLoader(loader: string, early: string): string {
  const file = loader.replace(/\.js$/, '-early.js');
  writeFileSync(file, `'use strict';\n(function () {\n${early}\n})();\nsetImmediate(() => {\n${LOADER}});\n`);
  return file;
}

/** What goes into the executable beside the bundle: a training boot for its code cache, and the early script its loader runs first. */
export interface SingleExecutableOptions {
  training?: TrainingBoot;
  early?: string;
}

export async function singleExecutable(
  bundleFile: string,
  outFile: string,
  workDir: string,
  opts: SingleExecutableOptions = {},
): Promise<void> {
  const loader = join(workDir, 'sea-main.js');
  const warmer = join(workDir, 'sea-warm.cjs');
  const cache = join(workDir, 'bundle.cache');
  writeFileSync(loader, LOADER);
  writeFileSync(warmer, WARMER);
  await trainCodeCache(warmer, bundleFile, cache, opts.training);
  const main = opts.early === undefined ? loader : writeEarlyLoader(loader, opts.early);
  const config = join(workDir, 'sea-config.json');
  const blob = join(workDir, 'sea-prep.blob');
  writeFileSync(
    config,
    JSON.stringify({
      main,
      output: blob,
      disableExperimentalSEAWarning: true,
    }),
  );
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'pipe' });
  copyFileSync(process.execPath, outFile);
  chmodSync(outFile, 0o755);
  const postject = join(repoRoot(), 'node_modules', 'postject', 'dist', 'cli.js');
  execFileSync(process.execPath, [postject, outFile, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { stdio: 'ignore' });
  appendPayload(outFile, bundleFile, cache);
}
