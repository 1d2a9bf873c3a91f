/**
 * Masking on the bytes of a JSON response, without decoding it into objects
 * and encoding it again: the members that decide the shape (`kind`, `items`,
 * `rows`, `object`, `metadata`, the masked fields) are parsed where maskBody
 * looks at them, every other value is skipped by bracket matching, and the
 * masked values are replaced in place. The result parses to exactly what
 * maskBody would make of the parsed input (a property test holds the two
 * together); everything else keeps its bytes.
 *
 * Anything unexpected — malformed structure where a decision is made, a
 * duplicate key (JSON.parse keeps the last one; a reader might not), nesting
 * deeper than the limit, trailing bytes — makes it give up (undefined) so the
 * caller takes the decode-mask-encode path, which fails closed on bad JSON.
 */
import {
  isBase64Field,
  LAST_APPLIED,
  MASKED_BASE64,
  MASKED_TEXT,
  type MaskOptions,
  maskLastApplied,
} from './mask.ts';
import { MaskedCopyCache } from './masked-copy-cache.ts';

const MAX_DEPTH = 1000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

class GiveUp extends Error {}

/** Closers expected by skip() (which does not nest, so one array serves every scanner). */
const DEPTH_STACK = new Uint8Array(MAX_DEPTH);
const GIVE_UP = new GiveUp();

/**
 * The edits a scan has kept so far, in the order of their position (the scan
 * never goes back): parallel arrays that grow and are cut back, so a scan
 * allocates per edit, not per object. An object's parts leave their edits in
 * the log as they are read; when the object ends and its shape is known, the
 * edits of the parts that do not count are cut out (see Scanner#body).
 */
class EditLog {
  length = 0;
  readonly start: number[] = [];
  readonly end: number[] = [];
  /** The replacement, JSON text; undefined while a field value waits for its object's kind. */
  readonly text: (string | undefined)[] = [];
  /** Values this edit masks. */
  readonly count: number[] = [];
  /**
   * Set on the edits of a masked field of the object being read: the field's
   * name for a map value (its text depends on the object's kind), true for a
   * string value. Cleared when the object ends.
   */
  readonly field: (string | boolean)[] = [];

  push(start: number, end: number, text: string | undefined, count: number, field: string | boolean): void {
    const i = this.length++;
    this.start[i] = start;
    this.end[i] = end;
    this.text[i] = text;
    this.count[i] = count;
    this.field[i] = field;
  }

  /** Moves edit `from` to `to` (to < from). */
  move(from: number, to: number): void {
    this.start[to] = this.start[from] as number;
    this.end[to] = this.end[from] as number;
    this.text[to] = this.text[from];
    this.count[to] = this.count[from] as number;
    this.field[to] = this.field[from] as string | boolean;
  }

  /** Keeps, of the edits from `from` on, only those in [a, b). */
  keepOnly(from: number, a: number, b: number): void {
    let w = from;
    for (let i = a; i < b; i++) this.move(i, w++);
    this.length = w;
  }
}

/**
 * A masked JSON document: its input's bytes with the edits applied, written
 * straight into a caller's buffer (nothing is joined in between).
 */
export class MaskedBytes {
  readonly #buf: Buffer;
  readonly #log: EditLog;
  /** Length in bytes of the masked document. */
  readonly byteLength: number;

  constructor(buf: Buffer, log: EditLog) {
    this.#buf = buf;
    this.#log = log;
    let len = buf.length;
    for (let i = 0; i < log.length; i++) {
      len += Buffer.byteLength(log.text[i] as string) - ((log.end[i] as number) - (log.start[i] as number));
    }
    this.byteLength = len;
  }

  /** Writes the masked document into `out` at `at`; returns the position after it. */
  copyTo(out: Buffer, at: number): number {
    const { start, end, text } = this.#log;
    let from = 0;
    for (let i = 0; i < this.#log.length; i++) {
      at += this.#buf.copy(out, at, from, start[i]);
      at += out.write(text[i] as string, at, 'utf8');
      from = end[i] as number;
    }
    return at + this.#buf.copy(out, at, from);
  }

