#!/usr/bin/env node
// teleboot-control: holds the desired role of every instance and answers
// agents over gRPC and operators over REST.
import { createLogger } from '../contract/log';
import { parseFlags, runMain, UsageError } from '../contract/cli';
import { VERSION } from '../contract/version';
import { CONTROL_DEFAULTS, loadControlConfig, type ControlFlags } from './config';
import { openDataDir } from './startup';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createBackup, restoreBackup } from './backup';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { InputError } from './errors';
import { importCommand } from './import/command';
import { openStore } from './store/open';
import { API_SCOPES, type ApiScope } from './store/store';
import { Trust } from './trust';

const USAGE = `Usage: teleboot-control <command> [flags]

Commands:
  serve      run the control server (gRPC for agents, REST for operators)
  tokens     create, list and revoke REST API tokens
  backup     copy the data directory (database, identity, keys) into one file, while serving
  restore    put a backup in place as a new data directory
  import     show (and with --apply save) what a Teleport AMI conf or the
             seed's Ansible variables become in teleboot
  version    print the version

Run "teleboot-control <command> --help" for the flags of a command.
`;

const SERVE_USAGE = `Usage: teleboot-control serve [flags]

Runs the control server on its embedded SQLite store (<data-dir>/control.db),
or with --store on PostgreSQL. On first start it
generates a CA, a server certificate, a join token and the first admin API
token under the data directory; give agents <data-dir>/tls/ca.pem and
<data-dir>/join-token, and operators <data-dir>/admin-token.

Flags:
  -c, --config FILE        YAML configuration file (packaging/control.yaml.example;
                           installed as /etc/teleboot/control.yaml)
      --data-dir DIR       state directory (default ${CONTROL_DEFAULTS.dataDir})
      --grpc-listen ADDR   agents' gRPC listener (default ${CONTROL_DEFAULTS.grpcListen})
      --rest-listen ADDR   operators' REST listener (default ${CONTROL_DEFAULTS.restListen})
      --heartbeat-interval D  how often agents report, e.g. 30s (default ${CONTROL_DEFAULTS.heartbeatInterval});
                           an instance is offline after three missed reports
      --publisher-lease D  how long the auth servers' publisher lease lasts
                           without renewal (default ${CONTROL_DEFAULTS.publisherLease})
      --ca-source SOURCE   where the cluster CA lives: data_dir (default), or
                           ssm:/PREFIX for several replicas: the CA (PREFIX/ca) and
                           the join token (PREFIX/join-token) as SSM SecureStrings,
                           created by the first replica to start (control.yaml ca.source)
      --log-level LEVEL    trace, debug, info, warn or error (default info)
      --store URL          postgres://user@host:port/database: keep the state in
                           PostgreSQL (several replicas may share it) instead of
                           SQLite; the password comes from store.password_file in
                           the configuration or the PGPASSWORD environment
                           variable, never the URL; TLS: store.tls
      --force-new-cluster  begin a new cluster although the data directory holds
                           one whose database is missing or empty (every agent
                           enrolls again); without it the server refuses to start
  -h, --help               show this help

At start the server checks its data directory and refuses to run on one that
is damaged or mixed up, naming the file: a database that fails SQLite's
integrity check or is newer than this release, a database and cluster-id of
different clusters, half a key pair. Restore from a backup then (see
"teleboot-control restore --help").

Examples:
  teleboot-control serve --data-dir ./control-data
  teleboot-control serve --config /etc/teleboot/control.yaml
  teleboot-control serve --data-dir /var/lib/teleboot-control --grpc-listen 0.0.0.0:7443
  teleboot-control serve --config /etc/teleboot/control.yaml --ca-source ssm:/teleboot/prod
  teleboot-control serve --config /etc/teleboot/control.yaml --store postgres://teleboot@db.internal:5432/teleboot
    (control.yaml: store: {password_file: /etc/teleboot/db-password, tls: {mode: verify-full, ca_file: /etc/teleboot/rds-ca.pem}})
`;

const VERSION_USAGE = `Usage: teleboot-control version

Prints the version.
`;

