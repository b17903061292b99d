// The teleboot command tree: the one definition that parses the command
// line, prints --help, and generates completion and docs/CLI.md.
import { Argument, Command } from 'commander';
import { VERSION } from '../contract/version';
import { bashCompletion, zshCompletion } from './completion';
import { DEFAULT_ADDR, ENV } from './connection';
import { EXIT_MEANINGS } from './exit-codes';
import { examples, print } from './kit';
import { assignCommands } from './commands/assign';
import { auditCommand } from './commands/audit';
import { healthCommand } from './commands/health';
import { instancesCommand } from './commands/instances';
import { loginCommands } from './commands/login';
import { rolloutsCommand } from './commands/rollouts';
import { rulesCommand } from './commands/rules';
import { settingsCommand } from './commands/settings';
import { tokensCommand } from './commands/tokens';

/** Every command of the tree, depth first. */
export function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

function completionCommand(program: Command): Command {
  const completion = new Command('completion')
    .description('print a shell completion script')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .action((shell: string) => print(shell === 'bash' ? bashCompletion(program) : zshCompletion(program)));
  return examples(completion, 'source <(teleboot completion bash)   # in ~/.bashrc', 'teleboot completion zsh > "${fpath[1]}/_teleboot"');
}

export function buildProgram(): Command {
  const program = new Command('teleboot')
    .description(
      "operate a teleboot fleet: instances, roles, rules, settings, health, audit and tokens, over the control server's REST API",
    )
    .version(VERSION, '-v, --version')
    .option('--addr <url>', `control server REST address (${ENV.addr}; default ${DEFAULT_ADDR})`)
    .option('--ca-cert <file>', `CA certificate (PEM) that signed the server's: its <data_dir>/tls/ca.pem (${ENV.caCert})`)
    .option('--token <token>', `API token (${ENV.token}); prefer the variable or "teleboot login": arguments show in ps`);
  for (const cmd of [
    ...loginCommands(),
    instancesCommand(),
    ...assignCommands(),
    rulesCommand(),
    settingsCommand(),
    rolloutsCommand(),
    healthCommand(),
    auditCommand(),
    tokensCommand(),
  ])
    program.addCommand(cmd);
  program.addCommand(completionCommand(program));
  examples(
    program,
    'teleboot login --addr https://control.internal:7080 --ca-cert ca.pem',
    'teleboot instances ls --health degraded',
    'teleboot assign i-0123456789abcdef0 --role node --label env=prod',
    'TELEBOOT_ADDR=https://control.internal:7080 TELEBOOT_CACERT=ca.pem TELEBOOT_TOKEN=... teleboot health',
  );
  program.addHelpText(
    'after',
    `\nExit codes:\n${EXIT_MEANINGS.map(([code, meaning]) => `  ${String(code).padStart(2)}  ${meaning}`).join('\n')}\n`,
  );
  for (const cmd of allCommands(program)) {
    cmd
      .showHelpAfterError('(add --help for usage and examples)')
      .configureHelp({ showGlobalOptions: true, sortOptions: false })
      .exitOverride();
  }
  return program;
}
