/**
 * Guards an exec session's stdin line by line: rebuilds each input line as
 * the program in the pod will read it, asks `decide` about it before the
 * line can run, and returns the bytes that may go to the pod.
 *
 * Modes
 * - `tty` (default with a TTY): keystrokes pass to the pod at once, so the
 *   pod's pty echoes them and the person types normally; only the key that
 *   runs the line (Enter) is held until `decide` allows the line. A refused
 *   line gets CANCEL_LINE instead of its Enter, and the caller writes the
 *   rule's message to the agent's terminal. From the first key the filter
 *   cannot follow (unreadable line), no further key of the line reaches the
 *   pod: its line editor could run the line without Enter (bash's Alt-1
 *   Alt-# insert-comment runs it).
 * - `tty-hold`: nothing of a line reaches the pod before `decide` allows it:
 *   stricter (the pod's line editor never sees a refused line), but the agent
 *   sees no echo until Enter, so editing is blind.
 * - `piped` (no TTY): input is data read as it is (no line editing, no
 *   echo); each line is held until allowed. A refused line ends stdin: the
 *   rest of a script is never delivered, since running it without the
 *   refused line may be worse than not running it (`cd` refused, `rm -rf *`
 *   next).
 *
 * Readings: with a TTY the program may read the line through readline (bash,
 * python, psql), through the kernel's canonical mode (dash, cat), or, when
 * it was typed ahead while a command ran, through both (the kernel edits
 * first); every distinct reading is given, and the line is allowed only if
 * `decide` allows it (the caller's `decide` must check every reading). A
 * line ending in a backslash continues on the next: the joined line is a
 * reading of the next one.
 *
 * Unreadable lines (history recall, tab completion, unknown keys, overlong
 * lines, control characters in piped input …) are refused whatever `decide`
 * says; `decide` still sees them, for the audit.
 *
 * Pure: no clock, no I/O; `decide` is the only call out.
 */
import { isUtf8 } from 'node:buffer';
import { CanonicalLine, type CanonicalResult } from './canonical-line.ts';
import { type Key, KeyReader } from './key-reader.ts';
import { keyName, ReadlineLine, readlineOf } from './readline-line.ts';

export type StdinMode = 'tty' | 'tty-hold' | 'piped';

export interface InputLine {
  /** The line as the line editor shows it when it runs (with a TTY), or as read (piped). A paste's lines, joined by "\n". */
  readonly text: string;
  /** Every line the program may run: each must be allowed. */
  readonly readings: readonly string[];
  /** False: what the program reads cannot be known from the input; the line is refused. */
  readonly readable: boolean;
  /** Why the line is unreadable. */
  readonly reason?: string;
  /** What ended the line: Enter, the end of a paste, a key that runs or replaces the line, the end of stdin. */
  readonly via: 'enter' | 'paste' | 'key' | 'end';
}

export interface LineDecision {
  readonly allow: boolean;
}

export interface EvaluatedLine<D> {
  readonly line: InputLine;
  readonly decision: D;
  /** The line went to the pod (readable and allowed). */
  readonly forwarded: boolean;
}

export interface StdinResult<D> {
  /** Bytes for the pod's stdin, in order. */
  readonly forward: Buffer;
  /** Lines evaluated in this call (blank lines are not). */
  readonly lines: readonly EvaluatedLine<D>[];
  /** Piped mode: a line was refused; stdin to the pod should be closed. Stays true. */
  readonly closeStdin: boolean;
}

export interface StdinFilterOptions<D extends LineDecision> {
  readonly mode: StdinMode;
  readonly decide: (line: InputLine) => D;
  /** Longest line (or paste) held or rebuilt; a longer one is unreadable. Default 64 KiB. */
  readonly maxLineBytes?: number;
}

/**
 * Sent instead of a refused line's Enter in `tty` mode: Ctrl-E Ctrl-U, to the
 * end of the line and kill it. readline (bash, python, psql), zsh and busybox
 * ash drop the line; in canonical mode (dash, cat) Ctrl-E is a character that
 * KILL erases with the rest. Not Ctrl-C: it stops a program in the
 * foreground, and bash, given Ctrl-C in the same write as the keys of the
 * line, now and then drops the first key of the next line (2 of 30 tries
 * here), after which it no longer runs what the filter read.
 */
