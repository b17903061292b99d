// Starting Teleport: through systemd (the normal case), or as a child
// process of the agent where there is no systemd (containers, sandboxes).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
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
  /** Teleport's last log lines (the unit's journal, or the child's output), unmasked; [] when none can be read. */
  logTail(lines: number): Promise<string[]>;
  /** Where the unit file is written (a hand edit of it is drift); undefined when there is none. */
  readonly unitPath?: string;
}

/** Lines of Teleport's output kept in process mode, for the log tail of a Teleport that does not become ready. */
const KEPT_OUTPUT_LINES = 200;

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

  get unitPath(): string {
    return join(this.unitDir, this.unitName);
  }

  async installUnit(unitText: string): Promise<boolean> {
    const changed = await writeFileIfChanged(this.unitPath, unitText, { mode: 0o644 });
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

  /** journalctl beside systemctl: the unit's last lines, message text only. */
  async logTail(lines: number): Promise<string[]> {
    const journalctl = join(dirname(this.systemctl), 'journalctl');
    try {
      const { stdout } = await run(journalctl, ['-u', this.unitName, '--no-pager', '-n', String(lines), '-o', 'cat'], {
        timeout: 30_000,
        maxBuffer: 4 * 1024 * 1024,
      });
      return stdout
        .split('\n')
        .filter((l) => l !== '')
        .slice(-lines);
    } catch {
      return [];
    }
  }
}

/** Runs `teleport start` as a child of the agent, for hosts without systemd. */
export class ProcessManager implements ServiceManager {
  private child: ChildProcess | undefined;
  private state = 'inactive';
  /** The unit's EnvironmentFile (HTTP CONNECT proxy variables), read at each start as systemd would. */
  private environmentFile: string | undefined;
  /** Teleport's last lines of output (stdout and stderr, as a journal would hold them). */
  private readonly output = new OutputLines(KEPT_OUTPUT_LINES);

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
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    this.state = 'active';
    child.on('error', (err) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.state = 'failed';
      this.log.warn({ err: err.message, binary: cmd }, 'teleport failed to start');
    });
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => this.output.add(d));
    child.stderr?.on('data', (d: Buffer) => {
      this.output.add(d);
      stderr = (stderr + d.toString()).slice(-2000);
    });
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

  async logTail(lines: number): Promise<string[]> {
    return this.output.last(lines);
  }
}

/** A ring of the last lines written to a stream (a partial last line counts as a line). */
export class OutputLines {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly keep: number) {}

  add(chunk: Buffer | string): void {
    const parts = (this.partial + chunk.toString()).split('\n');
    this.partial = parts.pop()!.slice(-4096);
    this.lines.push(...parts.map((l) => l.replace(/\r$/, '')));
    if (this.lines.length > this.keep) this.lines = this.lines.slice(-this.keep);
  }

  last(n: number): string[] {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].slice(-Math.min(n, this.keep));
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