  /** The masked document in a buffer of its own (the input itself when nothing was replaced). */
  toBuffer(): Buffer {
    if (this.#log.length === 0) return this.#buf;
    const out = Buffer.allocUnsafe(this.byteLength);
    this.copyTo(out, 0);
    return out;
  }
}

/** Members whose value decides the shape of an object (see maskBody). */
const STRUCTURAL = new Set(['kind', 'type', 'object', 'rows', 'items', 'metadata']);

const MASKED_TEXT_JSON = JSON.stringify(MASKED_TEXT);

/**
 * What is kept per set of masked fields, found by the fields' names (a
 * decision may carry a new array of the same fields at every request).
 * Bounded: a policy names few sets, but it may be replaced over time.
 */
interface FieldState {
  /** Every key the masker looks at, as UTF-8 bytes, by length (a key of another length is not decoded). */
  readonly keys: ReadonlyMap<number, readonly { readonly bytes: Buffer; readonly text: string }[]>;
  /**
   * A bit for each member name an object may have only once (the structural
   * ones and the masked fields); undefined when there are too many for the
   * bits of a number (then the byte path gives up and the decoding path masks).
   */
  readonly bits: ReadonlyMap<string, number> | undefined;
  /** The masked fields. */
  readonly fields: ReadonlySet<string>;
  /** Masked last-applied copies, for responses about Secrets and about anything else. */
  readonly copies: readonly [MaskedCopyCache, MaskedCopyCache];
}
const MAX_FIELD_SETS = 8;
const fieldStates = new Map<string, FieldState>();

function fieldState(opts: MaskOptions): FieldState {
  const id = JSON.stringify(opts.fields);
  let state = fieldStates.get(id);
  if (!state) {
    if (fieldStates.size >= MAX_FIELD_SETS) fieldStates.clear();
    const keys = new Map<number, { bytes: Buffer; text: string }[]>();
    for (const text of new Set([...STRUCTURAL, 'annotations', LAST_APPLIED, ...opts.fields])) {
      const bytes = Buffer.from(text, 'utf8');
      const same = keys.get(bytes.length);
      if (same) same.push({ bytes, text });
      else keys.set(bytes.length, [{ bytes, text }]);
    }
    const once = [...new Set([...STRUCTURAL, ...opts.fields])];
    state = {
      keys,
      bits: once.length <= 30 ? new Map(once.map((k, i) => [k, 1 << i])) : undefined,
      fields: new Set(opts.fields),
      copies: [new MaskedCopyCache(), new MaskedCopyCache()],
    };
    fieldStates.set(id, state);
  }
  return state;
}
const MASKED_BASE64_JSON = JSON.stringify(MASKED_BASE64);

class Scanner {
  readonly buf: Buffer;
  /** The text of the key last read by key(), or undefined when it cannot matter. */
  lastKey: string | undefined;
  readonly log = new EditLog();
  /** Objects body() is inside (lists, rows and events nest them): beyond MAX_DEPTH it gives up. */
  #depth = 0;
  readonly #keys: FieldState['keys'];
  readonly #bits: ReadonlyMap<string, number>;
  readonly #fields: ReadonlySet<string>;
  /** Last-applied copies masked before, with these options. */
  readonly #copies: MaskedCopyCache;

  constructor(buf: Buffer, opts: MaskOptions) {
    this.buf = buf;
    const state = fieldState(opts);
    if (!state.bits) throw GIVE_UP;
    this.#keys = state.keys;
    this.#bits = state.bits;
    this.#fields = state.fields;
    this.#copies = state.copies[opts.secrets ? 1 : 0];
  }

  ws(pos: number): number {
    const b = this.buf;
    while (pos < b.length) {
      const c = b[pos] as number;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      pos++;
    }
    return pos;
  }

  /** `pos` at an opening quote; returns one past the closing quote. */
  strEnd(pos: number): number {
    const b = this.buf;
    // Short strings (keys, most values) in a JS loop; long ones through indexOf.
    let p = pos + 1;
    const stop = Math.min(b.length, p + 32);
    while (p < stop) {
      const c = b[p] as number;
      if (c === QUOTE) return p + 1;
      p += c === BACKSLASH ? 2 : 1;
    }
    for (;;) {
      const q = b.indexOf(QUOTE, p);
      if (q === -1) throw GIVE_UP;
      let slashes = 0;
      for (let i = q - 1; i > pos && b[i] === BACKSLASH; i--) slashes++;
      if (slashes % 2 === 0) return q + 1;
      p = q + 1;
    }
  }