export const CANCEL_LINE: Buffer = Buffer.of(0x05, 0x15);

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);
const LF_BYTE = Buffer.of(LF);

/** Keys that run or replace the line without Enter: the line is refused on the spot. */
const RUNS_LINE = new Map<number, string>([
  [0x0f, 'Ctrl-O (runs the line and recalls history)'],
  [0x18, 'Ctrl-X (prefix of edit-and-execute-command)'],
]);

/** Control characters piped input may not hold (TAB may). */
const PIPED_CONTROL = /(?!\t)\p{Cc}/u;

const isBlank = (s: string): boolean => s.trim() === '';

/** The line ends in an odd number of backslashes: the shell joins the next line to it. */
const continues = (s: string): boolean => s.endsWith('\\') && /(?:^|[^\\])(?:\\\\)*\\$/.test(s);

function unique(items: string[]): string[] {
  return items.length < 2 ? items : [...new Set(items)];
}

interface Paste {
  readonly raw: Buffer[];
  bytes: number;
  overflow: boolean;
  lastCR: boolean;
  readonly rlLines: string[];
  readonly canonLines: CanonicalResult[];
}

export class StdinFilter<D extends LineDecision> {
  readonly #mode: StdinMode;
  readonly #decide: (line: InputLine) => D;
  readonly #max: number;
  readonly #reader = new KeyReader();
  readonly #rl: ReadlineLine;
  readonly #canon = new CanonicalLine();
  #out: Buffer[] = [];
  #lines: EvaluatedLine<D>[] = [];
  /** tty-hold: the bytes of the current line. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #paste: Paste | undefined;
  /** piped: the bytes of the current line. */
  #line: Buffer[] = [];
  #lineBytes = 0;
  #lineOverflow = false;
  #afterCR = false;
  /** The lines so far of a command continued with backslashes. */
  #continued: string | undefined;
  #closed = false;
  #ended = false;

  constructor(options: StdinFilterOptions<D>) {
    this.#mode = options.mode;
    this.#decide = options.decide;
    this.#max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#rl = new ReadlineLine(this.#max);
  }