async function serve(args: string[]): Promise<number | void> {
  const flags = parseFlags<ControlFlags & { help?: boolean; 'force-new-cluster'?: boolean }>(
    args,
    {
      config: { type: 'string', short: 'c' },
      'data-dir': { type: 'string' },
      'grpc-listen': { type: 'string' },
      'rest-listen': { type: 'string' },
      'log-level': { type: 'string' },
      'heartbeat-interval': { type: 'string' },
      'publisher-lease': { type: 'string' },
      'ca-source': { type: 'string' },
      store: { type: 'string' },
      'force-new-cluster': { type: 'boolean' },
    },
    SERVE_USAGE,
  );
  if (flags.help) return void process.stdout.write(SERVE_USAGE);
  const { 'force-new-cluster': forceNewCluster, ...configFlags } = flags;
  const config = loadControlConfig(configFlags);
  const log = createLogger('teleboot-control', config.logLevel);
  // The data directory first: a refusal needs none of the servers' modules.
  const opened = await openDataDir(config, log, { forceNewCluster });
  const { startControlServer } = await import('./server.js');
  const server = await startControlServer(config, log, { opened });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      server.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

const TOKENS_USAGE = `Usage: teleboot-control tokens <create|list|revoke> [flags]

Manages the REST API tokens in the control server's database (the same
SQLite file the server uses; it may be running). A token is printed once,
when it is created; the database keeps only its SHA-256.

  tokens create --name NAME --scope admin|operator|monitor
  tokens list
  tokens revoke NAME|ID

Scopes: admin (settings, tokens, bindings), operator (assignments, rules,
deregistration), monitor (read-only, health and metrics).

Flags:
  -c, --config FILE    the server's YAML configuration (for data_dir and store)
      --data-dir DIR   state directory (default ${CONTROL_DEFAULTS.dataDir})
      --name NAME      the token's name: who uses it; it names them in the audit log
      --scope SCOPE    admin, operator or monitor
      --json           print JSON
  -h, --help           show this help

Example:
  teleboot-control tokens create --name grafana --scope monitor --data-dir ./control-data
`;

async function tokens(args: string[]): Promise<number | void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        'data-dir': { type: 'string' },
        name: { type: 'string' },
        scope: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message, TOKENS_USAGE);
  }
  const { values, positionals } = parsed;
  const [action, ...operands] = positionals;
  if (values.help || action === undefined) return void process.stdout.write(TOKENS_USAGE);
  const config = loadControlConfig({ config: values.config, 'data-dir': values['data-dir'] });
  if (!config.postgres && !existsSync(config.storePath))
    throw new Error(`no control database at ${config.storePath}; start the server once, or give --data-dir or --config`);
  const store = await openStore(config);
  const trust = new Trust(store);
  const actor = `cli:${userInfo().username}`;
  const print = (value: unknown, text: string) => process.stdout.write(values.json ? JSON.stringify(value, null, 2) + '\n' : text);
  try {
    switch (action) {
      case 'create': {
        if (!values.name) throw new UsageError('tokens create needs --name', TOKENS_USAGE);
        if (!values.scope || !(API_SCOPES as readonly string[]).includes(values.scope))
          throw new UsageError(`tokens create needs --scope ${API_SCOPES.join('|')}`, TOKENS_USAGE);
        if (operands.length) throw new UsageError(`unexpected "${operands[0]}"`, TOKENS_USAGE);
        const { token, record } = await trust.createApiToken(values.name, values.scope as ApiScope, actor);
        print({ ...record, token }, `${token}\n`);
        process.stderr.write(`created API token "${record.name}" (${record.scope}, id ${record.id}); it is shown only this once\n`);
        return;
      }
      case 'list': {
        const all = await store.listApiTokens();
        const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
        const rows = all.map((t) => [
          t.id,
          t.name,
          t.scope,
          iso(t.createdAt),
          iso(t.lastUsedAt),
          t.revokedAt === null ? 'active' : `revoked ${iso(t.revokedAt)}`,
        ]);
        const header = ['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED', 'STATE'];
        const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
        const line = (r: string[]) =>
          r
            .map((c, i) => c.padEnd(widths[i]))
            .join('  ')
            .trimEnd() + '\n';
        print(all, [header, ...rows].map(line).join(''));
        return;
      }
      case 'revoke': {
        if (operands.length !== 1) throw new UsageError('tokens revoke needs one token name or id', TOKENS_USAGE);
        const revoked = await trust.revokeApiToken(operands[0], actor);
        print(revoked, `revoked API token "${revoked.name}" (${revoked.scope}, id ${revoked.id})\n`);
        return;
      }
      default:
        throw new UsageError(`unknown tokens command "${action}"`, TOKENS_USAGE);
    }
  } catch (err) {
    if (err instanceof InputError) throw new UsageError(err.message, TOKENS_USAGE);
    throw err;
  } finally {
    await store.close();
  }
}

