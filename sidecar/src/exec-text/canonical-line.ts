/**
 * The input line as the kernel's terminal line discipline builds it in
 * canonical mode (Linux n_tty with a new pty's settings: ICANON, ISIG,
 * IEXTEN, ICRNL, IXON, no IUTF8) — what a program without a line editor
 * reads: `sh` that is dash, `cat`, `read`. Only these bytes edit: ERASE
 * (DEL), KILL (Ctrl-U), WERASE (Ctrl-W: back over non-word characters, then
 * letters, digits and `_`), LNEXT (Ctrl-V); INTR, QUIT and SUSP (Ctrl-C,
 * Ctrl-\, Ctrl-Z) discard the line; CR and LF end it. Every other byte,
 * arrow keys and Ctrl-A included, is part of the line.
 *
 * Erasing a multi-byte character is unreadable: without IUTF8 the kernel
 * erases one byte of it, with IUTF8 the whole character, and the container
 * decides which.
 */

/** n_tty keeps at most 4095 bytes of a canonical line. */
export const CANONICAL_MAX = 4095;

export interface CanonicalResult {
  readonly text: string;
  readonly bytes: Buffer;
  readonly reason: string | undefined;
}

const isWordByte = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;

export class CanonicalLine {
  #bytes: number[] = [];
  #lnext = false;
  #reason: string | undefined;

  get text(): string {
    return Buffer.from(this.#bytes).toString('utf8');
  }

  get reason(): string | undefined {
    return this.#reason;
  }

  get empty(): boolean {
    return this.#bytes.length === 0 && this.#reason === undefined;
  }

  reset(): void {
    this.#bytes = [];
    this.#lnext = false;
    this.#reason = undefined;
  }

  /** The line so far as a finished line; the next one starts empty. */
  take(): CanonicalResult {
    const bytes = Buffer.from(this.#bytes);
    const line = { text: bytes.toString('utf8'), bytes, reason: this.#reason };
    this.reset();
    return line;
  }

  /** Feeds bytes; the lines that CR or LF end among them are appended to `done`. */
  feed(raw: Uint8Array, done: CanonicalResult[]): void {
    for (const c of raw) {
      if (this.#lnext) {
        this.#lnext = false;
        this.#append(c);
        continue;
      }
      switch (c) {
        case 0x16:
          this.#lnext = true;
          break;
        case 0x03:
        case 0x1a:
        case 0x1c:
          this.reset();
          break;
        case 0x15:
          this.#bytes = [];
          break;
        case 0x17:
          this.#werase();
          break;
        case 0x7f:
          this.#erase();
          break;
        case 0x11:
        case 0x12:
        case 0x13:
          break;
        case 0x04:
          // EOF: hands a non-empty line to the program without a line end.
          if (this.#bytes.length > 0) this.#reason ??= 'Ctrl-D inside a line';
          break;
        case 0x0d:
        case 0x0a:
          done.push(this.take());
          break;
        default:
          this.#append(c);
      }
    }
  }

  #append(c: number): void {
    if (this.#bytes.length >= CANONICAL_MAX) {
      this.#reason ??= `line longer than the terminal's ${CANONICAL_MAX} bytes`;
      return;
    }
    this.#bytes.push(c);
  }

  #erase(): void {
    const last = this.#bytes.at(-1);
    if (last === undefined) return;
    if (last >= 0x80) this.#reason ??= 'erasing a multi-byte character';
    this.#bytes.pop();
  }

  #werase(): void {
    let seenWord = false;
    for (;;) {
      const c = this.#bytes.at(-1);
      if (c === undefined) return;
      if (c >= 0x80) this.#reason ??= 'erasing a word with multi-byte characters';
      if (isWordByte(c)) seenWord = true;
      else if (seenWord) return;
      this.#bytes.pop();
    }
  }
}
