/**
 * asciicast v2 (docs.asciinema.org/manual/asciicast/v2): a session recording
 * as newline-delimited JSON, which `asciinema play` and `asciinema cat` read.
 *
 *   {"version":2,"width":80,"height":24,"timestamp":1700000000}
 *   [0.105, "o", "output as the agent saw it"]
 *   [1.2, "i", "input as the pod got it"]
 *   [2.5, "r", "120x40"]
 *   [3.0, "m", "exit 0"]
 *
 * Times are seconds since the header's timestamp. Bytes are decoded as UTF-8
 * per stream, so a character split across frames is written whole; bytes that
 * are not UTF-8 become U+FFFD (asciicast holds text). asciicast v2 has no exit
 * event: the exit status is a marker ("m"), which players skip over.
 */
import type { SessionRecorder } from './session-hooks.ts';

export interface AsciicastOptions {
  readonly width: number;
  readonly height: number;
  /** Unix time of the session's start, in ms. */
  readonly startMs: number;
  /** Receives the header first, then one event per call, each a line ending in "\n". */
  readonly write: (line: string) => void;
  /** ms since the start (default: the wall clock against startMs). */
  readonly now?: () => number;
}

export class AsciicastWriter implements SessionRecorder {
  readonly #write: (line: string) => void;
  readonly #now: () => number;
  readonly #out = new TextDecoder('utf-8');
  readonly #in = new TextDecoder('utf-8');
  #ended = false;

  constructor(o: AsciicastOptions) {
    this.#write = o.write;
    this.#now = o.now ?? (() => Date.now() - o.startMs);
    this.#write(
      `${JSON.stringify({ version: 2, width: o.width, height: o.height, timestamp: Math.floor(o.startMs / 1000) })}\n`,
    );
  }

  #event(code: string, data: string): void {
    if (this.#ended || data === '') return;
    const t = Math.max(0, this.#now()) / 1000;
    this.#write(`[${t.toFixed(6)},${JSON.stringify(code)},${JSON.stringify(data)}]\n`);
  }

  output(data: Buffer): void {
    this.#event('o', this.#out.decode(data, { stream: true }));
  }

  input(data: Buffer): void {
    this.#event('i', this.#in.decode(data, { stream: true }));
  }

  resize(columns: number, rows: number): void {
    this.#event('r', `${columns}x${rows}`);
  }

  end(exitCode: number | undefined): void {
    this.#event('o', this.#out.decode());
    this.#event('i', this.#in.decode());
    this.#event('m', exitCode === undefined ? 'exit unknown' : `exit ${exitCode}`);
    this.#ended = true;
  }
}
