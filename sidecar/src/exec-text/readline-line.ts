/**
 * The input line as GNU readline in emacs mode (bash, python, psql, busybox
 * ash's similar editor) holds it, rebuilt from the keys typed: insertion at
 * the cursor, cursor moves, deletions and kills with readline's own word
 * rules (Ctrl-W: white space; Alt-b/f/d/Backspace: letters and digits).
 *
 * What input alone cannot tell (history, completion, the kill ring, undo,
 * unknown keys) makes the line unreadable, with the reason: the caller then
 * refuses it rather than guess. So does moving over or deleting a non-ASCII
 * character by a relative amount (readline works in bytes in the C locale,
 * which is what a container without LANG has, in characters in a UTF-8 one,
 * and over a base character and its combining marks together), and, after a
 * multi-line paste, a key that would reach back into the lines before
 * (whether the shell holds them depends on bracketed paste).
 *
 * The Enter-like keys (CR, LF), Ctrl-C, Ctrl-D and the keys that run a line
 * without Enter (Ctrl-O, Ctrl-X …) are the caller's: see StdinFilter.
 */
import { type Key, KeyReader } from './key-reader.ts';

const CONTROL = /\p{Cc}/u;
const WORD = /[\p{L}\p{N}]/u;

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t';
const isWord = (c: string | undefined): boolean => c !== undefined && WORD.test(c);

/** Keys that need what the input does not carry. */
const UNKNOWABLE_CTRL = new Map<number, string>([
  [0x00, 'a NUL character (some programs drop it, some keep it)'],
  [0x09, 'tab completion'],
  [0x0e, 'history recall (Ctrl-N)'],
  [0x10, 'history recall (Ctrl-P)'],
  [0x12, 'history search (Ctrl-R)'],
  [0x13, 'history search (Ctrl-S)'],
  [0x19, 'yank from the kill ring (Ctrl-Y)'],
  [0x1f, 'undo (Ctrl-_)'],
]);

type Edit =
  | 'left'
  | 'right'
  | 'home'
  | 'end'
  | 'backspace'
  | 'delete'
  | 'kill-start'
  | 'kill-end'
  | 'rubout-word'
  | 'back-word'
  | 'forward-word'
  | 'kill-word'
  | 'back-kill-word'
  | 'transpose'
  | 'none';

const CTRL_EDITS = new Map<number, Edit>([
  [0x01, 'home'],
  [0x02, 'left'],
  [0x05, 'end'],
  [0x06, 'right'],
  [0x07, 'none'],
  [0x08, 'backspace'],
  [0x0b, 'kill-end'],
  [0x0c, 'none'],
  [0x14, 'transpose'],
  [0x15, 'kill-start'],
  [0x16, 'none'],
  [0x17, 'rubout-word'],
  [0x1a, 'none'],
  [0x1c, 'none'],
  [0x7f, 'backspace'],
]);

const SEQ_EDITS: Record<string, Edit> = {
  'CSI C': 'right',
  'SS3 C': 'right',
  'CSI D': 'left',
  'SS3 D': 'left',
  'CSI H': 'home',
  'SS3 H': 'home',
  'CSI 1~': 'home',
  'CSI 7~': 'home',
  'CSI F': 'end',
  'SS3 F': 'end',
  'CSI 4~': 'end',
  'CSI 8~': 'end',
  'CSI 3~': 'delete',
  'ESC b': 'back-word',
  'ESC f': 'forward-word',
  'ESC d': 'kill-word',
  'ESC \x7f': 'back-kill-word',
  'ESC \x08': 'back-kill-word',
};

const HISTORY_SEQS = new Set(['CSI A', 'CSI B', 'SS3 A', 'SS3 B', 'CSI 5~', 'CSI 6~']);

