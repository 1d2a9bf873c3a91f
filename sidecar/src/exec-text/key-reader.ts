/**
 * Splits the bytes a terminal sends (an exec session's stdin with a TTY) into
 * keys: printable characters (UTF-8), control characters, escape sequences
 * (ECMA-48: CSI `ESC [` parameters 0x30–0x3F, intermediates 0x20–0x2F, a
 * final byte 0x40–0x7E; SS3 `ESC O` + one byte; `ESC` + a key for Alt), and
 * bracketed paste (`ESC [200~` … `ESC [201~`, xterm), inside which every
 * byte is content until the end marker. After Ctrl-V the next character is
 * literal (readline's quoted-insert, the kernel's LNEXT).
 *
 * Incremental: `push(bytes)` returns the complete keys; a cut sequence or
 * character waits for the next bytes (at most MAX_SEQUENCE bytes).
 */

export type Key =
  /** One printable character (a code point from U+0020, not DEL). */
  | { readonly k: 'char'; readonly text: string; readonly raw: Buffer }
  /** A C0 control character or DEL. */
  | { readonly k: 'ctrl'; readonly code: number; readonly raw: Buffer }
  /** The character after Ctrl-V, taken literally. */
  | { readonly k: 'quoted'; readonly text: string; readonly raw: Buffer }
  /** An escape sequence, named like `CSI 3~`, `SS3 A`, `ESC b`, or `ESC` alone. */
  | { readonly k: 'seq'; readonly name: string; readonly raw: Buffer }
  | { readonly k: 'paste-start'; readonly raw: Buffer }
  | { readonly k: 'paste-end'; readonly raw: Buffer }
  /** Bytes that are not UTF-8, or an escape sequence longer than MAX_SEQUENCE. */
  | { readonly k: 'invalid'; readonly raw: Buffer };

/** Longest escape sequence accepted; a longer one is `invalid`. */
export const MAX_SEQUENCE = 32;

const ESC = 0x1b;
const CTRL_V = 0x16;
const PASTE_END = Buffer.from('\x1b[201~', 'latin1');
const EMPTY = Buffer.alloc(0);

/** Length of the UTF-8 character at `p`: >0 valid, 0 cut by the end, -1 invalid (RFC 3629 table). */
function utf8Length(b: Buffer, p: number): number {
  const c = b[p] as number;
  if (c < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c === 0xe0) lo = 0xa0;
    if (c === 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c === 0xf0) lo = 0x90;
    if (c === 0xf4) hi = 0x8f;
  } else return -1;
  for (let k = 1; k < n; k++) {
    if (p + k >= b.length) return 0;
    const d = b[p + k] as number;
    if (d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return -1;
  }
  return n;
}

export class KeyReader {
  #held: Buffer = EMPTY;
  #paste = false;
  #quoted = false;

  /** Inside a bracketed paste. */
  get inPaste(): boolean {
    return this.#paste;
  }

  push(bytes: Uint8Array): Key[] {
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const b = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk;
    const keys: Key[] = [];
    let p = 0;
    while (p < b.length) {
      const n = this.#paste ? this.#pasteKey(b, p, keys) : this.#key(b, p, keys);
      if (n === 0) break;
      p += n;
    }
    this.#held = p < b.length ? Buffer.from(b.subarray(p)) : EMPTY;
    return keys;
  }

  /** Bytes of a cut key at the end of the input (dropped). */
  get pending(): number {
    return this.#held.length;
  }

  /** One key at `p` outside a paste; returns its length, or 0 when it is cut by the end. */
  #key(b: Buffer, p: number, keys: Key[]): number {
    const c = b[p] as number;
    if (this.#quoted) {
      const n = c < 0x80 ? 1 : utf8Length(b, p);
      if (n === 0) return 0;
      this.#quoted = false;
      if (n < 0) return push(keys, { k: 'invalid', raw: b.subarray(p, p + 1) });
      return push(keys, { k: 'quoted', text: b.toString('utf8', p, p + n), raw: b.subarray(p, p + n) });
    }
    if (c === ESC) return this.#escape(b, p, keys);
    if (c < 0x20 || c === 0x7f) {
      if (c === CTRL_V) this.#quoted = true;
      return push(keys, { k: 'ctrl', code: c, raw: b.subarray(p, p + 1) });
    }
    return this.#char(b, p, keys);
  }

  #char(b: Buffer, p: number, keys: Key[]): number {
    const n = utf8Length(b, p);
    if (n === 0) return 0;
    if (n < 0) return push(keys, { k: 'invalid', raw: b.subarray(p, p + 1) });
    return push(keys, { k: 'char', text: b.toString('utf8', p, p + n), raw: b.subarray(p, p + n) });
  }

  #escape(b: Buffer, p: number, keys: Key[]): number {
    if (p + 1 >= b.length) return 0;
    const n = b[p + 1] as number;
    const lone = (): number => push(keys, { k: 'seq', name: 'ESC', raw: b.subarray(p, p + 1) });
    if (n === 0x5b) return this.#csi(b, p, keys);
    if (n === 0x4f) {
      if (p + 2 >= b.length) return 0;
      const f = b[p + 2] as number;
      if (f < 0x40 || f > 0x7e) return push(keys, { k: 'seq', name: 'ESC O', raw: b.subarray(p, p + 2) });
      return push(keys, { k: 'seq', name: `SS3 ${String.fromCharCode(f)}`, raw: b.subarray(p, p + 3) });
    }
    // Alt + an ASCII key (ESC DEL is Alt-Backspace); anything else: ESC was a key by itself.
    if ((n >= 0x20 && n < 0x7f) || n === 0x7f || n === 0x08) {
      return push(keys, { k: 'seq', name: `ESC ${String.fromCharCode(n)}`, raw: b.subarray(p, p + 2) });
    }
    return lone();
  }

  #csi(b: Buffer, p: number, keys: Key[]): number {
    let q = p + 2;
    while (q < b.length && q - p < MAX_SEQUENCE) {
      const c = b[q] as number;
      if (c >= 0x40 && c <= 0x7e) {
        const body = b.toString('latin1', p + 2, q + 1);
        const raw = b.subarray(p, q + 1);
        if (body === '200~') {
          this.#paste = true;
          return push(keys, { k: 'paste-start', raw });
        }
        return push(keys, { k: 'seq', name: `CSI ${body}`, raw });
      }
      if (c < 0x20 || c > 0x3f) {
        // Not a CSI byte: what came so far is an unknown sequence; the byte is read again as a key.
        return push(keys, {
          k: 'seq',
          name: `CSI ${b.toString('latin1', p + 2, q)}?`,
          raw: b.subarray(p, q),
        });
      }
      q++;
    }
    if (q - p >= MAX_SEQUENCE) return push(keys, { k: 'invalid', raw: b.subarray(p, q) });
    return 0;
  }

  /** One key of paste content at `p`, or the end marker. */
  #pasteKey(b: Buffer, p: number, keys: Key[]): number {
    const c = b[p] as number;
    if (c === ESC) {
      const n = Math.min(PASTE_END.length, b.length - p);
      if (b.compare(PASTE_END, 0, n, p, p + n) === 0) {
        if (n < PASTE_END.length) return 0;
        this.#paste = false;
        return push(keys, { k: 'paste-end', raw: b.subarray(p, p + n) });
      }
    }
    if (c < 0x20 || c === 0x7f) return push(keys, { k: 'ctrl', code: c, raw: b.subarray(p, p + 1) });
    return this.#char(b, p, keys);
  }
}

function push(keys: Key[], key: Key): number {
  keys.push(key);
  return key.raw.length;
}
