// Let's Encrypt's test CA, pebble, and its companion DNS server,
// pebble-challtestsrv, as child processes for one test. Every name resolves
// through challtestsrv to 127.0.0.1, so pebble's validation authority reaches
// HTTP-01 answers on this host (at `httpPort`) and reads DNS-01 TXT records
// that tests put into challtestsrv, for example through the Route 53 emulator.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCertificateAuthority, issueServerCertificate } from '../../control/pki';
import { freePort, restRequest, startOnFreePorts } from './harness';

export interface PebbleOptions {
  /** Where pebble's VA connects for HTTP-01 (http://<name>:<httpPort>/, name -> 127.0.0.1); a free port when omitted. */
  httpPort?: number;
  /** Where pebble's VA connects for TLS-ALPN-01; a free port when omitted. */
  tlsPort?: number;
  /** Let challtestsrv itself answer these (on httpPort / tlsPort, fed through its management API) instead of the caller. */
  challtestsrvServes?: Array<'http-01' | 'tls-alpn-01'>;
  /** More environment for pebble, e.g. PEBBLE_CHAIN_LENGTH or PEBBLE_VA_ALWAYS_VALID. */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export interface Pebble {
  /** the ACME directory, https://127.0.0.1:<port>/dir */
  directoryUrl: string;
  /** trusts pebble's own HTTPS listeners (ACME and management), not the certificates it issues */
  caPem: string;
  managementUrl: string;
  challtestsrvUrl: string;
  dnsPort: number;
  httpPort: number;
  tlsPort: number;
  /** pebble's issuing root, new on every start: what trusts the certificates it issues */
  rootsPem(): Promise<string>;
  intermediatePem(): Promise<string>;
  /** both processes' output so far, for failure messages */
  logs(): string;
  stop(): Promise<void>;
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Whether pebble and pebble-challtestsrv can be started (Debian: `apt-get install pebble`). */
export function pebbleAvailable(): boolean {
  return onPath('pebble') && onPath('pebble-challtestsrv');
}

// Children still running when this process exits (a failed test skipping its teardown) go with it;
// where setpriv is missing this is all that stops them.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts pebble and its challenge server on free ports. */
export function startPebble(opts: PebbleOptions = {}): Promise<Pebble> {
  return startOnFreePorts(() => startPebbleOnce(opts), /address already in use/);
}

async function startPebbleOnce(opts: PebbleOptions): Promise<Pebble> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pebble-'));
  // Distinct ports: freePort closes what it probed, so the kernel could hand one out twice.
  const taken = new Set([opts.httpPort, opts.tlsPort]);
  const ports: number[] = [];
  while (ports.length < 6) {
    const port = await freePort();
    if (taken.has(port)) continue;
    taken.add(port);
    ports.push(port);
  }
  const [acmePort, managementPort, dnsPort, challtestsrvPort, freeHttp, freeTls] = ports;
  const httpPort = opts.httpPort ?? freeHttp;
  const tlsPort = opts.tlsPort ?? freeTls;
  const serves = new Set(opts.challtestsrvServes ?? []);

  const ca = await createCertificateAuthority('teleboot test pebble listener CA', 2);
  const leaf = await issueServerCertificate(ca, ['127.0.0.1', 'localhost'], 2);
  fs.writeFileSync(path.join(dir, 'cert.pem'), leaf.certPem);
  fs.writeFileSync(path.join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
  fs.writeFileSync(
    path.join(dir, 'pebble-config.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: path.join(dir, 'cert.pem'),
        privateKey: path.join(dir, 'key.pem'),
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );

  let output = '';
  const children: ChildProcess[] = [];
  const launch = (command: string, args: string[], env: Record<string, string> = {}) => {
    // setpriv has the kernel kill the child when this process dies in any way, a signal included.
    const [file, argv] = onPath('setpriv') ? ['setpriv', ['--pdeathsig', 'KILL', command, ...args]] : [command, args];
    const child = spawn(file, argv, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    children.push(child);
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code, signal) => {
      running.delete(child);
      output += `[${command} exited: ${signal ?? code}]\n`;
    });
    // Spawn failures (ENOENT) arrive as 'error'; they are reported by the start-up wait below.
    child.on('error', (e) => (output += `[${command}: ${e.message}]\n`));
  };

  launch('pebble-challtestsrv', [
    '-dns01',
    `127.0.0.1:${dnsPort}`,
    '-management',
    `127.0.0.1:${challtestsrvPort}`,
    '-http01',
    serves.has('http-01') ? `127.0.0.1:${httpPort}` : '',
    '-tlsalpn01',
    serves.has('tls-alpn-01') ? `127.0.0.1:${tlsPort}` : '',
    '-https01',
    '',
    // With the default AAAA answer (::1) pebble's VA dials [::1] first and never reaches a listener on 127.0.0.1.
    '-defaultIPv6',
    '',
  ]);
  launch('pebble', ['-config', path.join(dir, 'pebble-config.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: '0',
    PEBBLE_AUTHZREUSE: '0',
    ...opts.env,
  });

  const stop = async () => {
    await Promise.all(children.map(stopChild));
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const challtestsrvUrl = `http://127.0.0.1:${challtestsrvPort}`;
  const management = (p: string) => restRequest<string>({ port: managementPort, ca: ca.certPem }, 'GET', p);
  const probes = [
    // Any HTTP answer (its root is a 404) means the management API is listening.
    () => fetch(`${challtestsrvUrl}/`).then(() => true),
    () => restRequest({ port: acmePort, ca: ca.certPem }, 'GET', '/dir').then((r) => r.status === 200),
  ];
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  try {
    for (const probe of probes) {
      while (!(await probe().catch(() => false))) {
        if (children.some((c) => c.exitCode !== null || c.signalCode !== null || c.pid === undefined))
          throw new Error('exited during start-up');
        if (Date.now() > deadline) throw new Error('not up in time');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // challtestsrv keeps running when one of its listeners could not bind.
    if (/bind: address already in use/.test(output)) throw new Error('a port was taken');
  } catch (e) {
    await stop();
    throw new Error(`pebble: ${(e as Error).message}\n${output}`);
  }

  const pem = async (p: string) => {
    const res = await management(p);
    if (res.status !== 200) throw new Error(`pebble management ${p}: HTTP ${res.status}`);
    return res.body;
  };
  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    caPem: ca.certPem,
    managementUrl: `https://127.0.0.1:${managementPort}`,
    challtestsrvUrl,
    dnsPort,
    httpPort,
    tlsPort,
    rootsPem: () => pem('/roots/0'),
    intermediatePem: () => pem('/intermediates/0'),
    logs: () => output,
    stop,
  };
}
