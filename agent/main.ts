#!/usr/bin/env node
// teleboot-agent: baked into the AMI; takes an instance from first boot to a
// running Teleport with the role the control server holds for it.
import { promises as fs } from 'node:fs';
import { parseFlags, runMain, UsageError } from '../contract/cli';
import { createLogger, type Logger } from '../contract/log';
import { VERSION } from '../contract/version';
import { desiredFrom, type Agent } from './agent';
import { buildAgent, serviceManagerFor } from './build';
import { DEFAULT_AGENT_CONFIG_PATH, loadAgentConfig } from './config';
import { maskProxyCredentials } from '../contract/render/plan';
import { ProcessManager } from './service-manager';

const USAGE = `Usage: teleboot-agent <command> [flags]

Commands:
  run       bootstrap, then keep running: heartbeats, follow role changes
  once      bootstrap and exit (0 when Teleport is ready)
  plan      print what would be written, without writing or starting anything
  version   print the version

Run "teleboot-agent <command> --help" for the flags of a command.
`;

const FLAGS = `Flags:
  -c, --config FILE   agent configuration (default ${DEFAULT_AGENT_CONFIG_PATH})
  -h, --help          show this help
`;

const COMMAND_USAGE: Record<string, string> = {
  run: `Usage: teleboot-agent run [flags]

Bootstraps this instance (identity, enrollment, its role's files, Teleport
started and ready), then keeps running: heartbeats, role changes, certificate
renewals. What teleboot-agent.service runs.

${FLAGS}
Example:
  teleboot-agent run --config /etc/teleboot/agent.yaml
`,
  once: `Usage: teleboot-agent once [flags]

Bootstraps this instance and exits: 0 when Teleport is ready, 1 otherwise.
For image tests and scripts.

${FLAGS}
Example:
  teleboot-agent once -c /etc/teleboot/agent.yaml && echo ready
`,
  plan: `Usage: teleboot-agent plan [flags]

Prints what the agent would write for this instance (teleport.yaml, the unit,
which SSM parameters and S3 objects it fetches), without writing or starting
anything. Secrets are not shown.

${FLAGS}
Example:
  sudo teleboot-agent plan
`,
  version: `Usage: teleboot-agent version

Prints the version.
`,
};

/** Aborts on SIGTERM/SIGINT so the agent can finish what it writes. */
function shutdownSignal(log: Logger): AbortSignal {
  const controller = new AbortController();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ signal: sig }, 'stopping');
      controller.abort(new Error(`stopped by ${sig}`));
    });
  }
  return controller.signal;
}

async function plan(agent: Agent, signal: AbortSignal): Promise<number> {
  await agent.start(signal, { readOnly: true });
  const desired = desiredFrom(await agent.initialAssignment(signal));
  if (!desired) {
    process.stdout.write(`instance ${agent.instanceId} has no assignment yet; nothing would be written\n`);
    return 0;
  }
  const result = await agent.plan(desired, signal);
  process.stdout.write(`instance ${agent.instanceId}: roles ${desired.assignment.roles.join(', ')}, generation ${desired.generation}\n\n`);
  for (const file of result.files) {
    const current = await fs.readFile(file.path, 'utf8').catch(() => undefined);
    const action = current === undefined ? 'create' : current === file.content ? 'unchanged' : 'update';
    const what = file.secret ? `[secret, ${Buffer.byteLength(file.content)} bytes, not shown]` : '';
    process.stdout.write(`${action.padEnd(9)} ${file.path} (mode ${file.mode.toString(8)}) ${what}\n`);
  }
  const fetched = [
    ...result.fetches.ssm.map((f) => `  ssm  ${f.name} (${f.purpose})`),
    ...result.fetches.s3.map((f) => `  s3   s3://${f.bucket}/${f.key} (${f.purpose})`),
  ];
  if (fetched.length > 0) process.stdout.write(`\nfetched:\n${fetched.join('\n')}\n`);
  process.stdout.write(`\n--- teleport.yaml\n${result.teleportYaml}\n--- teleport.service\n${result.unit}`);
  if (result.environment !== undefined) process.stdout.write(`\n--- environment file\n${maskProxyCredentials(result.environment)}`);
  return 0;
}

async function main(): Promise<number | void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') return void process.stdout.write(USAGE);
  if (command === '--version') return void process.stdout.write(`teleboot-agent ${VERSION}\n`);
  const usage = COMMAND_USAGE[command];
  if (usage === undefined) throw new UsageError(`unknown command "${command}"`);
  if (command === 'version') {
    if (parseFlags<{ help?: boolean }>(rest, {}, usage).help) return void process.stdout.write(usage);
    return void process.stdout.write(`teleboot-agent ${VERSION}\n`);
  }
  const flags = parseFlags<{ config?: string; help?: boolean }>(rest, { config: { type: 'string', short: 'c' } }, usage);
  if (flags.help) return void process.stdout.write(usage);
  const config = loadAgentConfig(flags.config ?? DEFAULT_AGENT_CONFIG_PATH);
  // plan prints to stdout; its log goes to stderr so the two do not mix.
  const log = createLogger('teleboot-agent', config.logLevel, command === 'plan' ? process.stderr : undefined);
  const services = serviceManagerFor(config, log);
  const agent = buildAgent(config, log, { services });
  const signal = shutdownSignal(log);
  switch (command) {
    case 'plan':
      return plan(agent, signal);
    case 'once': {
      const status = await agent.once(signal);
      log.info({ state: status.state, generation: status.appliedGeneration }, 'bootstrap finished');
      return status.state === 'ready' ? 0 : 1;
    }
    default:
      try {
        await agent.run(signal);
      } catch (err) {
        if (!signal.aborted) throw err;
      } finally {
        // Under systemd, Teleport is its own unit and outlives the agent; as
        // the agent's child it stops with it.
        if (services instanceof ProcessManager) await services.stop();
      }
      return 0;
  }
}

runMain(main, USAGE);
