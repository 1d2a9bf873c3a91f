/**
 * What of a recording `chaperone replay` lets reach the operator's terminal.
 *
 * A recording is the agent's terminal output: the escape sequences in it were
 * chosen by the agent (or by anything it ran), and the operator's terminal
 * would act on them as the agent's did. Most are what makes a shell session
 * look as it did — colours, cursor movement, erasing, full-screen programs —
 * and those are replayed. The rest could reach beyond the replay, so they are
 * dropped (and counted, for the line after the replay):
 *
 *  - anything that makes the terminal answer (device status and attribute
 *    reports, DECRQSS, window reports): the answer would be typed into the
 *    operator's shell;
 *  - every string sequence — OSC (window title, clipboard OSC 52, hyperlinks
 *    OSC 8, colours, notifications), DCS (user-defined keys, sixel, tmux
 *    pass-through), SOS, PM, APC (kitty graphics);
 *  - modes that change the terminal beyond the screen: keyboard (application
 *    cursor keys and keypad, modifyOtherKeys, the kitty keyboard protocol),
 *    mouse reporting, bracketed paste, focus events, 132 columns, line feed
 *    mode, soft and full resets, erasing the scrollback (ED 3), tab stops,
 *    window operations, character sets other than ASCII and line drawing;
 *  - C0 controls other than BS, HT, LF and CR (BEL, SO/SI, …), DEL, and
 *    C1 controls (U+0080–U+009F, which some terminals read as CSI, OSC, …).
 *
 * Characters that reorder or split what a line shows (bidirectional
 * overrides and isolates, U+2028/U+2029) are shown as `\u{202e}`, as in the
 * rest of the operator output (terminal-safe.ts). An unterminated string
 * sequence swallows at most MAX_STRING_CHARS; then what follows is shown.
 *
 * What the replay allows and may leave behind (colours, insert mode, origin
 * mode, reverse video, scroll region, autowrap, the alternate screen, a
 * hidden cursor, the line-drawing character set) is undone by `end()`.
 *
 * `asciinema play` and `asciinema cat` write a recording as it is: for an
 * exported `.cast` of an untrusted session, read it in a terminal you can
 * throw away, or with `chaperone replay`.
 *
 * Pure and incremental: `push(text)` with the output in any pieces gives the
 * same result.
 */
import { visible } from './terminal-safe.ts';

const ESC = 0x1b;
const MAX_SEQUENCE_CHARS = 64;
export const MAX_STRING_CHARS = 64 * 1024;

/** C0 controls a replay needs: BS, HT, LF, CR. */
const SAFE_C0 = new Set([0x08, 0x09, 0x0a, 0x0d]);
/** Characters shown instead of acting on how the line reads. */
const REORDERING = /^[\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]$/;
/** CSI finals that only move the cursor, edit the screen or set colours. */
const SAFE_CSI_FINALS = new Set([...'ABCDEFGHfdea`@PLMXIZKm']);
/** DEC private modes a replay may set: cursor visibility and blink, autowrap, origin, reverse video, alternate screen. */
const SAFE_PRIVATE_MODES = new Set(['25', '12', '7', '6', '5', '1049', '1047', '1048', '47']);

type State = 'ground' | 'esc' | 'escCharset' | 'escSkip' | 'csi' | 'string' | 'stringEsc';

export class ReplayFilter {
  #state: State = 'ground';
  #seq = '';
  #stringChars = 0;
  #dropped = 0;
  /** What `end()` must undo. */
  readonly #set = new Set<string>();

  /** Control sequences and characters not passed on so far. */
  get dropped(): number {
    return this.#dropped;
  }

  push(text: string): string {
    let out = '';
    for (const ch of text) out += this.#char(ch);
    return out;
  }

