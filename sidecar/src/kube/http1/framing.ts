/**
 * What HTTP/1.1 requests and responses share (RFC 9112): finding the end of a
 * head, field lines, and message body framing (Content-Length, chunked, read
 * until close). Pure and incremental: bytes in, parts out, a bounded buffer.
 * The request and response decoders add their start line and framing rules
 * through a `Dialect`.
 *
 * Hot-path notes: line ends are found with Buffer#indexOf, a complete head is
 * decoded once as latin1 and its field lines scanned by hand (a regex only for
 * obs-fold continuation lines, which only lenient response parsing accepts), and
 * body bytes are handed out as subarrays of the input (never copied, never
 * looped over in JS). Only a head or chunk-size line split across input chunks
 * is copied, into one growing buffer capped by the limits.
 */
import { HttpParseError, type HttpParseStatus } from './http-parse-error.ts';

export type BodyKind = 'none' | 'length' | 'chunked' | 'close';

export interface Framing {
  readonly bodyKind: BodyKind;
  readonly contentLength: number;
}

export type Part<H> =
  | { readonly kind: 'head'; readonly head: H }
  | { readonly kind: 'body'; readonly data: Buffer }
  | { readonly kind: 'end' };

export interface Limits {
  /** Start line + field lines + the empty line; also bounds a chunked body's trailer section. */
  readonly maxHeadBytes: number;
  /** Field lines in a head (or a trailer section). */
  readonly maxHeaders: number;
  /** A chunk-size line including chunk extensions, without its CRLF. */
  readonly maxChunkLineBytes: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxHeadBytes: 64 * 1024,
  maxHeaders: 200,
  maxChunkLineBytes: 4096,
});

export function resolveLimits(opts: Partial<Limits> | undefined): Limits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const v = opts?.[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1)
      throw new RangeError(`${key} must be a positive integer, got ${v}`);
    limits[key] = v;
  }
  return Object.freeze(limits);
}

/** How one side of the protocol differs. */
export interface Dialect<H extends Framing> {
  /**
   * Responses: a bare LF also ends a line and obs-fold is unfolded to one SP
   * (RFC 9112 §2.2, §5.2 allow both for robustness). Requests: CRLF only,
   * obs-fold rejected, because a server behind us might read them differently.
   */
  readonly lenient: boolean;
  /** Empty lines skipped before a start line (RFC 9112 §2.2 asks servers to skip at least one). */
  readonly maxEmptyLines: number;
  /** The status for malformed input and for input over a limit. */
  readonly malformed: HttpParseStatus;
  readonly tooLarge: HttpParseStatus;
  /** The first byte of a message arrived (the response decoder rejects unsolicited bytes here). */
  start(): void;
  /**
   * Parses a complete head: the start line and the field lines, each with its
   * line ending, without the final empty line. `undefined` skips the message
   * (1xx interim responses, which have no body).
   */
  head(text: string): H | undefined;
  /** The message is complete. */
  done(): void;
}

// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** tchar, as a lookup table over the head's bytes (the head is decoded as latin1). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;

/** SP or HTAB. */
function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** VCHAR / SP / HTAB / obs-text: anything from HTAB and SP up, but DEL. */
function isFieldValueChar(c: number): boolean {
  return c === 9 || (c >= 32 && c !== 127 && c <= 255);
}

/**
 * field-line = field-name ":" OWS field-value OWS (RFC 9112 §5), ending in LF
 * or CRLF. field-value chars: VCHAR / SP / HTAB / obs-text; CR, LF, NUL, DEL
 * and other CTLs end the value, and the line is malformed unless a line ending
 * follows. Scanned by hand rather than with a regex: this runs for every field
 * of every request and response, and a match array per line was a large part
 * of what a request allocated. Pushes name and trimmed value onto `raw` and
 * returns where the next line starts, or -1 when the line at `pos` is not a
 * well-formed field line.
 */
