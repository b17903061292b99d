// Starting Teleport: through systemd (the normal case), or as a child
// process of the agent where there is no systemd (containers, sandboxes).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { writeFileIfChanged } from '../contract/files';
import type { Logger } from '../contract/log';

const run = promisify(execFile);

export interface ServiceManager {
  /** Installs the unit definition; true when it changed (and was reloaded). */
  installUnit(unitText: string): Promise<boolean>;
  /** Enables and starts Teleport when not running; restarts it when `restart` is set. */
  ensureRunning(restart: boolean): Promise<void>;
  /** Asks Teleport to reload its certificates (SIGHUP). */
  reload(): Promise<void>;
  stop(): Promise<void>;
  /** systemd's ActiveState: active, activating, inactive, failed, ... */
  activeState(): Promise<string>;
}

export class SystemdManager implements ServiceManager {
  constructor(
    private readonly systemctl: string,
    private readonly unitDir: string,
    private readonly unitName: string,
  ) {}

  private async ctl(...args: string[]): Promise<string> {
    try {
      const { stdout } = await run(this.systemctl, args, { timeout: 60_000 });
      return stdout.trim();
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`systemctl ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`);
    }
  }

  async installUnit(unitText: string): Promise<boolean> {
    const changed = await writeFileIfChanged(join(this.unitDir, this.unitName), unitText, { mode: 0o644 });
    if (changed) await this.ctl('daemon-reload');
    return changed;
  }

  async ensureRunning(restart: boolean): Promise<void> {
    const state = await this.activeState();
    if (state === 'active' || state === 'activating' || state === 'reloading') {
      if (restart) await this.ctl('restart', this.unitName);
      return;
    }
    // A unit that failed before keeps that state until reset; start it afresh.
    if (state === 'failed') await this.ctl('reset-failed', this.unitName);
    await this.ctl('enable', '--now', this.unitName);
  }

  async reload(): Promise<void> {
    await this.ctl('reload', this.unitName);
  }

  async stop(): Promise<void> {
    await this.ctl('disable', '--now', this.unitName);
  }

  async activeState(): Promise<string> {
    return this.ctl('show', '--property=ActiveState', '--value', this.unitName);
  }
}

/** Runs `teleport start` as a child of the agent, for hosts without systemd. */
export class ProcessManager implements ServiceManager {
  private child: ChildProcess | undefined;
  private state = 'inactive';
  /** The unit's EnvironmentFile (HTTP CONNECT proxy variables), read at each start as systemd would. */
  private environmentFile: string | undefined;

  constructor(
    private readonly argv: string[],
    private readonly log: Logger,
  ) {}

  async installUnit(unitText: string): Promise<boolean> {
    this.environmentFile = /^EnvironmentFile=-?(\S+)$/m.exec(unitText)?.[1];
    return false;
  }

  private start(): void {
    const [cmd, ...args] = this.argv;
    const env = { ...process.env, ...readEnvironmentFile(this.environmentFile) };
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    this.child = child;
    this.state = 'active';
    child.on('error', (err) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.state = 'failed';
      this.log.warn({ err: err.message, binary: cmd }, 'teleport failed to start');
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.state = code === 0 || signal === 'SIGTERM' ? 'inactive' : 'failed';
      if (this.state === 'failed') this.log.warn({ code, signal, stderr: stderr.trim() }, 'teleport exited');
    });
  }

  async ensureRunning(restart: boolean): Promise<void> {
    if (this.child && !restart) return;
    await this.stop();
    this.start();
  }

  async reload(): Promise<void> {
    this.child?.kill('SIGHUP');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
    this.state = 'inactive';
  }

  async activeState(): Promise<string> {
    return this.state;
  }
}

/** KEY=VALUE lines of an environment file, as systemd reads them (comments and blank lines skipped, quotes removed); none when missing. */
export function readEnvironmentFile(path: string | undefined): Record<string, string> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || line.trimStart().startsWith('#')) continue;
    env[m[1]] = m[2].trim().replace(/^"(.*)"$|^'(.*)'$/, '$1$2');
  }
  return env;
}
