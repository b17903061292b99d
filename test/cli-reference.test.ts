// teleboot's reference: docs/CLI.md matches the command definitions, every
// command's --help is its own and has an example, and the completion
// scripts complete in real bash and zsh.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, removeDir, scratchDir } from './support/harness';
import { runCli } from './support/cli';
import { examplesOf } from '../cli/kit';
import { allCommands, buildProgram } from '../cli/program';
import { referencePage } from '../cli/reference';

const fullName = (names: string[]) => ['teleboot', ...names].join(' ');

t.test('docs/CLI.md is generated from the command definitions and up to date', async (t) => {
  const page = readFileSync(join(REPO, 'docs', 'CLI.md'), 'utf8');
  t.equal(page, referencePage(), 'docs/CLI.md is out of date: run "npm run docs:cli" and commit it');
  for (const cmd of allCommands(buildProgram()).slice(1)) {
    const names: string[] = [];
    for (let c: typeof cmd | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
    t.match(page, `### ${fullName(names)}\n`, `${fullName(names)} has a section`);
  }
  t.match(page, /\| 2 \| `health`: an instance is unhealthy/, 'the exit codes');
});

t.test("every command's --help is its own and shows an example", async (t) => {
  const commands = allCommands(buildProgram());
  // Four at a time: each is a process of its own.
  for (let i = 0; i < commands.length; i += 4) {
    await Promise.all(
      commands.slice(i, i + 4).map(async (cmd) => {
        const names: string[] = [];
        for (let c: typeof cmd | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
        const res = await runCli([...names, '--help']);
        t.equal(res.code, 0, `${fullName(names)} --help exits 0`);
        t.match(res.stdout, `Usage: ${fullName(names)} `, `${fullName(names)} --help is its own`);
        const examples = examplesOf(cmd);
        t.ok(examples.length > 0, `${fullName(names)} has an example`);
        t.match(res.stdout, `\nExamples:\n`, `${fullName(names)} --help shows its examples`);
        for (const line of examples) t.ok(res.stdout.includes(line), `${fullName(names)} --help shows "${line}"`);
      }),
    );
  }
});

const shellHas = (shell: string) => {
  try {
    execFileSync(shell, ['-c', 'true']);
    return true;
  } catch {
    return false;
  }
};

t.test('bash completion, generated from the command definitions, completes in bash', async (t) => {
  const dir = scratchDir('cli-bash');
  t.teardown(() => removeDir(dir));
  const res = await runCli(['completion', 'bash']);
  t.equal(res.code, 0);
  const script = join(dir, 'teleboot.bash');
  writeFileSync(script, res.stdout);
  writeFileSync(join(dir, 'ca.pem'), '');
  const complete = (...words: string[]) =>
    execFileSync(
      'bash',
      [
        '-c',
        `source ${script}; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _teleboot; echo "\${COMPREPLY[*]}"`,
        'bash',
        'teleboot',
        ...words,
      ],
      { cwd: dir, encoding: 'utf8' },
    ).trim();
  t.equal(complete(''), 'login logout instances assign unassign preview rules settings rollouts health audit tokens completion');
  t.equal(complete('ins'), 'instances');
  t.equal(complete('instances', ''), 'ls show');
  t.equal(complete('instances', 'ls', '--he'), '--health --help');
  t.equal(complete('instances', 'ls', '--health', ''), 'expected unassigned orphaned converging ready degraded offline');
  t.equal(complete('--addr', 'https://x:7080', 'tokens', 'api', ''), 'ls create rm', 'a global option and its value are skipped');
  t.equal(complete('settings', 'get', '-o', 'y'), 'yaml');
  t.equal(complete('completion', ''), 'bash zsh');
  t.equal(complete('--ca-cert', 'c'), 'ca.pem', 'a file option completes files');
});

t.test('zsh completion completes in zsh', { skip: shellHas('zsh') ? false : 'zsh is not installed (.ci/run installs it)' }, async (t) => {
  const dir = scratchDir('cli-zsh');
  t.teardown(() => removeDir(dir));
  const res = await runCli(['completion', 'zsh']);
  t.match(res.stdout, /^#compdef teleboot\n/);
  const script = join(dir, '_teleboot');
  writeFileSync(script, res.stdout);
  execFileSync('zsh', ['-n', script]);
  // compsys's builtins stand in as functions that print what they were given; the script's own logic runs in zsh.
  const complete = (...words: string[]) =>
    execFileSync(
      'zsh',
      [
        '-c',
        `compdef() { :; }; compadd() { shift; echo "$*"; }; _describe() { echo "\${(P)2}"; }; _files() { echo FILES; };
         source ${script}; words=(teleboot "$@"); CURRENT=\${#words}; PREFIX=\${words[CURRENT]}; _teleboot`,
        'zsh',
        ...words,
      ],
      { encoding: 'utf8' },
    ).trim();
  t.match(complete(''), /^login:check an address.* instances:list and inspect instances .* completion:print a shell completion script$/);
  t.match(complete('instances', ''), /^ls:list instances.* show:show one instance/);
  t.equal(complete('instances', 'ls', '--role', ''), 'auth proxy node kube app db discovery');
  t.match(complete('rules', 'add', 'x', '--'), /--selector --role --roles --label --position/);
  t.equal(complete('settings', 'set', '--file', ''), 'FILES');
});
