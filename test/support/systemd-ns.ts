/**
 * A real systemd 252 as PID 1 in a private pid + mount namespace, for
 * end-to-end tests of code that writes unit files and drives systemctl.
 *
 * Recipe (DESIGN.md, "Testing with real parts"), run as root inside
 * `unshare --pid --fork --mount --mount-proc`: tmpfs over /run, /tmp and
 * /etc/systemd/system, the tmpfiles/remount/sysusers units masked, then exec
 * systemd. Without the /tmp tmpfs and the masks systemd-tmpfiles empties the
 * host's /tmp, so never drop them. On top of the recipe this harness adds
 * (each because it was observed to touch the host otherwise):
 *  - tmpfs over /var/log/journal: journald flushes into the host's persistent
 *    journal, shared by every namespace, so `journalctl -u x` showed entries of
 *    earlier runs and two concurrent namespaces wrote the same journal file;
 *  - masks for systemd-sysctl.service (sets host kernel sysctls, e.g.
 *    fs.protected_regular=2) and systemd-update-utmp.service (host wtmp);
 *  - a cgroup subtree of its own (teleboot-ns-<testpid>-<n>) so that two
 *    namespaces running the same unit name (tap runs 2 files at once) do not
 *    share /system.slice/<unit> cgroups, and so stop() can remove them.
 *
 * The namespace shares the host's filesystem except /run, /tmp,
 * /etc/systemd/system and /var/log/journal. Files a test shares with
 * processes inside must live outside /tmp: use mkSharedTempDir().
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** merged over process.env (systemctl needs PATH) */
  env?: Record<string, string>;
  /** default 30 s; on expiry the command's process group is killed and the promise rejects */
  timeoutMs?: number;
  cwd?: string;
  /** written to the command's stdin */
  input?: string | Buffer;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdio?: StdioOptions;
}

export interface SystemdNamespace {
  /** host pid of the namespace's systemd (PID 1 inside) */
  pid: number;
  /** per-namespace directory under .test-tmp (recipe script, log) */
  dir: string;
  /** recipe output, and the namespace's whole journal appended by stop(): read this when a test fails */
  logFile: string;
  /** ms from starting unshare until `systemctl is-system-running --wait` answered */
  bootMs: number;
  /** `running` or `degraded` */
  bootState: string;
  /** run a command inside the namespace (nsenter -t pid -m -p) */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * start a long-running process inside the namespace (e.g. the agent daemon).
   * Returns nsenter's ChildProcess; its kill() is redirected to the process
   * nsenter forked inside (nsenter does not forward signals), and nsenter exits
   * with that process's code or signal, so 'exit' means the inner process ended.
   */
  spawn(argv: string[], opts?: SpawnOptions): ChildProcess;
  systemctl(...args: string[]): Promise<ExecResult>;
  /** systemctl show -p ... as a record (throws when systemctl fails) */
  show(unit: string, props: string[]): Promise<Record<string, string>>;
  /** poll until `systemctl is-active unit` prints the wanted state; default timeout 10 s */
  waitForUnitState(unit: string, state: string, timeoutMs?: number): Promise<void>;
  /** journalctl -u unit --no-pager; '' (and a note in logFile) when journald is not running */
  journal(unit: string): Promise<string>;
  /**
   * write a file as seen from inside the namespace (creating parent dirs).
   * Done through exec, not via /proc/<pid>/root/...: absolute symlinks met on
   * that path are resolved in the HOST's mount namespace (writing
   * /proc/<pid>/root/var/run/x lands in the host's /run/x, checked).
   */
  writeFile(file: string, content: string | Buffer, mode?: number): Promise<void>;
  readFile(file: string): Promise<string>;
  /** kill the namespace's PID 1 (which kills every process in it) and wait until it is gone; idempotent */
  stop(): Promise<void>;
}

const SYSTEMD = '/lib/systemd/systemd';
const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

/** repo root: nearest ancestor with package.json (works from test/support and from dist/test/support) */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** Scratch space visible both on the host and inside namespaces (unlike /tmp). Git-ignored. */
export const TEST_TMP_ROOT = path.join(repoRoot(), '.test-tmp');

