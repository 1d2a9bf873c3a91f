/**
 * Masking of `COPY table TO STDOUT`: the server sends the table's rows as
 * CopyData in the statement's format, with no RowDescription, so the columns
 * come from the catalog (the statement's column list, or the table's columns
 * in order) and the masked ones are found by name. The rows are read in the
 * format's own terms and the masked fields replaced as in DataRows
 * (result-masker.ts: the marker for string types, NULL for the rest), in
 * that format's encoding:
 *
 * - text ("Text Format" of COPY): one row per line, fields separated by the
 *   delimiter; "backslash characters (\) can be used in the COPY data to
 *   quote data characters that might otherwise be taken as row or column
 *   delimiters", so a field ends at the first delimiter not preceded by a
 *   backslash escape; NULL is the NULL string (`\N`);
 * - csv: fields separated by the delimiter, a field starting with the quote
 *   character runs to the matching quote ("a QUOTE character within a quoted
 *   value … must be preceded by the ESCAPE character", by default the quote
 *   itself), a row ends at a newline outside quotes; NULL is the NULL string
 *   (by default nothing), and the marker is written quoted;
 * - binary ("Binary Format"): an 11-byte signature, an Int32 flags field, an
 *   Int32 header-extension length and the extension, then per tuple "a 16-bit
 *   integer count of the number of fields", each field "a 32-bit length word
 *   followed by that many bytes of field data" (-1: NULL), and a trailer of
 *   -1 as the count.
 *
 * Rows are re-sent one per CopyData, whatever the server's chunking. Options
 * the reader does not know (ENCODING, …) make the statement's COPY
 * unmaskable: it is denied. Pure and incremental, with a bound on how much a
 * row may hold.
 */
import { ByteQueue } from './byte-queue.ts';
import { copyData } from './encode.ts';
import { ProtocolError } from './protocol.ts';
import { type ColumnPlan, MASKED_TEXT, maskedValue } from './result-masker.ts';

export interface CopyFormat {
  readonly format: 'text' | 'csv' | 'binary';
  readonly delimiter: number;
  readonly nullString: Buffer;
  readonly quote: number;
  readonly escape: number;
  readonly header: boolean;
}

type OptionValue = string | true | readonly string[];

const BOOLEAN_TRUE = new Set(['true', 'on', '1', 'yes']);
const BOOLEAN_FALSE = new Set(['false', 'off', '0', 'no']);
/** Options that change only which rows or how values are quoted on output, not how the output is read. */
const HARMLESS = new Set(['force_quote', 'force_not_null', 'force_null', 'freeze']);

function oneByte(v: OptionValue | undefined, name: string, fallback: string): number {
  const s = v === undefined ? fallback : typeof v === 'string' ? v : undefined;
  const b = s === undefined ? undefined : Buffer.from(s, 'utf8');
  if (b?.length !== 1) throw new Error(`${name} must be a single one-byte character`);
  return b[0] as number;
}

/** The output format a COPY's options ask for; an Error saying why when the guard cannot read it. */
export function copyFormat(options: ReadonlyMap<string, OptionValue>): CopyFormat {
  for (const k of options.keys()) {
    if (!['format', 'delimiter', 'null', 'header', 'quote', 'escape', ...HARMLESS].includes(k)) {
      throw new Error(`the COPY option ${k.toUpperCase()} is not one the guard can read masked output under`);
    }
  }
  const f = options.get('format') ?? 'text';
  if (f !== 'text' && f !== 'csv' && f !== 'binary') throw new Error(`COPY format ${String(f)} is not known`);
  const h = options.get('header');
  let header = false;
  if (h === true || (typeof h === 'string' && BOOLEAN_TRUE.has(h.toLowerCase()))) header = true;
  else if (h !== undefined && !(typeof h === 'string' && BOOLEAN_FALSE.has(h.toLowerCase()))) {
    throw new Error('COPY HEADER must be true or false on output');
  }
  const csv = f === 'csv';
  const quote = oneByte(options.get('quote'), 'QUOTE', '"');
  const nullOpt = options.get('null');
  if (nullOpt !== undefined && typeof nullOpt !== 'string') throw new Error('COPY NULL must be a string');
  return {
    format: f,
    delimiter: oneByte(options.get('delimiter'), 'DELIMITER', csv ? ',' : '\t'),
    nullString: Buffer.from(nullOpt ?? (csv ? '' : '\\N'), 'utf8'),
    quote,
    escape: oneByte(options.get('escape'), 'ESCAPE', String.fromCharCode(quote)),
    header,
  };
}

