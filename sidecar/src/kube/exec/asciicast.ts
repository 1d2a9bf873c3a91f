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
 * Times are seconds since the header's timestamp (measured on a monotonic
 * clock). Bytes are decoded as UTF-8 per stream, so a character split across
 * frames is written whole; bytes that are not UTF-8 become U+FFFD (asciicast
 * holds text). asciicast v2 has no exit event: the exit status is a marker
 * ("m"), which players skip over.
 *
 * The header is written with the first event: when that event is the
 * terminal's size (kubectl sends it as a TTY session opens), the header
 * carries it; otherwise 80x24 and the size arrives as an "r" event. Long
 * output is split into events of at most MAX_EVENT_CHARS characters, so every
 * line stays small.
 *
 * Size cap: once the next line would take the recording past `maxBytes`
 * (less room kept for the ending), the recording stops with a visible marker
 * — an "o" event the replay shows in reverse video, and an "m" marker — and
 * only the exit marker follows. The session itself goes on.
 */
import type { RecordingSummary, SessionRecorder } from './session-hooks.ts';

/** The most characters of output or input one event carries. */
export const MAX_EVENT_CHARS = 4096;
/** Room kept under the cap for the truncation marker and the exit marker. */
const ENDING_BYTES = 4096;
/** The smallest cap: a header, the markers, and some output. */
export const MIN_RECORDING_BYTES = 2 * ENDING_BYTES;

export interface AsciicastOptions {
  /** Unix time of the session's start, in ms (the header's timestamp). */
  readonly startMs: number;
  /** Receives the header first, then one event per line, each ending in "\n". */
  readonly write: (line: string) => void;
  /** The recording's size limit in bytes (default: none). */
  readonly maxBytes?: number;
  /** ms since the start (default: a monotonic clock from construction). */
  readonly now?: () => number;
}

export function truncationMessage(maxBytes: number): string {
  return `\r\n\x1b[7m[chaperone: the recording of this session stops here: it reached its limit of ${maxBytes} bytes; the session went on unrecorded]\x1b[0m\r\n`;
}

export class AsciicastWriter implements SessionRecorder {
  readonly #o: AsciicastOptions;
  readonly #now: () => number;
  readonly #out = new TextDecoder('utf-8');
  readonly #in = new TextDecoder('utf-8');
  #headerWritten = false;
  #bytes = 0;
  #truncated = false;
  #ended = false;

  constructor(o: AsciicastOptions) {
    this.#o = o;
    if (o.now) this.#now = o.now;
    else {
      const t0 = performance.now();
      this.#now = () => performance.now() - t0;
    }
  }

  get bytes(): number {
    return this.#bytes;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  #line(line: string, bytes = Buffer.byteLength(line, 'utf8')): void {
    this.#bytes += bytes;
    this.#o.write(line);
  }

  #header(width = 80, height = 24): void {
    this.#headerWritten = true;
    this.#line(
      `${JSON.stringify({ version: 2, width, height, timestamp: Math.floor(this.#o.startMs / 1000) })}\n`,
    );
  }

  /** An event line; under the cap, or the truncation marker instead. */
  #event(code: string, data: string, t: number): void {
    if (!this.#headerWritten) this.#header();
    const line = `[${(Math.max(0, t) / 1000).toFixed(6)},${JSON.stringify(code)},${JSON.stringify(data)}]\n`;
    const max = this.#o.maxBytes;
    const bytes = Buffer.byteLength(line, 'utf8');
    if (max !== undefined && this.#bytes + bytes > max - ENDING_BYTES) {
      this.#truncated = true;
      const at = `[${(Math.max(0, t) / 1000).toFixed(6)},`;
      this.#line(`${at}"o",${JSON.stringify(truncationMessage(max))}]\n`);
      this.#line(`${at}"m","recording truncated at its limit of ${max} bytes"]\n`);
      return;
    }
    this.#line(line, bytes);
  }

  /** Text of a stream, split into events of at most MAX_EVENT_CHARS (never inside a surrogate pair). */
  #text(code: string, text: string): void {
    if (this.#ended || this.#truncated || text === '') return;
    const t = this.#now();
    for (let i = 0; i < text.length && !this.#truncated; ) {
      let end = Math.min(text.length, i + MAX_EVENT_CHARS);
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
      this.#event(code, text.slice(i, end), t);
      i = end;
    }
  }

  output(data: Buffer): void {
    this.#text('o', this.#out.decode(data, { stream: true }));
  }

  input(data: Buffer): void {
    this.#text('i', this.#in.decode(data, { stream: true }));
  }

  resize(columns: number, rows: number): void {
    if (this.#ended || this.#truncated) return;
    if (!this.#headerWritten && columns >= 1 && rows >= 1 && columns <= 10_000 && rows <= 10_000) {
      this.#header(columns, rows);
      return;
    }
    this.#event('r', `${columns}x${rows}`, this.#now());
  }

  /** Ends the recording with the exit status (and why the session ended, when the sidecar ended it). */
  end(exitCode: number | undefined, why?: string): RecordingSummary {
    if (!this.#ended) {
      this.#text('o', this.#out.decode());
      this.#text('i', this.#in.decode());
      this.#ended = true;
      if (!this.#headerWritten) this.#header();
      const exit = exitCode === undefined ? 'exit unknown' : `exit ${exitCode}`;
      const note = why === undefined ? exit : `${exit}: ${why.slice(0, 300)}`;
      // Written past the cap's margin on purpose: ENDING_BYTES keeps room for it.
      this.#line(`[${(Math.max(0, this.#now()) / 1000).toFixed(6)},"m",${JSON.stringify(note)}]\n`);
    }
    return { bytes: this.#bytes, truncated: this.#truncated };
  }
}