  push(bytes: Uint8Array): StdinResult<D> {
    if (this.#ended) throw new Error('StdinFilter: push() after end()');
    this.#out = [];
    this.#lines = [];
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (this.#mode === 'piped') this.#piped(buf);
    else for (const key of this.#reader.push(buf)) this.#key(key);
    return this.#result();
  }

  /**
   * Stdin has ended. Piped: a last line without a line end is evaluated (a
   * shell runs it). TTY: a line not yet entered never runs; held bytes are dropped.
   */
  end(): StdinResult<D> {
    this.#out = [];
    this.#lines = [];
    if (
      !this.#ended &&
      this.#mode === 'piped' &&
      !this.#closed &&
      (this.#lineBytes > 0 || this.#lineOverflow)
    ) {
      this.#endLine(EMPTY, EMPTY, 'end');
    }
    this.#ended = true;
    return this.#result();
  }

  #result(): StdinResult<D> {
    const forward = this.#out.length === 1 ? (this.#out[0] as Buffer) : Buffer.concat(this.#out);
    return { forward, lines: this.#lines, closeStdin: this.#closed };
  }

  // ---- TTY ----------------------------------------------------------------

  #key(key: Key): void {
    if (this.#paste) {
      this.#pasteKey(this.#paste, key);
      return;
    }
    if (key.k === 'paste-start') {
      this.#paste = { raw: [], bytes: 0, overflow: false, lastCR: false, rlLines: [], canonLines: [] };
      this.#pasteKey(this.#paste, key);
      return;
    }
    if (key.k === 'ctrl') {
      const code = key.code;
      if (code === CR || code === LF) {
        this.#submit('enter', key.raw);
        return;
      }
      const runs = RUNS_LINE.get(code);
      if (runs !== undefined) {
        this.#rl.unreadable(runs);
        this.#submit('key', key.raw);
        return;
      }
      if (code === 0x04) {
        // EOF on an empty line ends the program's input; inside a line it hands the line over without Enter.
        if (this.#rl.empty && this.#canon.empty) this.#signal(key.raw, false);
        else {
          this.#rl.unreadable('Ctrl-D inside a line');
          this.#submit('key', key.raw);
        }
        return;
      }
      if (code === 0x03) {
        this.#signal(key.raw, true);
        return;
      }
      if (code === 0x1a || code === 0x1c) {
        // SUSP, QUIT: the kernel discards its line; readline keeps its own.
        this.#signal(key.raw, false);
        return;
      }
    }
    this.#rl.key(key);
    this.#canon.feed(key.raw, []);
    // A key the filter does not model (Alt-digit, Alt-#, Tab …) makes the line unreadable: it and every key
    // after it stay here until the line ends and is cancelled, so no key the filter cannot follow (Alt-1
    // Alt-# runs a commented line in bash) reaches the pod's line editor.
    if (this.#rl.reason !== undefined) return;
    this.#send(key.raw);
  }

  /** A key that goes to the pod at once in both TTY modes (signals, EOF). */
  #signal(raw: Buffer, discardsLine: boolean): void {
    this.#canon.reset();
    if (discardsLine || this.#mode === 'tty-hold') {
      // In tty-hold mode the pod never saw the held line: both editors start again.
      this.#rl.reset();
      this.#continued = undefined;
    }
    this.#dropHeld();
    this.#out.push(raw);
  }

  #send(raw: Buffer): void {
    if (this.#mode === 'tty') {
      this.#out.push(raw);
      return;
    }
    if (this.#heldBytes + raw.length > this.#max) {
      this.#rl.unreadable(`line longer than ${this.#max} bytes`);
      return;
    }
    this.#held.push(raw);
    this.#heldBytes += raw.length;
  }

  #dropHeld(): void {
    this.#held = [];
    this.#heldBytes = 0;
  }

  /** A key ended the line: decide, then send the line (and the key) or cancel it. */
  #submit(via: InputLine['via'], raw: Buffer): void {
    const canon = this.#canon.take();
    const text = this.#rl.text;
    const reason = this.#rl.reason ?? canon.reason;
    const { readings, continued } = this.#readings([text], this.#continued);
    // Typed ahead while a command runs, the line is edited by the kernel, then by readline.
    const ahead = readlineOf(canon.bytes, this.#max);
    if (ahead.reason === undefined) readings.push(ahead.text);
    const ok = this.#evaluate(text, unique([...readings, canon.text]), reason, via);
    this.#rl.reset();
    if (ok) {
      this.#continued = continued;
      if (this.#mode === 'tty-hold') this.#out.push(...this.#held);
      this.#out.push(raw);
    } else {
      this.#continued = undefined;
      if (this.#mode === 'tty') this.#out.push(CANCEL_LINE);
    }
    this.#dropHeld();
  }

  #pasteKey(p: Paste, key: Key): void {
    if (p.bytes + key.raw.length > this.#max) p.overflow = true;
    if (p.overflow) {
      if (key.k === 'paste-end') this.#pasteEnd(p);
      return;
    }
    p.raw.push(key.raw);
    p.bytes += key.raw.length;
    // The kernel reads the markers and the content as they are; CR and LF end its lines.
    this.#canon.feed(key.raw, p.canonLines);
    const rl = this.#rl;
    if (key.k === 'paste-end') this.#pasteEnd(p);
    else if (key.k === 'ctrl' && (key.code === CR || key.code === LF)) {
      if (!(key.code === LF && p.lastCR)) {
        if (!rl.atEnd) rl.unreadable('a paste with line breaks into the middle of a line');
        p.rlLines.push(rl.breakLine());
      }
    } else if (key.k === 'ctrl') rl.unreadable(`${keyName(key)} in a paste`);
    else if (key.k !== 'paste-start') rl.key(key);
    p.lastCR = key.k === 'ctrl' && key.code === CR;
  }

  /** A paste ended: the lines it completed are decided together; the paste is sent or dropped whole. */
  #pasteEnd(p: Paste): void {
    this.#paste = undefined;
    const raw = p.overflow ? [] : p.raw;
    const { readings, continued } = this.#readings(p.rlLines, this.#continued);
    const all = unique([...readings, ...p.canonLines.map((l) => l.text)]);
    if (all.length === 0 && !p.overflow) {
      // A paste inside a line: it goes with the line, unless the line (or the paste) is already unreadable.
      if (this.#rl.reason === undefined) for (const r of raw) this.#send(r);
      return;
    }
    const reason = p.overflow
      ? `paste longer than ${this.#max} bytes`
      : (this.#rl.reason ?? p.canonLines.find((l) => l.reason)?.reason);
    if (this.#evaluate(p.rlLines.join('\n'), all, reason, 'paste')) {
      this.#continued = continued;
      for (const r of raw) this.#send(r);
      return;
    }
    this.#continued = undefined;
    this.#rl.reset();
    this.#canon.reset();
    this.#dropHeld();
    if (this.#mode === 'tty') this.#out.push(CANCEL_LINE);
  }

  // ---- piped --------------------------------------------------------------

  #piped(buf: Buffer): void {
    let p = 0;
    let cr = -1;
    while (p < buf.length && !this.#closed) {
      if (this.#afterCR) {
        this.#afterCR = false;
        // The LF of a CRLF: an empty line.
        if (buf[p] === LF) {
          this.#out.push(LF_BYTE);
          p++;
          continue;
        }
      }
      if (cr < p) cr = buf.indexOf(CR, p);
      const lf = buf.indexOf(LF, p);
      const q = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (q < 0) {
        this.#holdLine(buf.subarray(p));
        return;
      }
      this.#endLine(buf.subarray(p, q), buf.subarray(q, q + 1), 'enter');
      this.#afterCR = buf[q] === CR;
      p = q + 1;
    }
  }

  /** The start of a line that ends in a later chunk: copied, since the caller may reuse the chunk. */
  #holdLine(part: Buffer): void {
    if (this.#lineBytes + part.length > this.#max) this.#lineOverflow = true;
    if (this.#lineOverflow || part.length === 0) return;
    this.#line.push(Buffer.from(part));
    this.#lineBytes += part.length;
  }

  /** A line ends with `last` (its end in this chunk) and `terminator` (empty at the end of stdin). */
  #endLine(last: Buffer, terminator: Buffer, via: InputLine['via']): void {
    if (this.#lineBytes + last.length > this.#max) this.#lineOverflow = true;
    const bytes = this.#line.length === 0 ? last : Buffer.concat([...this.#line, last]);
    const text = bytes.toString('utf8');
    const reason = this.#lineOverflow
      ? `line longer than ${this.#max} bytes`
      : !isUtf8(bytes)
        ? 'bytes that are not UTF-8'
        : PIPED_CONTROL.test(text)
          ? 'control characters in the line'
          : undefined;
    this.#line = [];
    this.#lineBytes = 0;
    this.#lineOverflow = false;
    const { readings, continued } = this.#readings([text], this.#continued);
    if (this.#evaluate(text, readings, reason, via)) {
      this.#continued = continued;
      this.#out.push(bytes, terminator);
    } else this.#closed = true;
  }

  // ---- both -----------------------------------------------------------------

  /**
   * The readings of complete lines: each line, and where a line continues
   * with a backslash, the command joined so far. Returns what is still
   * continued after the last line.
   */
  #readings(
    lines: readonly string[],
    before: string | undefined,
  ): { readings: string[]; continued: string | undefined } {
    const readings: string[] = [];
    let continued = before;
    for (const line of lines) {
      readings.push(line);
      if (continued !== undefined) readings.push(continued + line);
      continued = continues(line) ? (continued ?? '') + line.slice(0, -1) : undefined;
    }
    return { readings: unique(readings), continued };
  }

  /** Asks `decide` unless the line is readable and blank; returns whether the line may go. */
  #evaluate(text: string, readings: string[], reason: string | undefined, via: InputLine['via']): boolean {
    const readable = reason === undefined;
    if (readable && readings.every(isBlank)) return true;
    const line: InputLine = readable
      ? { text, readings, readable, via }
      : { text, readings, readable, reason, via };
    const decision = this.#decide(line);
    const forwarded = readable && decision.allow;
    this.#lines.push({ line, decision, forwarded });
    return forwarded;
  }
}
