// docs/CLI.md, generated from the command definitions (npm run docs:cli);
// test/cli-reference.test.ts fails when the page is out of date.
import type { Command } from 'commander';
import { DEFAULT_ADDR, ENV } from './connection';
import { EXIT_MEANINGS } from './exit-codes';
import { examplesOf } from './kit';
import { allCommands, buildProgram } from './program';
import { HEALTHY_STATES, PENDING_STATES } from './commands/health';

const HELP_WIDTH = 100;

const fullName = (cmd: Command): string => (cmd.parent ? `${fullName(cmd.parent)} ${cmd.name()}` : cmd.name());

function section(cmd: Command): string {
  const help = cmd.helpInformation().trimEnd();
  const lines = [`### ${fullName(cmd)}`, '', '```text', help, '```'];
  const ex = examplesOf(cmd);
  if (ex.length) lines.push('', 'Examples:', '', '```sh', ...ex, '```');
  return lines.join('\n');
}

export function referencePage(): string {
  const program = buildProgram();
  for (const cmd of allCommands(program)) {
    // The page must not depend on the terminal it is generated in.
    // Global options once, under the program; each command's section shows its own.
    cmd.configureHelp({ ...cmd.configureHelp(), helpWidth: HELP_WIDTH, showGlobalOptions: false });
    cmd.configureOutput({ ...cmd.configureOutput(), getOutHasColors: () => false, getErrHasColors: () => false });
  }
  const commands = allCommands(program).slice(1);
  return `<!-- Generated from the command definitions in cli/ by "npm run docs:cli"; do not edit by hand. -->
# teleboot: the operator CLI

\`teleboot\` talks to teleboot-control's REST API (HTTPS) from an operator's laptop or a CI job,
in the style of \`nomad\`, \`vault\` or \`tctl\`. It is installed with the project
(\`npm run build\`, then \`node dist/cli/main.js\`, or \`teleboot\` on the PATH from the package's \`bin\`).

## Connecting

Each of the address, the CA file and the API token comes from, in this order: its flag, its
environment variable, the profile written by \`teleboot login\`, or the default.

| Flag | Variable | Default | What |
|---|---|---|---|
| \`--addr\` | \`${ENV.addr}\` | \`${DEFAULT_ADDR}\` | the control server's REST listener (\`rest_listen\`); HTTPS only |
| \`--ca-cert\` | \`${ENV.caCert}\` | the system's CAs | the CA that signed the server's certificate: \`<data_dir>/tls/ca.pem\` on the control host |
| \`--token\` | \`${ENV.token}\` | none | an API token (\`<data_dir>/admin-token\`, or one from \`teleboot tokens api create\`) |

\`teleboot login\` checks the three against the server and saves them in
\`$XDG_CONFIG_HOME/teleboot/profile.json\` (\`~/.config/teleboot/profile.json\` without
\`XDG_CONFIG_HOME\`), mode 0600 in a 0700 directory; it reads the token from a hidden prompt or
from standard input when not given. \`teleboot logout\` deletes the profile. The token is never
printed; prefer the variable or the profile to \`--token\`, which other users can see in \`ps\`.

The server's certificate is verified against the CA file. The scope of the token decides what
works: \`monitor\` reads, \`operator\` also assigns and edits rules, \`admin\` also changes settings
and tokens.

## Output

Every command that prints records takes \`-o, --output table|json|yaml\`. Tables fit the
terminal's width (\`COLUMNS\` when not a terminal; no limit in a pipe): whole columns from the
left, the last one that fits cut with \`…\`, the rest left out (\`-o json\` has every field). Colours appear only on a
terminal and never with \`NO_COLOR\` set (\`FORCE_COLOR=1\` forces them). Long listings
(\`instances ls\` over many pages, \`audit\`) show progress on standard error when it is a
terminal. \`instances ls\` follows the \`next\` cursor over every page; \`-o json\` prints one array.
\`audit --follow\` prints one line per event (\`-o json\`: one JSON object per line).

## Fleet health

\`teleboot health\` exits 0 when every instance is healthy and there is no alert:

- healthy: ${HEALTHY_STATES.map((s) => `\`${s}\``).join(', ')};
- pending, healthy unless \`--strict\`: ${PENDING_STATES.map((s) => `\`${s}\``).join(', ')} (an instance assigned ahead of time that has not booted yet, or one applying a change);
- unhealthy: every other state (\`degraded\`, \`offline\`, \`orphaned\`, or a state this CLI does not know), and every alert of \`/v1/health\` (certificates failing or near expiry).

Monitoring uses \`teleboot health\`; a CI job after a rollout uses \`teleboot health --strict\`.

## Exit codes

| Code | Meaning |
|---|---|
${EXIT_MEANINGS.map(([code, meaning]) => `| ${code} | ${meaning} |`).join('\n')}

## Shell completion

\`source <(teleboot completion bash)\` in \`~/.bashrc\`; for zsh,
\`teleboot completion zsh > "\${fpath[1]}/_teleboot"\`.

## Commands

Every command also takes the global options \`--addr\`, \`--ca-cert\` and \`--token\` (see
[Connecting](#connecting)), and \`-h, --help\`.

${section(program)}

${commands.map(section).join('\n\n')}
`;
}
