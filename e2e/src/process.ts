/**
 * Child processes for test servers (etcd, kube-apiserver, postgres, …) that
 * always stop:
 * - each is started through util-linux `setpriv --pdeathsig KILL`, so the
 *   kernel kills it when the process that started it dies for any reason,
 *   including SIGKILL or a crash, where no JavaScript cleanup runs;
 * - each gets its own process group (`detached`), so a terminal's Ctrl-C
 *   reaches only us and we stop servers in order;
 * - `stop()` sends SIGTERM, then SIGKILL after a grace period;
 * - on normal exit of this process, whatever is still running is killed.
 * Output goes to a log file whose tail is shown when a server fails to start.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { DependencyError } from '@chaperone/shared';

export interface StartOptions {
  /** Short name for messages, e.g. `etcd`. */
  name: string;
  command: string;
  args: readonly string[];
  /** Combined stdout + stderr are appended here. */
  logFile: string;
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** Run as this system user (we must be root); e.g. `postgres`, which refuses to run as root. */
  user?: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves when the process has exited, for whatever reason. */
  readonly exited: Promise<Exit>;
  /** Whether the process is still running. */
  running(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<Exit>;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
}

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;
let setprivChecked = false;

function ensureSetpriv(): void {
  if (setprivChecked) return;
  try {
    execFileSync('setpriv', ['--help'], { stdio: 'ignore' });
  } catch {
    throw new DependencyError(
      'setpriv (util-linux) is needed to tie test servers to their parent process; install util-linux',
    );
  }
  setprivChecked = true;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of live) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export function tailFile(path: string, lines = 30): string {
  if (!existsSync(path)) return '(no output)';
  const text = readFileSync(path, 'utf8').trimEnd();
  return text.split('\n').slice(-lines).join('\n') || '(no output)';
}

export function startProcess(opts: StartOptions): ManagedProcess {
  ensureSetpriv();
  installExitHook();
  const fd = openSync(opts.logFile, 'a');
  const privArgs = ['--pdeathsig', 'KILL'];
  if (opts.user) privArgs.push('--reuid', opts.user, '--regid', opts.user, '--init-groups');
  let child: ChildProcess;
  try {
    child = spawn('setpriv', [...privArgs, '--', opts.command, ...opts.args], {
      cwd: opts.cwd,
      env: { ...(opts.env ?? process.env) } as NodeJS.ProcessEnv,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new DependencyError(`could not start ${opts.name} (${opts.command})`);
  const pid = child.pid;
  let alive = true;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      live.delete(proc);
      resolve({ code, signal });
    });
    child.once('error', () => {
      alive = false;
      live.delete(proc);
      resolve({ code: null, signal: null });
    });
  });
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  const proc: ManagedProcess = {
    name: opts.name,
    pid,
    logFile: opts.logFile,
    exited,
    running: () => alive,
    async stop(graceMs = 10_000) {
      if (!alive) return exited;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      // Stragglers in its group (e.g. postgres backends) go too.
      signalGroup('SIGKILL');
      return result;
    },
    logTail: (lines = 30) => tailFile(opts.logFile, lines),
  };
  live.add(proc);
  return proc;
}

/** Every process started here that is still running. */
export function liveProcesses(): readonly ManagedProcess[] {
  return [...live];
}

export interface WaitOptions {
  /** What we are waiting for, for the error message. */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** When given, waiting fails at once if this process exits. */
  process?: ManagedProcess;
}

/**
 * Polls `check` until it returns a value other than undefined/false, or fails
 * with a message naming what did not become ready (and the process's log).
 */
export async function waitFor<T>(check: () => Promise<T | undefined | false>, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (opts.process && !opts.process.running()) {
      const exit = await opts.process.exited;
      throw new DependencyError(
        `${opts.process.name} exited (${exit.signal ?? `code ${exit.code}`}) before ${opts.what}; its log ends:\n${opts.process.logTail()}`,
      );
    }
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      const log = opts.process ? `; ${opts.process.name}'s log ends:\n${opts.process.logTail()}` : '';
      throw new DependencyError(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${why}${log}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