  /** The string value of a string token [start, end). */
  decode(start: number, end: number): string {
    const b = this.buf;
    let escaped = false;
    for (let i = start + 1; i < end - 1; i++) {
      if (b[i] === BACKSLASH) {
        escaped = true;
        break;
      }
    }
    if (!escaped) return b.toString('utf8', start + 1, end - 1);
    try {
      return JSON.parse(b.toString('utf8', start, end)) as string;
    } catch {
      throw GIVE_UP;
    }
  }

  /** Skips one value starting at `pos` (no white space before it); returns one past it. */
  skip(pos: number): number {
    const b = this.buf;
    const c = b[pos];
    if (c === undefined) throw GIVE_UP;
    if (c === QUOTE) return this.strEnd(pos);
    if (c !== OPEN_OBJ && c !== OPEN_ARR) {
      // A number or a literal: up to the next delimiter.
      let p = pos;
      while (p < b.length) {
        const d = b[p] as number;
        if (
          d === COMMA ||
          d === CLOSE_OBJ ||
          d === CLOSE_ARR ||
          d === 0x20 ||
          d === 0x0a ||
          d === 0x0d ||
          d === 0x09
        )
          break;
        if (d === QUOTE || d === OPEN_OBJ || d === OPEN_ARR || d === COLON) throw GIVE_UP;
        p++;
      }
      if (p === pos) throw GIVE_UP;
      return p;
    }
    const stack = DEPTH_STACK;
    let depth = 0;
    let p = pos;
    while (p < b.length) {
      const d = b[p] as number;
      if (d === QUOTE) {
        p = this.strEnd(p);
        continue;
      }
      if (d === OPEN_OBJ || d === OPEN_ARR) {
        if (depth === MAX_DEPTH) throw GIVE_UP;
        stack[depth++] = d === OPEN_OBJ ? CLOSE_OBJ : CLOSE_ARR;
      } else if (d === CLOSE_OBJ || d === CLOSE_ARR) {
        if (depth === 0 || stack[--depth] !== d) throw GIVE_UP;
        if (depth === 0) return p + 1;
      }
      p++;
    }
    throw GIVE_UP;
  }

  /** One past the end of the key at `pos` (an opening quote); the key's text is left in `this.lastKey`. */
  key(pos: number): number {
    const b = this.buf;
    if (b[pos] !== QUOTE) throw GIVE_UP;
    const end = this.strEnd(pos);
    // Only keys that could matter are read: compared byte by byte with those of their length
    // (escapes change a key's length, so keys with them are decoded).
    this.lastKey = undefined;
    const same = this.#keys.get(end - pos - 2);
    if (same) {
      for (const k of same) {
        const t = k.bytes;
        let i = 0;
        while (i < t.length && b[pos + 1 + i] === t[i]) i++;
        if (i === t.length) {
          this.lastKey = k.text;
          return end;
        }
      }
    }
    for (let i = pos + 1; i < end - 1; i++) {
      if (b[i] === BACKSLASH) {
        this.lastKey = this.decode(pos, end);
        break;
      }
    }
    return end;
  }

  /** One past the end of a key that does not matter (a map's keys). */
  skipKey(pos: number): number {
    if (this.buf[pos] !== QUOTE) throw GIVE_UP;
    return this.strEnd(pos);
  }

  /** After a member's key: the colon, then white space; returns where the value starts. */
  colon(pos: number): number {
    const p = this.ws(pos);
    if (this.buf[p] !== COLON) throw GIVE_UP;
    return this.ws(p + 1);
  }

  /** After a member or element: `,` (returns the next start) or the closer (returns -(end)). */
  next(pos: number, closer: number): number {
    const p = this.ws(pos);
    const c = this.buf[p];
    if (c === COMMA) return this.ws(p + 1);
    if (c === closer) return -(p + 1);
    throw GIVE_UP;
  }