const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** Fields of one text-format line (without its newline): [start, end) of each. */
function textFields(line: Buffer, delimiter: number): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    const b = line[i] as number;
    if (b === BACKSLASH) i++;
    else if (b === delimiter) {
      out.push([start, i]);
      start = i + 1;
    }
  }
  out.push([start, line.length]);
  return out;
}

/** Where a csv row ends (the index of its newline) from `from`, or -1 when it has not ended yet. */
function csvRowEnd(buf: Buffer, f: CopyFormat): number {
  let quoted = false;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i] as number;
    if (quoted) {
      if (b === f.escape && f.escape !== f.quote && i + 1 < buf.length) {
        const n = buf[i + 1] as number;
        if (n === f.quote || n === f.escape) {
          i++;
          continue;
        }
      }
      if (b === f.quote) {
        // With ESCAPE the same as QUOTE, a doubled quote is a quote inside the value.
        if (f.escape === f.quote && buf[i + 1] === f.quote) {
          i++;
          continue;
        }
        quoted = false;
      }
    } else if (b === f.quote) quoted = true;
    else if (b === NEWLINE) return i;
  }
  return -1;
}

/** Fields of one csv row (without its newline), quotes kept. */
function csvFields(row: Buffer, f: CopyFormat): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < row.length; i++) {
    const b = row[i] as number;
    if (quoted) {
      if (b === f.escape && f.escape !== f.quote && (row[i + 1] === f.quote || row[i + 1] === f.escape)) {
        i++;
      } else if (b === f.quote) {
        if (f.escape === f.quote && row[i + 1] === f.quote) i++;
        else quoted = false;
      }
    } else if (b === f.quote) quoted = true;
    else if (b === f.delimiter) {
      out.push([start, i]);
      start = i + 1;
    }
  }
  out.push([start, row.length]);
  return out;
}

function textMarker(f: CopyFormat): Buffer {
  const out: number[] = [];
  for (const b of Buffer.from(MASKED_TEXT, 'utf8')) {
    if (b === BACKSLASH || b === f.delimiter || b === NEWLINE || b === 0x0d) out.push(BACKSLASH);
    out.push(b);
  }
  return Buffer.from(out);
}

function csvMarker(f: CopyFormat): Buffer {
  const out: number[] = [f.quote];
  for (const b of Buffer.from(MASKED_TEXT, 'utf8')) {
    if (b === f.quote || b === f.escape) out.push(f.escape);
    out.push(b);
  }
  out.push(f.quote);
  return Buffer.from(out);
}

export class CopyMasker {
  readonly #f: CopyFormat;
  readonly #columns: readonly ColumnPlan[];
  readonly #max: number;
  readonly #queue = new ByteQueue();
  readonly #marker: Buffer;
  #headerLeft: boolean;
  #binaryHeaderDone = false;
  #ended = false;

  /** `maxRowBytes`: the largest row (or binary header) held while it is incomplete. */
  constructor(format: CopyFormat, columns: readonly ColumnPlan[], maxRowBytes: number) {
    this.#f = format;
    this.#columns = columns;
    this.#max = maxRowBytes;
    this.#headerLeft = format.header && format.format !== 'binary';
    this.#marker = format.format === 'csv' ? csvMarker(format) : textMarker(format);
  }

