// The teleboot CLI as operators run it: `node dist/cli/main.js ...` as a
// child process, with HOME and XDG_CONFIG_HOME in a scratch directory, and a
// real control server over HTTPS in this process.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { REPO, removeDir, scratchDir, type CommandResult } from './harness';
import { startInProcessControl, type InProcessControl } from './in-process';

export const CLI_BIN = join(REPO, 'dist/cli/main.js');

/** Variables that would change a CLI run, emptied (the CLI reads an empty one as unset): a developer's own TELEBOOT_* or colours. */
const NEUTRAL_ENV = {
  TELEBOOT_ADDR: '',
  TELEBOOT_CACERT: '',
  TELEBOOT_TOKEN: '',
  NO_COLOR: '',
  FORCE_COLOR: '',
  COLUMNS: '',
  XDG_CONFIG_HOME: '',
};

export interface CliWorld {
  control: InProcessControl;
  /** A home directory of its own for each world: the profile goes there. */
  home: string;
  caFile: string;
  addr: string;
  /** TELEBOOT_ADDR, TELEBOOT_CACERT, TELEBOOT_TOKEN (admin). */
  env: Record<string, string>;
  /** Runs teleboot with the world's HOME and `env` (the connection variables unless replaced). */
  run(args: string[], env?: Record<string, string>, input?: string): Promise<CommandResult>;
  close(): Promise<void>;
}

export async function startCliWorld(name: string): Promise<CliWorld> {
  const control = await startInProcessControl(name);
  const home = scratchDir(`${name}-home`);
  mkdirSync(home, { recursive: true });
  const caFile = join(control.dir, 'tls', 'ca.pem');
  const addr = control.server.restUrl;
  const env = { TELEBOOT_ADDR: addr, TELEBOOT_CACERT: caFile, TELEBOOT_TOKEN: control.adminToken };
  return {
    control,
    home,
    caFile,
    addr,
    env,
    run: (args, extra, input) => runCli(args, { HOME: home, ...env, ...extra }, input),
    async close() {
      await control.close();
      removeDir(home);
    },
  };
}

/** Runs teleboot to completion; `input` is its standard input (none: an empty one). */
export function runCli(args: string[], env: Record<string, string> = {}, input = ''): Promise<CommandResult> {
  return new Promise((done) => {
    const proc = spawn(process.execPath, [CLI_BIN, ...args], {
      env: { ...process.env, NODE_OPTIONS: '', ...NEUTRAL_ENV, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    proc.stdin.end(input);
  });
}