  /**
   * maskBody on the value at `pos`, in one pass: the members that may matter
   * are parsed as they come, each part leaving its edits in the log, and the
   * shape is decided when the object ends (its members may come in any
   * order): the edits of the parts that do not count for it are cut out.
   * Returns one past the value; the edits it keeps are the log's from where
   * it began.
   */
  body(pos: number, opts: MaskOptions): number {
    const b = this.buf;
    if (b[pos] !== OPEN_OBJ) return this.skip(pos);
    if (++this.#depth > MAX_DEPTH) throw GIVE_UP;
    const log = this.log;
    const from = log.length;
    let kindPresent = false;
    let kind = '';
    let typeIsString = false;
    // Where each part's edits are in the log: [a, b), or -1 when the part is absent.
    let objectA = -1;
    let objectB = -1;
    let rowsA = -1;
    let rowsB = -1;
    let itemsA = -1;
    let itemsB = -1;
    let metaA = -1;
    let metaB = -1;
    let seen = 0;
    let p = this.ws(pos + 1);
    if (b[p] === CLOSE_OBJ) p = -(p + 1);
    while (p >= 0) {
      const keyEnd = this.key(p);
      const key = this.lastKey;
      const start = this.colon(keyEnd);
      let end: number;
      const bit = key === undefined ? undefined : this.#bits.get(key);
      const field = bit !== undefined && this.#fields.has(key as string);
      if (bit !== undefined) {
        if ((seen & bit) !== 0 || (field && STRUCTURAL.has(key as string))) throw GIVE_UP;
        seen |= bit;
      }
      const c = b[start];
      if (field) {
        if (c === OPEN_OBJ) end = this.map(start, key as string);
        else {
          end = this.skip(start);
          if (c === QUOTE && end - start > 2) log.push(start, end, MASKED_TEXT_JSON, 1, true);
        }
      } else if (key === 'kind') {
        kindPresent = true;
        end = this.skip(start);
        if (c === QUOTE) kind = this.decode(start, end);
      } else if (key === 'type') {
        end = this.skip(start);
        typeIsString = c === QUOTE;
      } else if (key === 'object' && c === OPEN_OBJ) {
        objectA = log.length;
        end = this.body(start, opts);
        objectB = log.length;
      } else if (key === 'rows' && c === OPEN_ARR) {
        rowsA = log.length;
        end = this.array(start, ROW, opts);
        rowsB = log.length;
      } else if (key === 'items' && c === OPEN_ARR) {
        itemsA = log.length;
        end = this.array(start, BODY, opts);
        itemsB = log.length;
      } else if (key === 'metadata' && c === OPEN_OBJ) {
        metaA = log.length;
        end = this.meta(start, opts);
        metaB = log.length;
      } else end = this.skip(start);
      p = this.next(end, CLOSE_OBJ);
    }
    const end = -p;
    if (kind === 'Status') log.length = from;
    else if (typeIsString && objectA !== -1 && !kindPresent) log.keepOnly(from, objectA, objectB);
    else if (kind === 'Table' && rowsA !== -1) log.keepOnly(from, rowsA, rowsB);
    else if (itemsA !== -1 && (kind.endsWith('List') || kind === '')) log.keepOnly(from, itemsA, itemsB);
    else {
      // A resource: its last-applied copy and its masked fields. (Any other shape cut out this
      // object's field edits with the parts that do not count.)
      let w = from;
      for (let i = from; i < log.length; i++) {
        const f = log.field[i];
        if (f === false && !(i >= metaA && i < metaB)) continue;
        if (typeof f === 'string')
          log.text[i] = isBase64Field(f, kind, opts) ? MASKED_BASE64_JSON : MASKED_TEXT_JSON;
        if (w !== i) log.move(i, w);
        log.field[w] = false;
        w++;
      }
      log.length = w;
    }
    this.#depth--;
    return end;
  }

  /** The values (other than null) of a masked field's map object, into the log; returns one past it. */
  map(pos: number, field: string): number {
    const b = this.buf;
    let p = this.ws(pos + 1);
    if (b[p] === CLOSE_OBJ) return p + 1;
    while (p >= 0) {
      const start = this.colon(this.skipKey(p));
      const end = this.skip(start);
      if (!(end - start === 4 && b[start] === 0x6e && b.toString('latin1', start, end) === 'null')) {
        this.log.push(start, end, undefined, 1, field);
      }
      p = this.next(end, CLOSE_OBJ);
    }
    return -p;
  }

  /** The elements of the array at `pos`: each object masked as a body (BODY) or as a Table's row (ROW). */
  array(pos: number, element: typeof BODY | typeof ROW, opts: MaskOptions): number {
    let p = this.ws(pos + 1);
    if (this.buf[p] === CLOSE_ARR) return p + 1;
    while (p >= 0) {
      const end = element === BODY ? this.body(p, opts) : this.row(p, opts);
      p = this.next(end, CLOSE_ARR);
    }
    return -p;
  }

  /** One row of a Table: the `object` member masked as a body (anything but an object is skipped). */
  row(pos: number, opts: MaskOptions): number {
    const b = this.buf;
    if (b[pos] !== OPEN_OBJ) return this.skip(pos);
    let object = false;
    let q = this.ws(pos + 1);
    if (b[q] === CLOSE_OBJ) q = -(q + 1);
    while (q >= 0) {
      const start = this.colon(this.key(q));
      let vEnd: number;
      if (this.lastKey === 'object') {
        if (object) throw GIVE_UP;
        object = true;
        vEnd = this.body(start, opts);
      } else vEnd = this.skip(start);
      q = this.next(vEnd, CLOSE_OBJ);
    }
    return -q;
  }

  /** metadata: the last-applied-configuration annotation, a copy of the object as a string. */
  meta(pos: number, opts: MaskOptions): number {
    const b = this.buf;
    let sawAnnotations = false;
    let p = this.ws(pos + 1);
    if (b[p] === CLOSE_OBJ) return p + 1;
    while (p >= 0) {
      const start = this.colon(this.key(p));
      const key = this.lastKey;
      let end: number;
      if (key === 'annotations') {
        if (sawAnnotations) throw GIVE_UP;
        sawAnnotations = true;
      }
      if (key === 'annotations' && b[start] === OPEN_OBJ) {
        let sawLast = false;
        let q = this.ws(start + 1);
        if (b[q] === CLOSE_OBJ) q = -(q + 1);
        while (q >= 0) {
          const vStart = this.colon(this.key(q));
          const vEnd = this.skip(vStart);
          if (this.lastKey === LAST_APPLIED) {
            if (sawLast) throw GIVE_UP;
            sawLast = true;
            if (b[vStart] === QUOTE) {
              const r = this.#copies.get(b, vStart, vEnd, () => {
                const m = maskLastApplied(this.decode(vStart, vEnd), opts);
                return { text: JSON.stringify(m.text), masked: m.masked };
              });
              this.log.push(vStart, vEnd, r.text, r.masked, false);
            }
          }
          q = this.next(vEnd, CLOSE_OBJ);
        }
        end = -q;
      } else end = this.skip(start);
      p = this.next(end, CLOSE_OBJ);
    }
    return -p;
  }
}

const BODY = 0;
const ROW = 1;

/**
 * Masks a JSON response body given as bytes. Returns the masked document
 * (valid as long as `buf`'s bytes are) and how many values were replaced, or
 * undefined when the body is not a shape this path handles with certainty
 * (then decode, maskBody and encode instead).
 */
export function maskJsonBytes(
  buf: Buffer,
  opts: MaskOptions,
): { body: MaskedBytes; masked: number } | undefined {
  try {
    const s = new Scanner(buf, opts);
    const start = s.ws(0);
    if (buf[start] !== OPEN_OBJ) return undefined;
    const end = s.body(start, opts);
    if (s.ws(end) !== buf.length) return undefined;
    const { log } = s;
    let masked = 0;
    let at = 0;
    for (let i = 0; i < log.length; i++) {
      // Kept edits come in order and never overlap on well-formed input.
      if ((log.start[i] as number) < at) return undefined;
      at = log.end[i] as number;
      masked += log.count[i] as number;
    }
    return { body: new MaskedBytes(buf, log), masked };
  } catch (err) {
    // Nesting deep enough to run out of stack is left to the decoding path too.
    if (err instanceof GiveUp || err instanceof RangeError) return undefined;
    throw err;
  }
}
