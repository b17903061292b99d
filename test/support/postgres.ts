// A throwaway PostgreSQL cluster for tests: initdb in a temporary directory
// owned by the `postgres` user, listening on a free port of 127.0.0.1 (and
// a unix socket in the same directory), one database per caller. Debian's
// `postgresql` package provides the binaries (.ci/run installs it).
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { Test } from 'tap';
import { createCertificateAuthority, issueServerCertificate } from '../../control/pki';
import { freePort, startOnFreePorts } from './harness';

const run = promisify(execFile);
const SUPERUSER = 'postgres';

/** The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/<major>/bin). */
function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] && join(root, majors[0], 'bin');
}

/** Why a throwaway cluster cannot be made here, or undefined when it can. */
export function postgresUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'PostgreSQL tests run the server as the postgres user: run them as root';
  if (!binDir()) return 'PostgreSQL binaries missing (/usr/lib/postgresql/*/bin): apt-get install postgresql (.ci/run does)';
  try {
    execFileSync('id', ['-u', SUPERUSER], { stdio: 'ignore' });
  } catch {
    return 'no "postgres" user (made by the postgresql package): apt-get install postgresql';
  }
  return undefined;
}

export interface PgDatabase {
  /** postgres://postgres@127.0.0.1:<port>/<name> (no password: give `password`). */
  url: string;
  name: string;
  password: string;
}

export class PgCluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
    /** The superuser's password (host connections use scram-sha-256; the socket trusts). */
    readonly password: string,
    private readonly bin: string,
    /** With TLS: the CA that issued the server's certificate (for 127.0.0.1 and localhost). */
    readonly caFile?: string,
  ) {}

  private get data(): string {
    return join(this.dir, 'data');
  }

  private asPostgres(program: string, args: string[]) {
    return run('runuser', ['-u', SUPERUSER, '--', join(this.bin, program), ...args], { timeout: 120_000 });
  }

  /** initdb in a fresh temporary directory and start the server. */
  static async create(options: { tls?: boolean } = {}): Promise<PgCluster> {
    const bin = binDir()!;
    const dir = mkdtempSync(join(tmpdir(), 'teleboot-pg-'));
    const uid = Number((await run('id', ['-u', SUPERUSER])).stdout.trim());
    const gid = Number((await run('id', ['-g', SUPERUSER])).stdout.trim());
    chownSync(dir, uid, gid);
    const password = randomBytes(12).toString('hex');
    const pwfile = join(dir, 'pw');
    writeFileSync(pwfile, password, { mode: 0o600 });
    chownSync(pwfile, uid, gid);
    const caFile = options.tls ? join(dir, 'ca.pem') : undefined;
    // Its port is picked when it starts, below.
    const files = new PgCluster(dir, 0, password, bin, caFile);
    await files.asPostgres('initdb', [
      '-D',
      files.data,
      '-U',
      SUPERUSER,
      `--pwfile=${pwfile}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '--locale=C.UTF-8',
      '--encoding=UTF8',
    ]);
    rmSync(pwfile);
    if (caFile) {
      const ca = await createCertificateAuthority('teleboot test PostgreSQL CA');
      const server = await issueServerCertificate(ca, ['127.0.0.1', 'localhost']);
      writeFileSync(caFile, ca.certPem);
      for (const [name, pem] of [
        ['server.crt', server.certPem],
        ['server.key', server.keyPem],
      ]) {
        writeFileSync(join(dir, name), pem, { mode: 0o600 });
        chownSync(join(dir, name), uid, gid);
      }
    }
    // On another port when the one probed was taken before the server bound it.
    return startOnFreePorts(async () => {
      const cluster = new PgCluster(dir, await freePort(), password, bin, caFile);
      await cluster.start();
      return cluster;
    }, /could not bind|Address already in use/);
  }

  /** Starts (or restarts after stop()) the server and waits until it accepts connections. */
  async start(): Promise<void> {
    // fsync off: a throwaway cluster survives a crash of its server, never of the machine.
    let options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    if (this.caFile)
      options += ` -c ssl=on -c ssl_cert_file=${join(this.dir, 'server.crt')} -c ssl_key_file=${join(this.dir, 'server.key')}`;
    const log = join(this.dir, 'server.log');
    try {
      await this.asPostgres('pg_ctl', ['-D', this.data, '-l', log, '-o', options, '-w', '-t', '60', 'start']);
    } catch (e) {
      // pg_ctl says only "examine the log output": the reason is in the server's log.
      const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '(no server log)';
      throw new Error(`PostgreSQL did not start on port ${this.port}: ${(e as Error).message}\n${tail}`);
    }
  }

  /**
   * Stops the server. fast: open connections are closed, committed work is
   * kept; immediate: the server processes quit at once, as in a crash (the
   * next start recovers from the WAL).
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.asPostgres('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  /** A superuser connection to a database over TCP. */
  connect(database = 'postgres'): Client {
    return new Client({ host: '127.0.0.1', port: this.port, user: SUPERUSER, password: this.password, database });
  }

  /** A new empty database. */
  async createDatabase(prefix = 'teleboot'): Promise<PgDatabase> {
    const name = `${prefix}_${randomBytes(4).toString('hex')}`;
    const client = this.connect();
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return { url: `postgres://${SUPERUSER}@127.0.0.1:${this.port}/${name}`, name, password: this.password };
  }

  /** Stops the server if it runs and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A throwaway cluster, removed at the test's teardown. Callers skip first
 * with postgresUnavailable()'s reason: `t.test(name, { skip: postgresUnavailable() ?? false }, ...)`.
 */
export async function testCluster(t: Test, options: { tls?: boolean } = {}): Promise<PgCluster> {
  const cluster = await PgCluster.create(options);
  t.teardown(() => cluster.destroy());
  return cluster;
}