  /** The end of the recording: an unfinished sequence is dropped; what the replay changed is undone. */
  end(): string {
    if (this.#state !== 'ground') this.#dropped++;
    this.#state = 'ground';
    let out = '\x1b[0m';
    const undo: [string, string][] = [
      ['insert', '\x1b[4l'],
      ['origin', '\x1b[?6l'],
      ['reverse', '\x1b[?5l'],
      ['noautowrap', '\x1b[?7h'],
      // Resetting the margins homes the cursor: keep it where it is.
      ['region', '\x1b7\x1b[r\x1b8'],
      ['alt', '\x1b[?1049l'],
      ['charset', '\x1b(B'],
      ['hidden', '\x1b[?25h'],
    ];
    for (const [k, seq] of undo) if (this.#set.has(k)) out += seq;
    this.#set.clear();
    return out;
  }

  #char(ch: string): string {
    const c = ch.codePointAt(0) as number;
    switch (this.#state) {
      case 'ground':
        return this.#ground(ch, c);
      case 'esc':
        return this.#esc(ch, c);
      case 'escCharset':
        this.#state = 'ground';
        if (this.#seq === '(' && (ch === '0' || ch === 'B')) {
          this.#toggle('charset', ch === '0');
          return `\x1b(${ch}`;
        }
        this.#dropped++;
        return '';
      case 'escSkip':
        // An intermediate byte, then the final: the whole sequence is dropped.
        if (c >= 0x20 && c <= 0x2f) return '';
        this.#state = 'ground';
        return c >= 0x30 && c <= 0x7e ? '' : this.#ground(ch, c);
      case 'csi':
        return this.#csi(ch, c);
      case 'string':
      case 'stringEsc':
        return this.#string(ch, c);
    }
  }

  #ground(ch: string, c: number): string {
    if (c === ESC) {
      this.#state = 'esc';
      return '';
    }
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f)) {
      if (SAFE_C0.has(c)) return ch;
      this.#dropped++;
      return '';
    }
    return REORDERING.test(ch) ? visible(ch) : ch;
  }

  #esc(ch: string, c: number): string {
    this.#state = 'ground';
    switch (ch) {
      case '[':
        this.#state = 'csi';
        this.#seq = '';
        return '';
      case ']':
      case 'P':
      case 'X':
      case '^':
      case '_':
        this.#state = 'string';
        this.#stringChars = 0;
        return '';
      // Save/restore cursor, index, next line, reverse index.
      case '7':
      case '8':
      case 'D':
      case 'E':
      case 'M':
        return `\x1b${ch}`;
      case '(':
      case ')':
        this.#state = 'escCharset';
        this.#seq = ch;
        return '';
    }
    if (c === ESC) {
      this.#dropped++;
      this.#state = 'esc';
      return '';
    }
    this.#dropped++;
    if (c >= 0x20 && c <= 0x2f) this.#state = 'escSkip';
    else if (c < 0x20 && SAFE_C0.has(c)) return ch;
    return '';
  }

  #csi(ch: string, c: number): string {
    if (c >= 0x40 && c <= 0x7e) {
      this.#state = 'ground';
      const seq = this.#seq;
      return this.#allowedCsi(seq, ch) ? `\x1b[${seq}${ch}` : this.#drop();
    }
    if (c >= 0x20 && c <= 0x3f) {
      this.#seq += ch;
      if (this.#seq.length > MAX_SEQUENCE_CHARS) {
        this.#state = 'ground';
        return this.#drop();
      }
      return '';
    }
    if (c === ESC) {
      this.#dropped++;
      this.#state = 'esc';
      return '';
    }
    // A control inside a sequence is carried out by terminals as it comes; anything else ends it.
    if (c < 0x20) return SAFE_C0.has(c) ? ch : this.#drop(false);
    this.#state = 'ground';
    this.#dropped++;
    return this.#ground(ch, c);
  }

  #string(ch: string, c: number): string {
    if (this.#state === 'stringEsc') {
      this.#state = 'ground';
      this.#dropped++;
      // ESC \ ends the string; an ESC followed by anything else starts a new sequence.
      return ch === '\\' ? '' : this.#esc(ch, c);
    }
    if (c === 0x07 || c === 0x9c || c === 0x18 || c === 0x1a) {
      this.#state = 'ground';
      this.#dropped++;
      return '';
    }
    if (c === ESC) {
      this.#state = 'stringEsc';
      return '';
    }
    if (++this.#stringChars > MAX_STRING_CHARS) {
      // Hiding the rest of the session from the operator is not allowed: show it from here.
      this.#state = 'ground';
      this.#dropped++;
      return this.#ground(ch, c);
    }
    return '';
  }

  #drop(count = true): string {
    if (count) this.#dropped++;
    return '';
  }

  #allowedCsi(seq: string, final: string): boolean {
    const prefix = seq[0] === '?' || seq[0] === '>' || seq[0] === '<' || seq[0] === '=' ? seq[0] : '';
    const params = seq.slice(prefix.length);
    if (!/^[0-9;:]*$/.test(params)) return false; // intermediates (CSI ! p, CSI SP q, …) or odd bytes
    const ps = params === '' ? [] : params.split(/[;:]/);
    if (prefix === '?') {
      if (final === 'J' || final === 'K') return true;
      if ((final !== 'h' && final !== 'l') || ps.length === 0 || !ps.every((p) => SAFE_PRIVATE_MODES.has(p)))
        return false;
      for (const p of ps) this.#track(p, final === 'h');
      return true;
    }
    if (prefix !== '') return false;
    if (SAFE_CSI_FINALS.has(final)) return true;
    switch (final) {
      case 'J': // not 3: the scrollback, the operator's own history
        return !ps.includes('3');
      case 'S':
      case 'T': // with more parameters, T starts mouse highlighting
        return ps.length <= 1;
      case 'r':
        this.#set.add('region');
        return true;
      case 's':
      case 'u':
        return ps.length === 0;
      case 'b': // repeat the last character: bounded
        return ps.length <= 1 && Number(ps[0] ?? 1) <= 1000;
      case 'h':
      case 'l':
        if (ps.length !== 1 || ps[0] !== '4') return false;
        this.#toggle('insert', final === 'h');
        return true;
      default:
        return false;
    }
  }

  #track(mode: string, on: boolean): void {
    if (mode === '1049' || mode === '1047' || mode === '47') this.#toggle('alt', on);
    else if (mode === '6') this.#toggle('origin', on);
    else if (mode === '5') this.#toggle('reverse', on);
    else if (mode === '7') this.#toggle('noautowrap', !on);
    else if (mode === '25') this.#toggle('hidden', !on);
  }

  #toggle(key: string, on: boolean): void {
    if (on) this.#set.add(key);
    else this.#set.delete(key);
  }
}
