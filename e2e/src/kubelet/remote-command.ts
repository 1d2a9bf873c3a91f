/**
 * exec and attach sessions, independent of the wire (WebSocket or SPDY): the
 * transport delivers what the client sends (stdin, its end, resize events) and
 * carries what the command prints; the session runs the command and ends with
 * the Status, like the kubelet's ServeExec/ServeAttach
 * (pkg/kubelet/cri/streaming/remotecommand, v1.20).
 */
import type { Readable } from 'node:stream';
import type { CommandEnd, ContainerCommand, TerminalSize } from './container-command.ts';
import type { ContainerState } from './containers.ts';
import { type ExecStatus, internalError, nonZeroExit, SUCCESS } from './status.ts';

/** Which streams the session has (query `input`, `output`, `error`, `tty` = "1"). */
export interface StreamOptions {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly tty: boolean;
}

/** remotecommand.NewOptions: stderr is dropped with a TTY; at least one stream is required. */
export function streamOptions(query: URLSearchParams): StreamOptions | { error: string } {
  const tty = query.get('tty') === '1';
  const stdin = query.get('input') === '1';
  const stdout = query.get('output') === '1';
  const stderr = query.get('error') === '1' && !tty;
  if (!stdin && !stdout && !stderr) return { error: 'you must specify at least 1 of stdin, stdout, stderr' };
  return { stdin, stdout, stderr, tty };
}

/** What the client sends, delivered by the transport. */
export interface ClientEvents {
  stdin(data: Buffer): void;
  stdinEnd(): void;
  resize(size: TerminalSize): void;
  /** The connection is gone before the session finished. */
  disconnected(): void;
}

/**
 * Holds what the client sends until the session listens (a client may type
 * before the command has started), then passes everything straight through.
 */
export class ClientEventQueue implements ClientEvents {
  #target: ClientEvents | undefined;
  readonly #early: ((t: ClientEvents) => void)[] = [];

  listen(target: ClientEvents): void {
    this.#target = target;
    for (const replay of this.#early.splice(0)) replay(target);
  }

  #deliver(event: (t: ClientEvents) => void): void {
    if (this.#target) event(this.#target);
    else this.#early.push(event);
  }

  stdin(data: Buffer): void {
    this.#deliver((t) => t.stdin(data));
  }

  stdinEnd(): void {
    this.#deliver((t) => t.stdinEnd());
  }

  resize(size: TerminalSize): void {
    this.#deliver((t) => t.resize(size));
  }

  disconnected(): void {
    this.#deliver((t) => t.disconnected());
  }
}

export interface RemoteCommandTransport {
  readonly options: StreamOptions;
  /** Starts delivering client events. */
  listen(events: ClientEvents): void;
  /** Writes output; false when the connection wants the writer to wait for `onDrain`. Ignored for a stream the session lacks. */
  writeStdout(data: Buffer): boolean;
  writeStderr(data: Buffer): boolean;
  onDrain(callback: () => void): void;
  /** Sends the Status as the negotiated protocol version does, then closes the connection. */
  finish(status: ExecStatus): void;
}

/**
 * Splits the resize stream into TerminalSize values. SPDY delivers it as a
 * byte stream of concatenated JSON objects (the kubelet reads it with a
 * json.Decoder); over WebSocket each message holds one. Field names match
 * case-insensitively, as encoding/json does.
 */
export class ResizeDecoder {
  #text = '';

  push(data: Buffer): TerminalSize[] {
    this.#text += data.toString('utf8');
    if (this.#text.length > 65536) this.#text = '';
    const out: TerminalSize[] = [];
    for (;;) {
      const start = this.#text.indexOf('{');
      if (start < 0) {
        this.#text = '';
        return out;
      }
      const end = objectEnd(this.#text, start);
      if (end < 0) {
        this.#text = this.#text.slice(start);
        return out;
      }
      const json = this.#text.slice(start, end + 1);
      this.#text = this.#text.slice(end + 1);
      try {
        const fields = Object.fromEntries(
          Object.entries(JSON.parse(json) as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), v]),
        );
        out.push({ width: Number(fields.width) || 0, height: Number(fields.height) || 0 });
      } catch {
        // not JSON: the kubelet's decoder would stop here; skipping is kinder and changes nothing in tests
      }
    }
  }
}

/** Index of the `}` closing the object that starts at `start`, or -1. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/** Copies a command's output to the transport, pausing while the connection is backed up. */
export function pump(
  source: Readable | undefined,
  write: (d: Buffer) => boolean,
  t: RemoteCommandTransport,
): void {
  if (!source) return;
  source.on('data', (d: Buffer) => {
    if (!write(d)) {
      source.pause();
      t.onDrain(() => source.resume());
    }
  });
  source.on('error', () => {});
}

/** The Status for how a command ended. */
export function endStatus(argv: readonly string[], end: CommandEnd): ExecStatus {
  if (end.kind === 'start-failed') {
    return internalError(`error executing command in container: failed to exec in container: ${end.message}`);
  }
  return end.exitCode === 0 ? SUCCESS : nonZeroExit(argv, end.exitCode);
}

/**
 * Runs an exec session to its end: the command's output goes to the client,
 * the client's input to the command; then the Status. When the client goes
 * away first, the command's stdin ends and its output pipes close (its next
 * write gets SIGPIPE, as when the runtime's reader goes away); a TTY session's
 * terminal is hung up.
 */
export async function runExec(
  t: RemoteCommandTransport,
  argv: readonly string[],
  command: ContainerCommand,
): Promise<void> {
  let gone = false;
  t.listen({
    stdin: (d) => command.writeStdin(d),
    stdinEnd: () => command.endStdin(),
    resize: (size) => command.resize(size),
    disconnected: () => {
      gone = true;
      command.endStdin();
      if (t.options.tty) command.kill('SIGHUP');
      command.stdout.destroy();
      command.stderr?.destroy();
    },
  });
  pump(command.stdout, (d) => t.writeStdout(d), t);
  pump(command.stderr, (d) => t.writeStderr(d), t);
  const end = await command.ended;
  if (!gone) t.finish(endStatus(argv, end));
}

/**
 * Runs an attach session: the client sees the main process's output from now
 * on and its input goes to the process. It ends with Success when the process
 * exits; a client that leaves detaches and the process runs on.
 */
export function runAttach(t: RemoteCommandTransport, container: ContainerState): Promise<void> {
  return new Promise((resolve) => {
    const handle = container.attach({
      output: (stream, d) => (stream === 'stdout' ? t.writeStdout(d) : t.writeStderr(d)),
      ended: () => {
        t.finish(SUCCESS);
        resolve();
      },
    });
    t.listen({
      stdin: handle.stdin,
      stdinEnd: handle.stdinEnd,
      resize: handle.resize,
      disconnected: () => {
        handle.detach();
        resolve();
      },
    });
  });
}