/** Printable name of a key, for reasons. */
export function keyName(key: Key): string {
  if (key.k === 'seq')
    return key.name.replace(/\p{Cc}/gu, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  if (key.k === 'ctrl') return key.code === 0x7f ? 'DEL' : `Ctrl-${String.fromCharCode(key.code + 0x40)}`;
  return key.raw.toString('hex');
}

export class ReadlineLine {
  readonly #max: number;
  #chars: string[] = [];
  #cursor = 0;
  #reason: string | undefined;
  /** A paste ended lines before this one: the shell may hold them in the same buffer. */
  #afterPaste = false;

  constructor(maxChars: number) {
    this.#max = maxChars;
  }

  get text(): string {
    return this.#chars.join('');
  }

  /** Why the line cannot be known, if it cannot. */
  get reason(): string | undefined {
    return this.#reason;
  }

  get empty(): boolean {
    return this.#chars.length === 0 && this.#reason === undefined;
  }

  get atEnd(): boolean {
    return this.#cursor === this.#chars.length;
  }

  reset(): void {
    this.#chars = [];
    this.#cursor = 0;
    this.#reason = undefined;
    this.#afterPaste = false;
  }

  unreadable(reason: string): void {
    this.#reason ??= reason;
  }

  insert(ch: string): void {
    if (this.#chars.length >= this.#max) {
      this.unreadable(`line longer than ${this.#max} characters`);
      return;
    }
    this.#chars.splice(this.#cursor, 0, ch);
    this.#cursor++;
  }

  /**
   * A line break inside a paste: the text before the cursor is a complete
   * line (returned), the text after it starts the next one.
   */
  breakLine(): string {
    const done = this.#chars.slice(0, this.#cursor).join('');
    this.#chars = this.#chars.slice(this.#cursor);
    this.#cursor = 0;
    this.#afterPaste = true;
    return done;
  }

  key(key: Key): void {
    switch (key.k) {
      case 'char':
        if (CONTROL.test(key.text))
          this.unreadable(`control character U+${key.text.codePointAt(0)?.toString(16)}`);
        else this.insert(key.text);
        return;
      case 'quoted':
        this.insert(key.text);
        return;
      case 'invalid':
        this.unreadable('bytes that are not UTF-8');
        return;
      case 'ctrl': {
        const why = UNKNOWABLE_CTRL.get(key.code);
        if (why) this.unreadable(why);
        else {
          const edit = CTRL_EDITS.get(key.code);
          if (edit) this.#edit(edit);
          else this.unreadable(`key ${keyName(key)}`);
        }
        return;
      }
      case 'seq': {
        const edit = SEQ_EDITS[key.name];
        if (edit) this.#edit(edit);
        else if (HISTORY_SEQS.has(key.name)) this.unreadable('history recall (arrow or page key)');
        else this.unreadable(`key ${keyName(key)}`);
        return;
      }
      default:
        this.unreadable(`key ${keyName(key)}`);
    }
  }

  #edit(edit: Edit): void {
    if (edit === 'none') return;
    const chars = this.#chars;
    const at = this.#cursor;
    switch (edit) {
      case 'left':
        if (this.#clear(at - 1, at)) this.#moveTo(at - 1);
        return;
      case 'right':
        if (this.#clear(at, at + 1)) this.#cursor = Math.min(chars.length, at + 1);
        return;
      case 'home':
        this.#moveTo(0, true);
        return;
      case 'end':
        this.#cursor = chars.length;
        return;
      case 'backspace':
        if (this.#clear(at - 1, at) && this.#moveTo(at - 1)) this.#delete(at - 1, at);
        return;
      case 'delete':
        if (this.#clear(at, at + 1)) this.#delete(at, Math.min(chars.length, at + 1));
        return;
      case 'kill-start':
        if (this.#moveTo(0, true)) this.#delete(0, at);
        return;
      case 'kill-end':
        this.#delete(at, chars.length);
        return;
      case 'rubout-word': {
        // White space is the same in bytes and in characters: no ambiguity.
        let p = at;
        while (p > 0 && isSpace(chars[p - 1])) p--;
        while (p > 0 && !isSpace(chars[p - 1])) p--;
        if (this.#moveTo(p, p === 0)) this.#delete(p, at);
        return;
      }
      case 'back-word':
      case 'back-kill-word': {
        let p = at;
        while (p > 0 && !isWord(chars[p - 1])) p--;
        while (p > 0 && isWord(chars[p - 1])) p--;
        if (this.#clear(p - 1, at) && this.#moveTo(p, p === 0) && edit === 'back-kill-word')
          this.#delete(p, at);
        return;
      }
      case 'forward-word':
      case 'kill-word': {
        let p = at;
        while (p < chars.length && !isWord(chars[p])) p++;
        while (p < chars.length && isWord(chars[p])) p++;
        if (!this.#clear(at, p + 1)) return;
        if (edit === 'kill-word') this.#delete(at, p);
        else this.#cursor = p;
        return;
      }
      case 'transpose': {
        // readline's transpose-chars: at the end of the line, the two characters before the cursor.
        if (at === 0 || chars.length < 2) return;
        const p = at === chars.length ? at - 1 : at;
        if (!this.#clear(p - 1, p + 1)) return;
        const a = chars[p - 1] as string;
        chars[p - 1] = chars[p] as string;
        chars[p] = a;
        this.#cursor = p + 1;
        return;
      }
    }
  }

  /**
   * Whether the characters in [from, to) (clamped to the line) are all ASCII:
   * a relative move or deletion over any other character is unreadable.
   */
  #clear(from: number, to: number): boolean {
    for (let k = Math.max(0, from); k < Math.min(to, this.#chars.length); k++) {
      if ((this.#chars[k] as string).charCodeAt(0) >= 0x80) {
        this.unreadable('moving over or deleting a non-ASCII character');
        return false;
      }
    }
    return true;
  }

  /**
   * Moves the cursor to `to` (clamped at 0). Reaching the start of the line
   * after a multi-line paste (`reachesBack`, or moving left from 0) is
   * unreadable: the shell's buffer may go on into the pasted lines.
   */
  #moveTo(to: number, reachesBack = false): boolean {
    if (this.#afterPaste && (to < 0 || (reachesBack && to === 0))) {
      this.unreadable('editing back into the lines of a paste');
      return false;
    }
    if (to < 0) return false;
    this.#cursor = to;
    return true;
  }

  #delete(from: number, to: number): void {
    if (to <= from) return;
    this.#chars.splice(from, to - from);
    this.#cursor = from;
  }
}

/**
 * The line readline reads from bytes the kernel has already edited: keys
 * typed ahead while a command still runs reach the terminal in canonical
 * mode, so ERASE, KILL and WERASE act first, and readline then edits with
 * what is left (arrow keys, Ctrl-A …) when it reads them.
 */
export function readlineOf(
  bytes: Uint8Array,
  maxChars: number,
): { text: string; reason: string | undefined } {
  const line = new ReadlineLine(maxChars);
  const reader = new KeyReader();
  for (const key of reader.push(bytes)) line.key(key);
  if (reader.pending > 0) line.unreadable('a cut escape sequence');
  return { text: line.text, reason: line.reason };
}