/** a fresh directory under .test-tmp, for configs and binaries that processes inside a namespace read */
export function mkSharedTempDir(prefix = 'shared-'): string {
  fs.mkdirSync(TEST_TMP_ROOT, { recursive: true });
  return fs.mkdtempSync(path.join(TEST_TMP_ROOT, prefix));
}

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

let canRunCache: { ok: boolean; reason?: string } | undefined;

export function canRunSystemdNamespace(): { ok: boolean; reason?: string } {
  if (canRunCache) return canRunCache;
  const check = (): { ok: boolean; reason?: string } => {
    if (process.platform !== 'linux') return { ok: false, reason: 'systemd namespaces need Linux' };
    if (process.getuid?.() !== 0) return { ok: false, reason: 'systemd namespaces need root (mounts, pid namespace)' };
    for (const tool of ['unshare', 'nsenter', 'setpriv']) {
      if (!which(tool)) return { ok: false, reason: `${tool} (util-linux) is not on PATH` };
    }
    if (!fs.existsSync(SYSTEMD)) return { ok: false, reason: `${SYSTEMD} is not present` };
    // Root is not enough inside some containers (no CAP_SYS_ADMIN, seccomp): try it.
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount', '--mount-proc', 'true'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) return { ok: false, reason: `unshare --pid --mount does not work here: ${(r.stderr || String(r.error)).trim()}` };
    return { ok: true };
  };
  canRunCache = check();
  return canRunCache;
}

// ---- cgroups --------------------------------------------------------------

/** cgroup hierarchies systemd uses: name=systemd (v1/hybrid), unified (hybrid), or /sys/fs/cgroup (pure v2) */
function cgroupHierarchies(): string[] {
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'].filter((h) => fs.existsSync(path.join(h, 'cgroup.procs')));
}

/** cgroup directories can only be removed with rmdir, leaves first; EBUSY while dying tasks are released */
async function removeCgroupTree(dir: string): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(path.join(dir, e.name));
  for (let i = 0; ; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 50) return; // leave it; the next sweep retries
      await sleep(20);
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** remove cgroup subtrees left by test processes that died without stop() */
async function sweepStaleCgroups(): Promise<void> {
  for (const h of cgroupHierarchies()) {
    for (const name of fs.readdirSync(h)) {
      const m = /^teleboot-ns-(\d+)-\d+$/.exec(name);
      if (m && !isAlive(Number(m[1]))) await removeCgroupTree(path.join(h, name));
    }
  }
}

// ---- cleanup of namespaces a test forgot or could not stop ----------------

const livePids = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous only. Covers normal exit and uncaught exceptions; a SIGKILLed
  // or signalled test process is covered by setpriv --pdeathsig below.
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

// ---- helpers ----------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function tail(file: string, max = 4000): string {
  try {
    const s = fs.readFileSync(file, 'utf8');
    return s.length > max ? '…' + s.slice(-max) : s;
  } catch {
    return '';
  }
}

/** Namespaces whose systemd runs from an OS root of its own (startSystemdNamespace's osRoot): commands enter that root too. */
const chrooted = new Set<number>();

function nsenterArgs(pid: number, argv: string[]): string[] {
  if (argv.length === 0) throw new Error('empty argv');
  return ['-t', String(pid), '-m', '-p', ...(chrooted.has(pid) ? ['-r', '-w'] : []), '--', ...argv];
}

function execIn(pid: number, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    // detached: own process group, so a timeout kills nsenter and what it forked inside
    const child = spawn('nsenter', nsenterArgs(pid, argv), {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`timed out after ${timeoutMs} ms in namespace: ${argv.join(' ')}\n${stderr}`));
        return;
      }
      const sigNo = signal ? os.constants.signals[signal] : 0;
      resolve({ code: code ?? 128 + sigNo, stdout, stderr });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined); // EPIPE when the command does not read stdin
      child.stdin!.end(opts.input);
    }
  });
}

// ---- the namespace ------------------------------------------------------------

let seq = 0;

