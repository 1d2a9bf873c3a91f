/**
 * What the stand-in kubelet keeps per container: a scratch directory where
 * exec commands run, the container log (what `kubectl logs` reads), and the
 * container's main process, which `kubectl attach` attaches to. The test
 * configures them; nothing is started unless the test asks.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type ContainerCommand, startContainerCommand, type TerminalSize } from './container-command.ts';

export interface LogEntry {
  readonly time: Date;
  readonly stream: 'stdout' | 'stderr';
  /** One line with its newline, or the unterminated end of an append. */
  readonly data: Buffer;
}

export interface MainProcessOptions {
  /** Run it on a pseudo-terminal (the pod's container has `tty: true`). */
  readonly tty?: boolean;
  /** Close the process's stdin when the first attached client's stdin ends (the container's `stdinOnce`). */
  readonly stdinOnce?: boolean;
}

export interface AttachListener {
  output(stream: 'stdout' | 'stderr', data: Buffer): void;
  /** The main process ended. */
  ended(): void;
}

/** Ids and the environment exec commands see. */
export interface ContainerIdentity {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
}

export class ContainerState {
  readonly id: ContainerIdentity;
  readonly workDir: string;
  readonly #env: Readonly<Record<string, string>>;
  readonly #log: LogEntry[] = [];
  readonly #logListeners = new Set<(entry: LogEntry | null) => void>();
  #logEnded = false;
  #main: { command: ContainerCommand; opts: MainProcessOptions; running: boolean } | undefined;
  readonly #attached = new Set<AttachListener>();
  readonly #track: (c: ContainerCommand) => void;

  constructor(
    id: ContainerIdentity,
    root: string,
    env: Readonly<Record<string, string>>,
    track: (c: ContainerCommand) => void,
  ) {
    this.id = id;
    this.workDir = join(root, id.namespace, id.pod, id.container);
    mkdirSync(this.workDir, { recursive: true });
    this.#env = { ...env, HOSTNAME: id.pod, HOME: this.workDir };
    this.#track = track;
  }

  /** The environment an exec command gets. */
  get env(): Readonly<Record<string, string>> {
    return this.#env;
  }

  /** Appends to the container log, one entry per line. */
  appendLog(text: string | Buffer, stream: 'stdout' | 'stderr' = 'stdout'): void {
    if (this.#logEnded) throw new Error(`the log of ${this.describe()} has ended`);
    this.#append(typeof text === 'string' ? Buffer.from(text) : text, stream);
  }

  #append(data: Buffer, stream: 'stdout' | 'stderr'): void {
    const time = new Date();
    let start = 0;
    while (start < data.length) {
      const nl = data.indexOf(10, start);
      const end = nl < 0 ? data.length : nl + 1;
      const entry: LogEntry = { time, stream, data: data.subarray(start, end) };
      this.#log.push(entry);
      for (const l of this.#logListeners) l(entry);
      start = end;
    }
  }

  /** The container has terminated: followers reach the end of the log. */
  endLog(): void {
    if (this.#logEnded) return;
    this.#logEnded = true;
    for (const l of this.#logListeners) l(null);
  }

  get logEnded(): boolean {
    return this.#logEnded;
  }

  logEntries(): readonly LogEntry[] {
    return this.#log;
  }

  /** New entries as they are appended; null once the log ends. Returns the unsubscribe function. */
  followLog(listener: (entry: LogEntry | null) => void): () => void {
    this.#logListeners.add(listener);
    return () => this.#logListeners.delete(listener);
  }

  /**
   * Starts the container's main process (what attach attaches to). Its output
   * is written to the log, as a container runtime does, and to every attached
   * client. When it exits the log ends.
   */
  run(argv: readonly string[], opts: MainProcessOptions = {}): void {
    if (this.#main?.running) throw new Error(`${this.describe()} already runs a main process`);
    const command = startContainerCommand({
      argv,
      cwd: this.workDir,
      env: this.#env,
      tty: opts.tty ?? false,
      stdin: true,
    });
    this.#track(command);
    const main = { command, opts, running: true };
    this.#main = main;
    const forward = (stream: 'stdout' | 'stderr') => (d: Buffer) => {
      if (!this.#logEnded) this.#append(d, stream);
      for (const a of this.#attached) a.output(stream, d);
    };
    command.stdout.on('data', forward('stdout'));
    command.stderr?.on('data', forward('stderr'));
    void command.ended.then(() => {
      main.running = false;
      for (const a of this.#attached) a.ended();
      this.#attached.clear();
      this.endLog();
    });
  }

  /** Whether a main process runs (attach needs one). */
  get running(): boolean {
    return this.#main?.running ?? false;
  }

  get mainTty(): boolean {
    return this.#main?.opts.tty ?? false;
  }

  /** Attaches a client to the main process; returns the functions for its input and the detach. */
  attach(listener: AttachListener): {
    stdin(data: Buffer): void;
    stdinEnd(): void;
    resize(size: TerminalSize): void;
    detach(): void;
  } {
    const main = this.#main;
    if (!main?.running) throw new Error(`${this.describe()} is not running`);
    this.#attached.add(listener);
    return {
      stdin: (d) => main.command.writeStdin(d),
      stdinEnd: () => {
        if (main.opts.stdinOnce) main.command.endStdin();
      },
      resize: (size) => main.command.resize(size),
      detach: () => this.#attached.delete(listener),
    };
  }

  describe(): string {
    return `container ${this.id.container} of pod ${this.id.namespace}/${this.id.pod}`;
  }
}
