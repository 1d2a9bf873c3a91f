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

interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

interface Result {
  /** One past the value. */
  readonly end: number;
  readonly edits: Edit[];
  readonly masked: number;
}

interface MapValue {
  readonly end: number;
  readonly values: { start: number; end: number }[];
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
  /** UTF-8 lengths of every key the masker looks at. */
  readonly lengths: Set<number>;
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
    state = {
      lengths: new Set(
        [...STRUCTURAL, 'annotations', LAST_APPLIED, ...opts.fields].map((k) => Buffer.byteLength(k)),
      ),
      copies: [new MaskedCopyCache(), new MaskedCopyCache()],
    };
    fieldStates.set(id, state);
  }
  return state;
}
const MASKED_BASE64_JSON = JSON.stringify(MASKED_BASE64);

class Scanner {
  readonly buf: Buffer;
  /** The text of the key last read by key(), or '' when it cannot matter. */
  lastKey = '';
  /** Lengths (in bytes) of the keys that matter. */
  readonly #lengths: Set<number>;
  /** Last-applied copies masked before, with these options. */
  readonly #copies: MaskedCopyCache;

  constructor(buf: Buffer, opts: MaskOptions) {
    this.buf = buf;
    const state = fieldState(opts);
    this.#lengths = state.lengths;
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
    // Only keys that could matter are decoded: the length rules out most (escapes change it, so keys with them are decoded too).
    const length = end - pos - 2;
    if (this.#lengths.has(length)) this.lastKey = this.decode(pos, end);
    else {
      this.lastKey = '';
      for (let i = pos + 1; i < end - 1; i++) {
        if (b[i] === BACKSLASH) {
          this.lastKey = this.decode(pos, end);
          break;
        }
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
   * are parsed as they come, each shape's edits kept apart, and the shape is
   * decided when the object ends (its members may come in any order).
   */
  body(pos: number, opts: MaskOptions): Result {
    const b = this.buf;
    if (b[pos] !== OPEN_OBJ) return { end: this.skip(pos), edits: [], masked: 0 };
    let kindPresent = false;
    let kind = '';
    let typeIsString = false;
    let object: Result | undefined;
    let rows: Result | undefined;
    let items: Result | undefined;
    let meta: Result | undefined;
    const fields: { key: string; map: MapValue | undefined; start: number; end: number }[] = [];
    const seen = new Set<string>();
    let p = this.ws(pos + 1);
    if (b[p] === CLOSE_OBJ) p = -(p + 1);
    while (p >= 0) {
      const keyEnd = this.key(p);
      const key = this.lastKey;
      const start = this.colon(keyEnd);
      let end: number;
      const structural = STRUCTURAL.has(key);
      const field = opts.fields.includes(key);
      if (structural || field) {
        if (seen.has(key) || (structural && field)) throw GIVE_UP;
        seen.add(key);
      }
      const c = b[start];
      if (field) {
        let map: MapValue | undefined;
        if (c === OPEN_OBJ) {
          map = this.map(start);
          end = map.end;
        } else end = this.skip(start);
        fields.push({ key, map, start, end });
      } else if (key === 'kind') {
        kindPresent = true;
        end = this.skip(start);
        if (c === QUOTE) kind = this.decode(start, end);
      } else if (key === 'type') {
        end = this.skip(start);
        typeIsString = c === QUOTE;
      } else if (key === 'object' && c === OPEN_OBJ) {
        object = this.body(start, opts);
        end = object.end;
      } else if (key === 'rows' && c === OPEN_ARR) {
        rows = this.rows(start, opts);
        end = rows.end;
      } else if (key === 'items' && c === OPEN_ARR) {
        items = this.items(start, opts);
        end = items.end;
      } else if (key === 'metadata' && c === OPEN_OBJ) {
        meta = this.meta(start, opts);
        end = meta.end;
      } else end = this.skip(start);
      p = this.next(end, CLOSE_OBJ);
    }
    const end = -p;
    if (kind === 'Status') return { end, edits: [], masked: 0 };
    if (typeIsString && object && !kindPresent) return { ...object, end };
    if (kind === 'Table' && rows) return { ...rows, end };
    if (items && (kind.endsWith('List') || kind === '')) return { ...items, end };
    // A resource: its masked fields and its last-applied copy.
    const edits: Edit[] = meta ? meta.edits : [];
    let masked = meta ? meta.masked : 0;
    for (const f of fields) {
      const base64 = isBase64Field(f.key, kind, opts);
      if (f.map) {
        const text = base64 ? MASKED_BASE64_JSON : MASKED_TEXT_JSON;
        for (const v of f.map.values) edits.push({ start: v.start, end: v.end, text });
        masked += f.map.values.length;
      } else if (b[f.start] === QUOTE && f.end - f.start > 2) {
        edits.push({ start: f.start, end: f.end, text: MASKED_TEXT_JSON });
        masked++;
      }
    }
    return { end, edits, masked };
  }

  /** The values (other than null) of a map object, to be masked. */
  map(pos: number): MapValue {
    const b = this.buf;
    const values: { start: number; end: number }[] = [];
    let p = this.ws(pos + 1);
    if (b[p] === CLOSE_OBJ) return { end: p + 1, values };
    while (p >= 0) {
      const start = this.colon(this.skipKey(p));
      const end = this.skip(start);
      if (!(end - start === 4 && b[start] === 0x6e && b.toString('latin1', start, end) === 'null')) {
        values.push({ start, end });
      }
      p = this.next(end, CLOSE_OBJ);
    }
    return { end: -p, values };
  }

  /** The elements of the array at `pos`, each handled by `element`, their edits gathered. */
  array(pos: number, element: (p: number) => Result): Result {
    const edits: Edit[] = [];
    let masked = 0;
    let p = this.ws(pos + 1);
    if (this.buf[p] === CLOSE_ARR) return { end: p + 1, edits, masked };
    while (p >= 0) {
      const r = element(p);
      for (const e of r.edits) edits.push(e);
      masked += r.masked;
      p = this.next(r.end, CLOSE_ARR);
    }
    return { end: -p, edits, masked };
  }

  /** A list's items: each object masked as a body. */
  items(pos: number, opts: MaskOptions): Result {
    return this.array(pos, (p) => this.body(p, opts));
  }

  /** A Table's rows: the `object` of each row masked as a body. */
  rows(pos: number, opts: MaskOptions): Result {
    return this.array(pos, (p) => this.row(p, opts));
  }

  /** One row of a Table (anything but an object is skipped). */
  row(pos: number, opts: MaskOptions): Result {
    const b = this.buf;
    if (b[pos] !== OPEN_OBJ) return { end: this.skip(pos), edits: [], masked: 0 };
    let object: Result | undefined;
    let q = this.ws(pos + 1);
    if (b[q] === CLOSE_OBJ) q = -(q + 1);
    while (q >= 0) {
      const start = this.colon(this.key(q));
      let vEnd: number;
      if (this.lastKey === 'object') {
        if (object) throw GIVE_UP;
        object = this.body(start, opts);
        vEnd = object.end;
      } else vEnd = this.skip(start);
      q = this.next(vEnd, CLOSE_OBJ);
    }
    return { end: -q, edits: object?.edits ?? [], masked: object?.masked ?? 0 };
  }

  /** metadata: the last-applied-configuration annotation, a copy of the object as a string. */
  meta(pos: number, opts: MaskOptions): Result {
    const b = this.buf;
    const edits: Edit[] = [];
    let masked = 0;
    let sawAnnotations = false;
    let p = this.ws(pos + 1);
    if (b[p] === CLOSE_OBJ) return { end: p + 1, edits, masked };
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
              const r = this.lastApplied(vStart, vEnd, opts);
              edits.push(r.edit);
              masked += r.masked;
            }
          }
          q = this.next(vEnd, CLOSE_OBJ);
        }
        end = -q;
      } else end = this.skip(start);
      p = this.next(end, CLOSE_OBJ);
    }
    return { end: -p, edits, masked };
  }

  /** The annotation holds a copy of the object as a JSON string: masked as maskBody masks it. */
  lastApplied(start: number, end: number, opts: MaskOptions): { edit: Edit; masked: number } {
    const r = this.#copies.get(this.buf, start, end, () => {
      const m = maskLastApplied(this.decode(start, end), opts);
      return { text: JSON.stringify(m.text), masked: m.masked };
    });
    return { edit: { start, end, text: r.text }, masked: r.masked };
  }

  output(edits: Edit[]): Buffer {
    if (edits.length === 0) return this.buf;
    edits.sort((x, y) => x.start - y.start);
    const parts: Buffer[] = [];
    let at = 0;
    for (const e of edits) {
      if (e.start < at) throw GIVE_UP; // overlapping edits cannot happen on well-formed input
      parts.push(this.buf.subarray(at, e.start), Buffer.from(e.text, 'utf8'));
      at = e.end;
    }
    parts.push(this.buf.subarray(at));
    return Buffer.concat(parts);
  }
}
/**
 * Masks a JSON response body given as bytes. Returns the masked bytes and how
 * many values were replaced, or undefined when the body is not a shape this
 * path handles with certainty (then decode, maskBody and encode instead).
 */
export function maskJsonBytes(buf: Buffer, opts: MaskOptions): { body: Buffer; masked: number } | undefined {
  const s = new Scanner(buf, opts);
  try {
    const start = s.ws(0);
    if (buf[start] !== OPEN_OBJ) return undefined;
    const r = s.body(start, opts);
    if (s.ws(r.end) !== buf.length) return undefined;
    return { body: s.output(r.edits), masked: r.masked };
  } catch (err) {
    if (err instanceof GiveUp) return undefined;
    throw err;
  }
}