const BACKUP_USAGE = `Usage: teleboot-control backup --to FILE [flags]

Writes the control server's data directory into FILE (a tar archive, mode
0600: it holds the CA key): a consistent copy of the database taken while
the servers run (SQLite's online backup; on PostgreSQL pg_dump, which must be
installed, of the server's major version or newer), the cluster id, the CA
and server key pairs, the join token and the first admin token. FILE must
not exist yet. Keep backups where only operators can read them. On
PostgreSQL the password comes from store.password_file or PGPASSWORD, as for
serve, and reaches pg_dump in its environment only; keep taking RDS
snapshots (or your database's own backups) for point-in-time recovery.

Flags:
      --to FILE        the backup file to create
  -c, --config FILE    the server's YAML configuration (for data_dir, the file paths and the store)
      --data-dir DIR   state directory (default ${CONTROL_DEFAULTS.dataDir})
      --store URL      postgres://user@host:port/database: the PostgreSQL store
  -h, --help           show this help

Examples:
  teleboot-control backup --data-dir /var/lib/teleboot-control --to /root/teleboot-$(date +%F).tar
  PGPASSWORD=... teleboot-control backup --store postgres://teleboot@db.internal:5432/teleboot --to /root/teleboot-$(date +%F).tar
`;

async function backup(args: string[]): Promise<number | void> {
  const flags = parseFlags<{ to?: string; config?: string; 'data-dir'?: string; store?: string; help?: boolean }>(
    args,
    { to: { type: 'string' }, config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, store: { type: 'string' } },
    BACKUP_USAGE,
  );
  if (flags.help) return void process.stdout.write(BACKUP_USAGE);
  if (!flags.to) throw new UsageError('backup needs --to FILE', BACKUP_USAGE);
  const config = loadControlConfig({ config: flags.config, 'data-dir': flags['data-dir'], store: flags.store });
  const done = await createBackup(config, flags.to);
  process.stdout.write(
    `backed up cluster ${done.clusterId} (${done.instances} instances; ${done.members.join(', ')}) to ${done.file}, ${done.bytes} bytes\n`,
  );
}

const RESTORE_USAGE = `Usage: teleboot-control restore --from FILE --data-dir DIR [--force]

Puts a backup made by "teleboot-control backup" in place as the data
directory DIR: every file is checked against the backup's checksums and the
database against SQLite's integrity check before DIR takes its name (0700,
files 0600). Agents carry on with the certificates they hold. A DIR that
holds files is refused; with --force it is moved aside to
DIR.before-restore-<time> (nothing is deleted). Stop the server first, then
start it on DIR. A backup of a PostgreSQL store goes into the database
--store (or --config's store.url) names, which must be new and empty
(createdb); pg_restore must be installed; the password as for serve. Copy
DIR to every replica.

Flags:
      --from FILE      the backup file
      --data-dir DIR   the data directory to restore into
      --force          move an existing DIR aside instead of refusing
      --store URL      postgres://user@host:port/database: where a PostgreSQL backup's database goes
  -c, --config FILE    the server's YAML configuration (for store.url, store.password_file, store.tls)
  -h, --help           show this help

Examples:
  teleboot-control restore --from /root/teleboot-2025-01-31.tar --data-dir /var/lib/teleboot-control --force
  PGPASSWORD=... teleboot-control restore --from /root/teleboot-2025-01-31.tar --data-dir /var/lib/teleboot-control \\
    --store postgres://teleboot@db.internal:5432/teleboot_restored
`;

async function restore(args: string[]): Promise<number | void> {
  const flags = parseFlags<{ from?: string; 'data-dir'?: string; force?: boolean; store?: string; config?: string; help?: boolean }>(
    args,
    {
      from: { type: 'string' },
      'data-dir': { type: 'string' },
      force: { type: 'boolean' },
      store: { type: 'string' },
      config: { type: 'string', short: 'c' },
    },
    RESTORE_USAGE,
  );
  if (flags.help) return void process.stdout.write(RESTORE_USAGE);
  if (!flags.from || !flags['data-dir']) throw new UsageError('restore needs --from FILE and --data-dir DIR', RESTORE_USAGE);
  const { postgres } = loadControlConfig({ config: flags.config, store: flags.store });
  const done = await restoreBackup(flags.from, resolve(flags['data-dir']), flags.force ?? false, postgres);
  if (done.movedAside) process.stdout.write(`moved the data directory that was there to ${done.movedAside}\n`);
  const store = postgres ? ` --store ${postgres.url}` : '';
  process.stdout.write(
    `restored cluster ${done.clusterId} (${done.instances} instances) into ${done.dataDir}${postgres ? ` and ${postgres.url}` : ''}; ` +
      `start it with: teleboot-control serve --data-dir ${done.dataDir}${store}\n`,
  );
}

async function main(): Promise<number | void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'tokens':
      return tokens(rest);
    case 'backup':
      return backup(rest);
    case 'restore':
      return restore(rest);
    case 'import':
      return importCommand(rest);
    case 'version':
      if (parseFlags<{ help?: boolean }>(rest, {}, VERSION_USAGE).help) return void process.stdout.write(VERSION_USAGE);
      return void process.stdout.write(`teleboot-control ${VERSION}\n`);
    case '--version':
      return void process.stdout.write(`teleboot-control ${VERSION}\n`);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return void process.stdout.write(USAGE);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

runMain(main, USAGE);
