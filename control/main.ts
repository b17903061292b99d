#!/usr/bin/env node
// teleboot-control: holds the desired role of every instance and answers
// agents over gRPC and operators over REST.
import { createLogger } from '../contract/log';
import { parseFlags, runMain, UsageError } from '../contract/cli';
import { VERSION } from '../contract/version';
import { CONTROL_DEFAULTS, loadControlConfig, type ControlFlags } from './config';
import { startControlServer } from './server';
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { InputError } from './errors';
import { SqliteStore } from './store/sqlite';
import { API_SCOPES, type ApiScope } from './store/store';
import { Trust } from './trust';

const USAGE = `Usage: teleboot-control <command> [flags]

Commands:
  serve      run the control server (gRPC for agents, REST for operators)
  tokens     create, list and revoke REST API tokens
  version    print the version

Run "teleboot-control <command> --help" for the flags of a command.
`;

const SERVE_USAGE = `Usage: teleboot-control serve [flags]

Runs the control server on its embedded SQLite store. On first start it
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
      --log-level LEVEL    trace, debug, info, warn or error (default info)
  -h, --help               show this help

Examples:
  teleboot-control serve --data-dir ./control-data
  teleboot-control serve --config /etc/teleboot/control.yaml
`;

const VERSION_USAGE = `Usage: teleboot-control version

Prints the version.
`;

async function serve(args: string[]): Promise<number | void> {
  const flags = parseFlags<ControlFlags & { help?: boolean }>(
    args,
    {
      config: { type: 'string', short: 'c' },
      'data-dir': { type: 'string' },
      'grpc-listen': { type: 'string' },
      'rest-listen': { type: 'string' },
      'log-level': { type: 'string' },
      'heartbeat-interval': { type: 'string' },
      'publisher-lease': { type: 'string' },
    },
    SERVE_USAGE,
  );
  if (flags.help) return void process.stdout.write(SERVE_USAGE);
  const config = loadControlConfig(flags);
  const log = createLogger('teleboot-control', config.logLevel);
  const server = await startControlServer(config, log);
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
  -c, --config FILE    the server's YAML configuration (for data_dir and store.path)
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
  if (!existsSync(config.storePath))
    throw new Error(`no control database at ${config.storePath}; start the server once, or give --data-dir or --config`);
  const store = new SqliteStore(config.storePath);
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

async function main(): Promise<number | void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'tokens':
      return tokens(rest);
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