function fieldLine(text: string, pos: number, raw: string[]): number {
  const end = text.length;
  let i = pos;
  while (i < end && TCHAR[text.charCodeAt(i)] === 1) i++;
  if (i === pos || i === end || text.charCodeAt(i) !== 58 /* : */) return -1;
  const nameEnd = i;
  let a = i + 1;
  while (a < end && isOws(text.charCodeAt(a))) a++;
  let j = a;
  while (j < end && isFieldValueChar(text.charCodeAt(j))) j++;
  const c = j < end ? text.charCodeAt(j) : -1;
  let next: number;
  if (c === 10) next = j + 1;
  else if (c === 13 && j + 1 < end && text.charCodeAt(j + 1) === 10) next = j + 2;
  else return -1;
  let b = j;
  while (b > a && isOws(text.charCodeAt(b - 1))) b--;
  raw.push(text.slice(pos, nameEnd), text.slice(a, b));
  return next;
}
/** obs-fold = OWS CRLF RWS: a continuation line (responses only). */
const FOLD_LINE = /[\t ]+([\t\x20-\x7e\x80-\xff]*)\r?\n/y;

/** Trims SP and HTAB (not String#trim, which also strips U+00A0 = obs-text 0xA0). */
export function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b) {
    const c = s.charCodeAt(a);
    if (c !== 32 && c !== 9) break;
    a++;
  }
  while (b > a) {
    const c = s.charCodeAt(b - 1);
    if (c !== 32 && c !== 9) break;
    b--;
  }
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Parses the field lines of `text` from `from` to its end (every line ends in
 * LF; in strict mode the scanner has already checked each has its CR) into
 * `raw` as name, value, name, value, …
 */
export function parseFieldLines(
  text: string,
  from: number,
  lenient: boolean,
  status: HttpParseStatus,
  raw: string[],
): void {
  let pos = from;
  const end = text.length;
  while (pos < end) {
    const next = fieldLine(text, pos, raw);
    if (next !== -1) {
      pos = next;
      continue;
    }
    const c = text.charCodeAt(pos);
    if (lenient && (c === 32 || c === 9) && raw.length > 0) {
      FOLD_LINE.lastIndex = pos;
      const f = FOLD_LINE.exec(text);
      if (f !== null) {
        const more = trimOws(f[1]!);
        const last = raw.length - 1;
        const prev = raw[last]!;
        raw[last] = prev === '' ? more : more === '' ? prev : `${prev} ${more}`;
        pos = FOLD_LINE.lastIndex;
        continue;
      }
    }
    throw new HttpParseError(status, describeBadField(text, pos));
  }
}