/*
 * A checkout under /tmp (CI clones there) would vanish under the new /tmp
 * tmpfs, and with it the programs and files the tests run inside. Its
 * directory is carried through: bound aside before the tmpfs, moved back after.
 */
const KEEP = '/run/teleboot-keep';
const underTmp = (dir: string) => dir === '/tmp' || dir.startsWith('/tmp/');
const keepThroughTmp = (dir: string) => (underTmp(dir) ? `mkdir -p ${KEEP}\nmount --bind '${dir}' ${KEEP}\n` : '');
const restoreUnderTmp = (dir: string) => (underTmp(dir) ? `mkdir -p '${dir}'\nmount --move ${KEEP} '${dir}'\n` : '');

/**
 * The recipe for a namespace whose systemd runs from another OS tree (a
 * debootstrap'd Debian): an overlay over it (the tree itself is never
 * changed, so one copy serves every test), the host's /proc, /sys and /dev
 * inside, and the repository at its own path so tests share files with it.
 * The same masks as on the host, plus the gettys (the host's consoles are
 * bound in).
 */
function osRootRecipe(cgroupName: string, osRoot: string, dir: string, binds: string[]): string {
  const m = `${dir}/root`;
  return `#!/bin/sh
# Generated by test/support/systemd-ns.ts. Runs as PID 1 of a new pid + mount namespace.
set -e
mkdir -p ${dir}/overlay ${m}
mount -t tmpfs tmpfs ${dir}/overlay
mkdir -p ${dir}/overlay/upper ${dir}/overlay/work
mount -t overlay overlay -o lowerdir=${osRoot},upperdir=${dir}/overlay/upper,workdir=${dir}/overlay/work ${m}
mount -t proc proc ${m}/proc
mount --rbind /sys ${m}/sys
mount --rbind /dev ${m}/dev
mount -t tmpfs tmpfs ${m}/run
mount -t tmpfs tmpfs ${m}/tmp
${[repoRoot(), ...binds].map((b) => `mkdir -p '${m}${b}'\nmount --bind '${b}' '${m}${b}'`).join('\n')}
for u in systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \\
         systemd-tmpfiles-clean.timer systemd-remount-fs.service systemd-sysusers.service \\
         systemd-sysctl.service systemd-update-utmp.service getty.target console-getty.service \\
         getty@tty1.service serial-getty@.service systemd-firstboot.service; do
  ln -sf /dev/null ${m}/etc/systemd/system/$u
done
for h in ${cgroupHierarchies().join(' ')}; do
  mkdir -p "$h/${cgroupName}"
  echo $$ > "$h/${cgroupName}/cgroup.procs"
done
cd ${m}
exec chroot ${m} /lib/systemd/systemd --system --unit=basic.target --show-status=no
`;
}

function recipe(cgroupName: string): string {
  return `#!/bin/sh
# Generated by test/support/systemd-ns.ts. Runs as PID 1 of a new pid + mount namespace.
set -e
# DESIGN.md recipe: private /run, /tmp and unit directory. Without the /tmp
# tmpfs and the masks below systemd-tmpfiles empties the HOST's /tmp.
mount -t tmpfs tmpfs /run
${keepThroughTmp(repoRoot())}mount -t tmpfs tmpfs /tmp
${restoreUnderTmp(repoRoot())}mount -t tmpfs tmpfs /etc/systemd/system
# Added: keep journald out of the host's persistent journal.
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
for u in systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \\
         systemd-tmpfiles-clean.timer systemd-remount-fs.service systemd-sysusers.service \\
         systemd-sysctl.service systemd-update-utmp.service; do
  ln -s /dev/null /etc/systemd/system/$u
done
# Added: a cgroup subtree of our own; systemd takes its cgroup as its root.
for h in ${cgroupHierarchies().join(' ')}; do
  mkdir -p "$h/${cgroupName}"
  echo $$ > "$h/${cgroupName}/cgroup.procs"
done
# --show-status=no: nothing on the host's /dev/console.
exec ${SYSTEMD} --system --unit=basic.target --show-status=no
`;
}