  /** Whether the server's CopyOutResponse format code (0 textual, 1 binary) is the one expected. */
  matches(overallFormat: number): boolean {
    return (overallFormat === 1) === (this.#f.format === 'binary');
  }

  /**
   * The CopyData messages to send for a CopyData payload from the server
   * (whole rows only), and how many values were masked per rule.
   */
  push(data: Buffer): { messages: Buffer[]; masked: Map<string, number> } {
    if (this.#ended) throw new ProtocolError('COPY data after the end of the binary COPY trailer');
    this.#queue.push(data);
    const messages: Buffer[] = [];
    const masked = new Map<string, number>();
    for (;;) {
      const row = this.#f.format === 'binary' ? this.#binaryRow(masked) : this.#lineRow(masked);
      if (!row) break;
      messages.push(copyData(row));
    }
    if (this.#queue.length > this.#max) {
      throw new ProtocolError(`a COPY row of more than ${this.#max} bytes`, '54000');
    }
    return { messages, masked };
  }

  /** The server ended the COPY: nothing may be left half read. */
  end(): void {
    if (this.#queue.length > 0) throw new ProtocolError('the COPY data ended in the middle of a row');
  }

  #count(masked: Map<string, number>, rule: string): void {
    masked.set(rule, (masked.get(rule) ?? 0) + 1);
  }

  #lineRow(masked: Map<string, number>): Buffer | undefined {
    const pending = this.#queue.length;
    if (pending === 0) return undefined;
    const buf = this.#queue.drain();
    const end = this.#f.format === 'csv' ? csvRowEnd(buf, this.#f) : buf.indexOf(NEWLINE);
    if (end === -1) {
      this.#queue.push(buf);
      return undefined;
    }
    this.#queue.push(buf.subarray(end + 1));
    const row = buf.subarray(0, end);
    if (this.#headerLeft) {
      this.#headerLeft = false;
      return buf.subarray(0, end + 1);
    }
    const fields = this.#f.format === 'csv' ? csvFields(row, this.#f) : textFields(row, this.#f.delimiter);
    if (fields.length !== this.#columns.length) {
      throw new ProtocolError(
        `a COPY row has ${fields.length} fields where the table has ${this.#columns.length} columns`,
      );
    }
    const parts: Buffer[] = [];
    fields.forEach(([s, e], i) => {
      const c = this.#columns[i] as ColumnPlan;
      if (i > 0) parts.push(Buffer.from([this.#f.delimiter]));
      if (c.maskedBy === undefined) {
        parts.push(row.subarray(s, e));
        return;
      }
      this.#count(masked, c.maskedBy);
      parts.push(maskedValue(c.typeOid) === null ? this.#f.nullString : this.#marker);
    });
    parts.push(Buffer.from([NEWLINE]));
    return Buffer.concat(parts);
  }

  #binaryRow(masked: Map<string, number>): Buffer | undefined {
    const q = this.#queue;
    if (!this.#binaryHeaderDone) {
      // Signature (11), flags (4), header extension length (4), extension.
      if (q.length < 19) return undefined;
      const ext = q.int32At(15);
      if (ext < 0) throw new ProtocolError('a binary COPY header with a negative extension length');
      if (q.length < 19 + ext) return undefined;
      const header = q.take(19 + ext);
      if (!header.subarray(0, 11).equals(BINARY_SIGNATURE)) {
        throw new ProtocolError('binary COPY data without the PGCOPY signature');
      }
      // "Bit 16: If 1, OIDs are included in the data": the layout would differ.
      if ((header.readInt32BE(11) & 0x10000) !== 0) throw new ProtocolError('binary COPY data with OIDs');
      this.#binaryHeaderDone = true;
      return header;
    }
    if (q.length < 2) return undefined;
    const count = (((q.byteAt(0) << 8) | q.byteAt(1)) << 16) >> 16;
    if (count === -1) {
      this.#ended = true;
      return q.take(2);
    }
    if (count !== this.#columns.length) {
      throw new ProtocolError(
        `a binary COPY tuple has ${count} fields where the table has ${this.#columns.length}`,
      );
    }
    // Find the tuple's end without taking it: every field's length word must be there.
    let at = 2;
    for (let i = 0; i < count; i++) {
      if (q.length < at + 4) return undefined;
      const len = q.int32At(at);
      if (len < -1) throw new ProtocolError('a binary COPY field with a negative length');
      at += 4 + Math.max(0, len);
      if (at > this.#max) throw new ProtocolError(`a COPY row of more than ${this.#max} bytes`, '54000');
    }
    if (q.length < at) return undefined;
    const tuple = q.take(at);
    const parts: Buffer[] = [tuple.subarray(0, 2)];
    let p = 2;
    for (let i = 0; i < count; i++) {
      const len = tuple.readInt32BE(p);
      const end = p + 4 + Math.max(0, len);
      const c = this.#columns[i] as ColumnPlan;
      if (c.maskedBy === undefined) parts.push(tuple.subarray(p, end));
      else {
        this.#count(masked, c.maskedBy);
        const v = maskedValue(c.typeOid);
        const head = Buffer.alloc(4);
        head.writeInt32BE(v === null ? -1 : v.length);
        parts.push(head);
        if (v) parts.push(v);
      }
      p = end;
    }
    return Buffer.concat(parts);
  }
}