/** Says what is wrong with the field line at `pos`, without echoing its value (it may hold a token). */
function describeBadField(text: string, pos: number): string {
  let end = text.indexOf('\n', pos);
  if (end === -1) end = text.length;
  if (end > pos && text.charCodeAt(end - 1) === 13) end--;
  const line = text.slice(pos, end);
  const first = line.charCodeAt(0);
  if (first === 32 || first === 9) {
    return 'a header line starts with whitespace (obs-fold line folding is not allowed, RFC 9112 §5.2)';
  }
  const colon = line.indexOf(':');
  if (colon === -1) return 'a header line has no colon';
  const name = line.slice(0, colon);
  if (name === '') return 'a header line has an empty field name';
  if (/[\t ]$/.test(name)) {
    return `whitespace between the header name ${quote(name.trimEnd())} and the colon (RFC 9112 §5.1)`;
  }
  if (!TOKEN.test(name)) return `invalid character in the header name ${quote(name)}`;
  for (let i = colon + 1; i < line.length; i++) {
    const ch = line.charCodeAt(i);
    if ((ch < 32 && ch !== 9) || ch === 127) {
      return `invalid character 0x${ch.toString(16).padStart(2, '0')} in the value of header ${quote(name)}`;
    }
  }
  return `malformed header line for ${quote(name)}`;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

/** The items of a comma-separated list field, lower-cased and trimmed; empty items dropped (RFC 9110 §5.6.1). */
export function listItems(value: string): string[] {
  const out: string[] = [];
  for (const item of value.split(',')) {
    const t = trimOws(item);
    if (t !== '') out.push(t.toLowerCase());
  }
  return out;
}

export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;

/** The Connection options we act on, as CONN_* bits. */
export function connectionFlags(value: string | undefined): number {
  if (value === undefined) return 0;
  let flags = 0;
  for (const item of listItems(value)) {
    if (item === 'close') flags |= CONN_CLOSE;
    else if (item === 'keep-alive') flags |= CONN_KEEP_ALIVE;
    else if (item === 'upgrade') flags |= CONN_UPGRADE;
  }
  return flags;
}

const DIGITS = /^[0-9]+$/;

/**
 * Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of identical values (from
 * repeated fields or one field "5, 5") is that value (RFC 9112 §6.3 item 5);
 * anything else is malformed. At most 2^53-1.
 */
export function parseContentLength(
  value: string,
  malformed: HttpParseStatus,
  tooLarge: HttpParseStatus,
): number {
  let digits = value;
  if (!DIGITS.test(value)) {
    const items = value.split(',');
    digits = trimOws(items[0]!);
    for (const item of items) {
      const d = trimOws(item);
      if (!DIGITS.test(d)) throw new HttpParseError(malformed, 'Content-Length is not a decimal number');
      if (Number(d) !== Number(digits)) {
        throw new HttpParseError(malformed, 'several different Content-Length values (RFC 9112 §6.3)');
      }
    }
  }
  const n = Number(digits);
  if (!Number.isSafeInteger(n))
    throw new HttpParseError(tooLarge, `Content-Length ${quote(digits)} is too large`);
  return n;
}

/** One header record from raw name/value pairs: lower-cased names, repeats joined with ", " ("; " for cookie). */
export function headerRecord(raw: readonly string[], skip?: string): Record<string, string> {
  // A null prototype, as Node's IncomingMessage#headers: "__proto__" is a valid field name.
  const headers = Object.create(null) as Record<string, string>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === skip) continue;
    const value = raw[i + 1]!;
    const prev = headers[name];
    headers[name] = prev === undefined ? value : `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return headers;
}

// Framer states.
const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_CR = 4;
const CHUNK_LF = 5;
const TRAILERS = 6;
const CLOSE = 7;

/**
 * chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF   (RFC 9112 §7.1)
 * chunk-size = 1*HEXDIG
 * chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * chunk-ext-val = token / quoted-string
 * Checked in full although the extensions are ignored: a lenient chunk line
 * (a bare CR or LF inside an extension) is a known request smuggling vector.
 */
const CHUNK_LINE =
  /^([0-9A-Fa-f]+)(?:[\t ]*;[\t ]*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[\t ]*=[\t ]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*$/;
/** 13 hex digits = 2^52: any larger chunk size could lose precision as a JS number. */
const MAX_CHUNK_SIZE_DIGITS = 13;

const END: Part<never> = Object.freeze({ kind: 'end' });

/** The byte-level state machine both decoders drive. */
export class Framer<H extends Framing> {
  readonly #d: Dialect<H>;
  readonly #limits: Limits;
  /** The most the carry-over buffer may hold. */
  readonly #cap: number;
  #state = HEAD;
  /** Body bytes left in a Content-Length body or the current chunk. */
  #remaining = 0;
  /** Carry-over: the start of a head, trailer section or chunk-size line that ended mid-chunk. */
  #acc: Buffer | undefined;
  #accLen = 0;
  // The scan of a block of lines (a head or a trailer section), as offsets from the
  // block's buffer start: where the block starts (after skipped empty lines), the
  // current line, where to look for the next LF, and where the final empty line starts.
  #blockStart = 0;
  #lineStart = 0;
  #scanFrom = 0;
  #textEnd = 0;
  #lines = 0;
  #skipped = 0;
  #text = '';

  constructor(dialect: Dialect<H>, limits: Limits) {
    this.#d = dialect;
    this.#limits = limits;
    this.#cap = Math.max(limits.maxHeadBytes, limits.maxChunkLineBytes) + 2 * dialect.maxEmptyLines + 2;
  }

  /** Between messages with nothing buffered. */
  get idle(): boolean {
    return this.#state === HEAD && this.#accLen === 0;
  }

  /** Bytes held over for the next push. */
  get buffered(): number {
    return this.#accLen;
  }

  /** Inside a body that ends when the connection closes. */
  get closeDelimited(): boolean {
    return this.#state === CLOSE;
  }

  /** The connection closed inside a close-delimited body: that body is complete. */
  finishClose(out: Part<H>[]): void {
    if (this.#state === CLOSE) this.#finish(out);
  }

  push(chunk: Buffer, out: Part<H>[]): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      switch (this.#state) {
        case HEAD: {
          if (this.#accLen === 0 && this.#skipped === 0) this.#d.start();
          pos = this.#block(chunk, pos, false);
          if (pos === -1) return;
          this.#onHead(out);
          break;
        }
        case LENGTH:
        case CHUNK_DATA: {
          const n = Math.min(this.#remaining, len - pos);
          out.push({ kind: 'body', data: n === len ? chunk : chunk.subarray(pos, pos + n) });
          pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            if (this.#state === LENGTH) this.#finish(out);
            else this.#state = CHUNK_CR;
          }
          break;
        }
        case CHUNK_SIZE: {
          pos = this.#chunkLine(chunk, pos);
          if (pos === -1) return;
          break;
        }
        case CHUNK_CR: {
          // chunk-data CRLF: exactly CRLF after the data, nothing else.
          const c = chunk[pos];
          if (c === 13) this.#state = CHUNK_LF;
          else if (c === 10 && this.#d.lenient) this.#state = CHUNK_SIZE;
          else throw this.#malformed('chunk data is not followed by CRLF (wrong chunk size?)');
          pos++;
          break;
        }
        case CHUNK_LF: {
          if (chunk[pos] !== 10)
            throw this.#malformed('chunk data is not followed by CRLF (wrong chunk size?)');
          this.#state = CHUNK_SIZE;
          pos++;
          break;
        }
        case TRAILERS: {
          pos = this.#block(chunk, pos, true);
          if (pos === -1) return;
          // trailer-section = *( field-line CRLF ): checked like header fields, then dropped.
          parseFieldLines(this.#text, 0, this.#d.lenient, this.#d.malformed, []);
          this.#text = '';
          this.#finish(out);
          break;
        }
        default: {
          // CLOSE: everything up to the end of the connection is body.
          out.push({ kind: 'body', data: pos === 0 ? chunk : chunk.subarray(pos) });
          return;
        }
      }
    }
  }

  #onHead(out: Part<H>[]): void {
    const text = this.#text;
    this.#text = '';
    const head = this.#d.head(text);
    if (head === undefined) return;
    out.push({ kind: 'head', head });
    switch (head.bodyKind) {
      case 'none':
        this.#finish(out);
        break;
      case 'length':
        if (head.contentLength === 0) this.#finish(out);
        else {
          this.#state = LENGTH;
          this.#remaining = head.contentLength;
        }
        break;
      case 'chunked':
        this.#state = CHUNK_SIZE;
        break;
      case 'close':
        this.#state = CLOSE;
        break;
    }
  }

  #finish(out: Part<H>[]): void {
    out.push(END);
    this.#state = HEAD;
    this.#d.done();
  }

  /**
   * Reads a block of lines ending with an empty line (a head, or a trailer
   * section). Returns the position in `chunk` after the block, with its text
   * in #text, or -1 when `chunk` ended first (its rest is held over).
   */
  #block(chunk: Buffer, pos: number, trailer: boolean): number {
    const direct = this.#accLen === 0;
    let b: Buffer;
    let base: number;
    let prior = 0;
    if (direct) {
      // The usual case: the whole block is in this chunk; scan it in place.
      b = chunk;
      base = pos;
      this.#blockStart = 0;
      this.#lineStart = 0;
      this.#scanFrom = 0;
    } else {
      prior = this.#accLen;
      this.#append(chunk, pos, Math.min(chunk.length, pos + this.#cap - this.#accLen));
      b = this.#acc!.subarray(0, this.#accLen);
      base = 0;
    }
    const limit = this.#limits.maxHeadBytes;
    const end = this.#scan(b, base, trailer);
    if (end === -1) {
      const size = b.length - base - this.#blockStart;
      if (size > limit) throw this.#tooBig(trailer);
      if (direct) {
        this.#append(b, base + this.#blockStart, b.length);
      } else if (this.#blockStart > 0) {
        this.#acc!.copyWithin(0, this.#blockStart, this.#accLen);
        this.#accLen -= this.#blockStart;
      }
      this.#lineStart -= this.#blockStart;
      this.#scanFrom -= this.#blockStart;
      this.#blockStart = 0;
      return -1;
    }
    if (end - this.#blockStart > limit) throw this.#tooBig(trailer);
    this.#text = b.toString('latin1', base + this.#blockStart, base + this.#textEnd);
    this.#accLen = 0;
    this.#lines = 0;
    this.#skipped = 0;
    if (this.#acc !== undefined && this.#acc.length > 16 * 1024) this.#acc = undefined;
    return direct ? base + end : pos + (end - prior);
  }

  /**
   * Looks for the empty line that ends a block, from where the last scan
   * stopped. Returns its end (relative to `base`) or -1. Checks line endings
   * and counts lines on the way, so bad input fails before it is all buffered.
   */
  #scan(b: Buffer, base: number, trailer: boolean): number {
    const strict = !this.#d.lenient;
    const maxLines = this.#limits.maxHeaders + (trailer ? 0 : 1);
    let lineStart = base + this.#lineStart;
    let from = base + this.#scanFrom;
    for (;;) {
      const lf = b.indexOf(10, from);
      if (lf === -1) break;
      let empty: boolean;
      if (lf > lineStart && b[lf - 1] === 13) empty = lf === lineStart + 1;
      else if (strict) throw this.#malformed('a line ends with a bare LF; HTTP/1.1 lines end with CRLF');
      else empty = lf === lineStart;
      if (empty) {
        if (trailer || lineStart !== base + this.#blockStart) {
          this.#textEnd = lineStart - base;
          return lf + 1 - base;
        }
        // An empty line before the start line (RFC 9112 §2.2).
        if (this.#skipped >= this.#d.maxEmptyLines) {
          throw this.#malformed('an empty line where the start line should be');
        }
        this.#skipped++;
        this.#blockStart = lf + 1 - base;
      } else if (++this.#lines > maxLines) {
        throw new HttpParseError(
          this.#d.tooLarge,
          `more than ${this.#limits.maxHeaders} ${trailer ? 'trailer' : 'header'} fields`,
        );
      }
      lineStart = lf + 1;
      from = lf + 1;
    }
    this.#lineStart = lineStart - base;
    this.#scanFrom = b.length - base;
    return -1;
  }

  /** Reads a chunk-size line. Returns the position after it, or -1 when `chunk` ended first. */
  #chunkLine(chunk: Buffer, pos: number): number {
    const max = this.#limits.maxChunkLineBytes;
    const lf = chunk.indexOf(10, pos);
    if (lf === -1) {
      // +1: the line's CR may be the last byte held.
      if (this.#accLen + chunk.length - pos > max + 1) throw this.#longChunkLine();
      this.#append(chunk, pos, chunk.length);
      return -1;
    }
    let b = chunk;
    let start = pos;
    let end = lf;
    if (this.#accLen > 0) {
      if (this.#accLen + lf - pos > max + 1) throw this.#longChunkLine();
      this.#append(chunk, pos, lf);
      b = this.#acc!;
      start = 0;
      end = this.#accLen;
      this.#accLen = 0;
    }
    if (end > start && b[end - 1] === 13) end--;
    else if (!this.#d.lenient) throw this.#malformed('a chunk-size line ends with a bare LF');
    if (end - start > max) throw this.#longChunkLine();
    const m = CHUNK_LINE.exec(b.toString('latin1', start, end));
    if (m === null)
      throw this.#malformed('invalid chunk-size line (expected hex size, optional ;extensions, CRLF)');
    const hex = m[1]!;
    let zeros = 0;
    while (zeros < hex.length - 1 && hex.charCodeAt(zeros) === 48) zeros++;
    if (hex.length - zeros > MAX_CHUNK_SIZE_DIGITS) throw this.#malformed('chunk size too large');
    const size = Number.parseInt(hex, 16);
    if (size === 0) {
      // last-chunk: the trailer section and the final CRLF follow.
      this.#state = TRAILERS;
    } else {
      this.#state = CHUNK_DATA;
      this.#remaining = size;
    }
    return lf + 1;
  }

  #append(src: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    const need = this.#accLen + n;
    let acc = this.#acc;
    if (acc === undefined || acc.length < need) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(this.#cap, 2 * (acc?.length ?? 256))));
      if (acc !== undefined && this.#accLen > 0) acc.copy(grown, 0, 0, this.#accLen);
      this.#acc = acc = grown;
    }
    src.copy(acc, this.#accLen, start, end);
    this.#accLen = need;
  }

  #malformed(message: string): HttpParseError {
    return new HttpParseError(this.#d.malformed, message);
  }

  #tooBig(trailer: boolean): HttpParseError {
    const what = trailer ? 'the trailer section' : 'the message head (start line and headers)';
    return new HttpParseError(this.#d.tooLarge, `${what} is larger than ${this.#limits.maxHeadBytes} bytes`);
  }

  #longChunkLine(): HttpParseError {
    return this.#malformed(`a chunk-size line is longer than ${this.#limits.maxChunkLineBytes} bytes`);
  }
}