export interface NamespaceOptions {
  bootTimeoutMs?: number;
  /** a whole OS tree (debootstrap'd, with systemd) to boot instead of the host's: the namespace is a machine of that OS */
  osRoot?: string;
  /** with osRoot: host directories (or files, whose target must exist in osRoot) mounted at the same path inside */
  binds?: string[];
}

export async function startSystemdNamespace(opts: NamespaceOptions = {}): Promise<SystemdNamespace> {
  const can = canRunSystemdNamespace();
  if (!can.ok) throw new Error(`cannot run a systemd namespace: ${can.reason}`);
  const bootTimeoutMs = opts.bootTimeoutMs ?? 30_000;
  const started = Date.now();
  const deadline = started + bootTimeoutMs;
  await sweepStaleCgroups();
  installExitHook();

  // The script lives outside /tmp: /tmp is replaced by a tmpfs inside.
  const id = `${process.pid}-${++seq}`;
  const dir = path.join(TEST_TMP_ROOT, 'systemd-ns', id);
  fs.mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'recipe.sh');
  const logFile = path.join(dir, 'systemd.log');
  const cgroupName = `teleboot-ns-${id}`;
  fs.writeFileSync(script, opts.osRoot ? osRootRecipe(cgroupName, opts.osRoot, dir, opts.binds ?? []) : recipe(cgroupName), {
    mode: 0o755,
  });

  // setpriv --pdeathsig: unshare is SIGKILLed when this test process dies in any
  // way (even SIGKILL), and --kill-child then SIGKILLs systemd, which takes the
  // whole pid namespace with it. systemd's own stdio goes to /dev/null once it
  // runs; the log file catches the recipe's errors.
  const logFd = fs.openSync(logFile, 'a');
  const unshare = spawn(
    'setpriv',
    ['--pdeathsig', 'KILL', 'unshare', '--pid', '--fork', '--kill-child', '--mount', '--mount-proc', script],
    { stdio: ['ignore', logFd, logFd] },
  );
  fs.closeSync(logFd);
  // A forgotten stop() must not keep the test process alive; the exit hook kills it.
  unshare.unref();
  let unshareExited = false;
  const unshareExit = new Promise<void>((resolve) => {
    unshare.on('exit', () => {
      unshareExited = true;
      resolve();
    });
    unshare.on('error', () => {
      unshareExited = true;
      resolve();
    });
  });

  let pid = 0; // systemd's host pid, once found
  const fail = async (msg: string): Promise<never> => {
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    unshare.ref();
    if (unshare.pid !== undefined && !unshareExited) {
      try {
        process.kill(unshare.pid, 'SIGKILL'); // --kill-child takes systemd down too
      } catch {
        /* gone */
      }
    }
    await unshareExit;
    if (pid > 0) livePids.delete(pid);
    for (const h of cgroupHierarchies()) await removeCgroupTree(path.join(h, cgroupName));
    throw new Error(`${msg}\n--- ${logFile}:\n${tail(logFile)}`);
  };

  // systemd is unshare's child once the recipe has exec'd it (comm changes from sh).
  while (pid === 0) {
    if (unshareExited) return fail('systemd namespace: unshare exited during the recipe');
    if (Date.now() > deadline) return fail(`systemd namespace: systemd did not start within ${bootTimeoutMs} ms`);
    const child = unshare.pid === undefined ? undefined : childrenOf(unshare.pid)[0];
    if (child !== undefined && comm(child) === 'systemd') pid = child;
    else await sleep(10);
  }
  livePids.add(pid);
  if (opts.osRoot) chrooted.add(pid);

  // is-system-running fails ("Failed to connect to bus") until systemd's private
  // socket exists; --wait then blocks until boot is over.
  let bootState = '';
  let last = '';
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0 || unshareExited) return fail(`systemd namespace did not boot within ${bootTimeoutMs} ms (last: ${last})`);
    try {
      const r = await execIn(pid, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: left });
      bootState = r.stdout.trim();
      last = `${bootState} ${r.stderr.trim()}`;
    } catch (err) {
      last = String(err);
    }
    if (bootState === 'running' || bootState === 'degraded') break;
    await sleep(25);
  }
  const bootMs = Date.now() - started;
  if (bootState === 'degraded') {
    const failed = await execIn(pid, ['systemctl', '--failed', '--no-legend']);
    fs.appendFileSync(logFile, `booted degraded; failed units:\n${failed.stdout}`);
  }

  let stopping: Promise<void> | undefined;
  const exec = (argv: string[], o?: ExecOptions) => execIn(pid, argv, o);
  const systemctl = (...args: string[]) => exec(['systemctl', ...args]);

  const ns: SystemdNamespace = {
    pid,
    dir,
    logFile,
    bootMs,
    bootState,
    exec,
    systemctl,

    spawn(argv, o = {}) {
      const child = spawn('nsenter', nsenterArgs(pid, argv), {
        env: { ...process.env, ...o.env },
        cwd: o.cwd,
        stdio: o.stdio ?? 'pipe',
      });
      const killNsenter = child.kill.bind(child);
      child.kill = (signal?: NodeJS.Signals | number): boolean => {
        const inner = child.pid === undefined ? undefined : childrenOf(child.pid)[0];
        if (inner === undefined) return killNsenter(signal); // not forked yet, or already gone
        try {
          process.kill(inner, signal ?? 'SIGTERM');
          return true;
        } catch {
          return false;
        }
      };
      return child;
    },

    async show(unit, props) {
      const r = await systemctl('show', unit, ...props.map((p) => `--property=${p}`));
      if (r.code !== 0) throw new Error(`systemctl show ${unit} failed (${r.code}): ${r.stderr}`);
      const out: Record<string, string> = {};
      for (const line of r.stdout.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
      }
      return out;
    },

    async waitForUnitState(unit, state, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      let seen = '';
      for (;;) {
        seen = (await systemctl('is-active', unit)).stdout.trim();
        if (seen === state) return;
        if (Date.now() > until) break;
        await sleep(50);
      }
      const status = await systemctl('status', '--no-pager', '--lines=20', unit);
      throw new Error(`${unit}: wanted ${state}, still ${seen} after ${timeoutMs} ms\n${status.stdout}${status.stderr}`);
    },

    async journal(unit) {
      const journald = (await systemctl('is-active', 'systemd-journald.service')).stdout.trim();
      if (journald !== 'active') {
        fs.appendFileSync(logFile, `journal(${unit}): journald is ${journald}, returned ''\n`);
        return '';
      }
      await exec(['journalctl', '--sync']); // write out what journald has received so far
      return (await exec(['journalctl', '-u', unit, '--no-pager'])).stdout;
    },

    async writeFile(file, content, mode = 0o644) {
      const r = await exec(['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', 'sh', file, mode.toString(8)], {
        input: content,
      });
      if (r.code !== 0) throw new Error(`writeFile ${file} in namespace failed (${r.code}): ${r.stderr}`);
    },

    async readFile(file) {
      const r = await exec(['cat', '--', file]);
      if (r.code !== 0) throw new Error(`readFile ${file} in namespace failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },

    stop() {
      stopping ??= (async () => {
        unshare.ref(); // keep the event loop alive until it is really gone
        if (!unshareExited) {
          // Best effort: keep the namespace's journal for post-mortems.
          try {
            const j = await exec(['journalctl', '--no-pager', '-o', 'short-monotonic'], { timeoutMs: 5_000 });
            // journald also reads the host's /dev/kmsg: drop the kernel's lines, they are noise here.
            const lines = j.stdout.split('\n').filter((l) => !/^\[\s*[\d.]+\] \S+ kernel: /.test(l));
            fs.appendFileSync(logFile, `--- journal at stop (kernel lines omitted) ---\n${lines.join('\n')}`);
          } catch {
            /* a wedged namespace is killed anyway */
          }
          try {
            process.kill(pid, 'SIGKILL'); // PID 1 dies -> the kernel kills every process in the namespace
          } catch {
            /* gone */
          }
        }
        // unshare exits once its child (systemd) is reaped, which happens only after
        // every other process of the namespace is gone.
        await unshareExit;
        livePids.delete(pid);
        for (const h of cgroupHierarchies()) await removeCgroupTree(path.join(h, cgroupName));
      })();
      return stopping;
    },
  };
  return ns;
}
