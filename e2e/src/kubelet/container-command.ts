/**
 * A command run "in a container" by the stand-in kubelet: a local process in
 * the container's scratch directory, argv exactly as given.
 *
 * Without a TTY it is spawned directly with pipes (argv[0] looked up in PATH
 * first, so a missing command is a start error, as the container runtime
 * reports it, rather than an exit code). With a TTY it runs under
 * `pty-relay.py` (python3's pty module): Node has no pseudo-terminal of its
 * own; python3's pty was chosen over util-linux `script` because it keeps argv
 * exact (no shell quoting) and can resize the terminal with TIOCSWINSZ, which
 * is what a container runtime does (`script` only forwards its own terminal's
 * size, and here it has none).
 *
 * Each process gets its own process group; `kill()` signals the whole group.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const PTY_RELAY = fileURLToPath(new URL('./pty-relay.py', import.meta.url));

/**
 * The system's python3 when there is one: a version manager's shim on PATH
 * (pyenv) can take seconds to start, which TTY sessions would pay each time.
 * `-I` keeps the user's site packages and PYTHON* variables out.
 */
export function python3(): { command: string; args: string[] } {
  let command = 'python3';
  try {
    accessSync('/usr/bin/python3', constants.X_OK);
    command = '/usr/bin/python3';
  } catch {
    // the one on PATH
  }
  return { command, args: ['-I'] };
}

export interface TerminalSize {
  readonly width: number;
  readonly height: number;
}

export interface CommandOptions {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly tty: boolean;
  /** Give the process a stdin pipe (otherwise it reads /dev/null). */
  readonly stdin: boolean;
}

export type CommandEnd =
  | { readonly kind: 'exited'; readonly exitCode: number }
  | { readonly kind: 'start-failed'; readonly message: string };

export interface ContainerCommand {
  /** Output as it comes: with a TTY everything is on stdout. */
  readonly stdout: Readable;
  readonly stderr: Readable | undefined;
  writeStdin(data: Buffer): void;
  endStdin(): void;
  resize(size: TerminalSize): void;
  /** Signals the process group. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the process has exited and its output has been read to the end. */
  readonly ended: Promise<CommandEnd>;
}

/** execvp's lookup: the path of argv[0], or undefined when there is no such executable. */
export function resolveExecutable(name: string, pathVar: string): string | undefined {
  const executable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (name === '') return undefined;
  if (name.includes('/')) return executable(name) ? name : undefined;
  for (const dir of pathVar.split(delimiter)) {
    const candidate = join(dir || '.', name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

function notFound(name: string): string {
  return `exec: "${name}": executable file not found in $PATH`;
}

export function startContainerCommand(opts: CommandOptions): ContainerCommand {
  const argv0 = opts.argv[0] ?? '';
  const env: Record<string, string> = {
    ...opts.env,
    ...(opts.tty ? { TERM: opts.env.TERM ?? 'xterm' } : {}),
  };
  const path = resolveExecutable(argv0, env.PATH ?? '');
  if (!opts.tty && path === undefined) return notStarted(notFound(argv0));
  const child: ChildProcess = opts.tty
    ? spawn(python3().command, [...python3().args, PTY_RELAY, ...opts.argv], {
        cwd: opts.cwd,
        env,
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
        detached: true,
      })
    : spawn(path!, opts.argv.slice(1), {
        argv0,
        cwd: opts.cwd,
        env,
        stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        detached: true,
      });
  if (opts.tty && !opts.stdin) child.stdin!.end();
  const stdout = child.stdout!;
  // With a TTY the relay's stderr carries only its start error.
  let relayErr = '';
  if (opts.tty) child.stderr!.setEncoding('utf8').on('data', (d: string) => (relayErr += d));
  const stderr = opts.tty ? undefined : child.stderr!;
  const resizePipe = opts.tty ? (child.stdio[3] as NodeJS.WritableStream) : undefined;
  // A process that exits without reading its stdin makes writes fail with EPIPE: that is not our error.
  child.stdin?.on('error', () => {});
  resizePipe?.on('error', () => {});

  const streamDone = (s: Readable | null | undefined) =>
    s ? new Promise<void>((r) => s.once('close', () => r())) : Promise.resolve();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  const ended = Promise.all([exit, streamDone(child.stdout), streamDone(child.stderr)]).then(
    ([e]): CommandEnd => {
      if (e.error) return { kind: 'start-failed', message: e.error.message };
      if (opts.tty && e.code === 127) {
        const line = relayErr.split('\n').find((l) => l.startsWith('{"startError"'));
        if (line)
          return { kind: 'start-failed', message: (JSON.parse(line) as { startError: string }).startError };
      }
      const code = e.code ?? 128 + (e.signal ? (osConstants.signals[e.signal] ?? 0) : 0);
      return { kind: 'exited', exitCode: code };
    },
  );

  return {
    stdout,
    stderr,
    writeStdin(data) {
      if (child.stdin && !child.stdin.writableEnded) child.stdin.write(data);
    },
    endStdin() {
      if (child.stdin && !child.stdin.writableEnded) child.stdin.end();
    },
    resize(size) {
      if (resizePipe && size.width > 0 && size.height > 0) resizePipe.write(`${size.width} ${size.height}\n`);
    },
    kill(signal = 'SIGKILL') {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    },
    ended,
  };
}

/** A command that never started: no output, and the reason. */
function notStarted(message: string): ContainerCommand {
  return {
    stdout: Readable.from([]),
    stderr: Readable.from([]),
    writeStdin() {},
    endStdin() {},
    resize() {},
    kill() {},
    ended: Promise.resolve({ kind: 'start-failed', message }),
  };
}
