#!/usr/bin/env node
// teleboot-control: holds the desired role of every instance and answers
// agents over gRPC and operators over REST.
import { createLogger } from '../common/log';
import { parseFlags, runMain, UsageError } from '../common/cli';
import { VERSION } from '../common/version';
import { CONTROL_DEFAULTS, loadControlConfig, type ControlFlags } from './config';
import { startControlServer } from './server';

const USAGE = `Usage: teleboot-control <command> [flags]

Commands:
  serve      run the control server (gRPC for agents, REST for operators)
  version    print the version

Run "teleboot-control <command> --help" for the flags of a command.
`;

const SERVE_USAGE = `Usage: teleboot-control serve [flags]

Runs the control server on its embedded SQLite store. On first start it
generates a CA, a server certificate and a join token under the data
directory; give agents <data-dir>/tls/ca.pem and <data-dir>/join-token.

Flags:
  -c, --config FILE        YAML configuration file (see README "control.yaml")
      --data-dir DIR       state directory (default ${CONTROL_DEFAULTS.dataDir})
      --grpc-listen ADDR   agents' gRPC listener (default ${CONTROL_DEFAULTS.grpcListen})
      --rest-listen ADDR   operators' REST listener (default ${CONTROL_DEFAULTS.restListen})
      --heartbeat-interval D  how often agents report, e.g. 30s (default ${CONTROL_DEFAULTS.heartbeatInterval});
                           an instance is offline after three missed reports
      --log-level LEVEL    trace, debug, info, warn or error (default info)
  -h, --help               show this help
`;

async function serve(args: string[]): Promise<number | void> {
  const flags = parseFlags<ControlFlags & { help?: boolean }>(args, {
    config: { type: 'string', short: 'c' },
    'data-dir': { type: 'string' },
    'grpc-listen': { type: 'string' },
    'rest-listen': { type: 'string' },
    'log-level': { type: 'string' },
    'heartbeat-interval': { type: 'string' },
  });
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

async function main(): Promise<number | void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'version':
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
