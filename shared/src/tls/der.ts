/**
 * DER (ITU-T X.690, Distinguished Encoding Rules): the few universal types an
 * X.509 certificate is made of, written and read. Every value is a TLV:
 * one tag byte (all tags used here are below 31), a length (short form below
 * 128, else 0x80 | n followed by n big-endian bytes, fewest possible), then
 * the value. Constructed types (SEQUENCE, SET, explicit tags) hold TLVs.
 */
import { ChaperoneError } from '../errors.ts';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** A context-specific tag `[n]`: constructed for EXPLICIT tags and for IMPLICIT tags over constructed types. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, value: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(tag), lengthBytes(value.length), value]);
}

export function sequence(...items: readonly Uint8Array[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(items));
}

/** A SET OF: DER orders its elements by their encodings. */
export function setOf(...items: readonly Uint8Array[]): Buffer {
  return tlv(TAG.SET, Buffer.concat([...items].sort((a, b) => Buffer.compare(a, b))));
}

export function boolean(value: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.of(value ? 0xff : 0x00));
}

export function nullValue(): Buffer {
  return tlv(TAG.NULL, Buffer.alloc(0));
}

/** A non-negative INTEGER from its big-endian magnitude: no redundant leading zero, a 0x00 prepended when the top bit is set. */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const bytes = magnitude.length === 0 ? Buffer.of(0) : Buffer.from(magnitude.subarray(i));
  return tlv(TAG.INTEGER, (bytes[0] as number) & 0x80 ? Buffer.concat([Buffer.of(0), bytes]) : bytes);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new RangeError(`${n} is not a small non-negative integer`);
  return unsignedInteger(Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]));
}

/** An OBJECT IDENTIFIER from its dotted form: the first two arcs as 40·a + b, then each arc in base 128, high bit set on all but its last byte. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [a, b] = arcs;
  if (arcs.length < 2 || arcs.some((n) => !Number.isSafeInteger(n) || n < 0) || (a as number) > 2)
    throw new RangeError(`"${dotted}" is not an object identifier`);
  const out: number[] = [];
  for (const arc of [(a as number) * 40 + (b as number), ...arcs.slice(2)]) {
    const groups = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift(0x80 | (v & 0x7f));
    out.push(...groups);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** A BIT STRING holding whole bytes (a key, a signature): no unused bits. */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.of(0), bytes]));
}

/**
 * A named-bit BIT STRING (e.g. keyUsage): bit 0 is the top bit of the first
 * byte; DER drops trailing zero bits and counts the unused ones in the first
 * content byte (X.690 11.2.2).
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return tlv(TAG.BIT_STRING, Buffer.of(0));
  const last = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(last / 8) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] as number) | (0x80 >> (bit & 7));
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.of(7 - (last & 7)), bytes]));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG.OCTET_STRING, bytes);
}

export function utf8String(text: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** The content of an IA5String (ASCII), e.g. for a dNSName, which is one under an implicit tag. */
export function ia5Bytes(text: string): Buffer {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: IA5 is exactly the 7-bit range
  if (!/^[\x00-\x7f]*$/.test(text)) throw new RangeError(`"${text}" is not IA5 (ASCII) text`);
  return Buffer.from(text, 'ascii');
}

/**
 * An X.509 Time (RFC 5280 4.1.2.5): UTCTime (YYMMDDHHMMSSZ) through 2049,
 * GeneralizedTime (YYYYMMDDHHMMSSZ) from 2050; whole seconds, UTC.
 */
export function x509Time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 1950 || year > 9999)
    throw new RangeError(`${String(date)} cannot be written as an X.509 time (years 1950 to 9999)`);
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return year < 2050
    ? tlv(TAG.UTC_TIME, Buffer.from(`${two(year % 100)}${rest}`, 'ascii'))
    : tlv(TAG.GENERALIZED_TIME, Buffer.from(`${year}${rest}`, 'ascii'));
}

// ---------------------------------------------------------------- reading

/** One TLV read from a buffer: `value` is its content, `raw` the whole encoding. */
export interface Tlv {
  readonly tag: number;
  readonly value: Buffer;
  readonly raw: Buffer;
}

function malformed(what: string): ChaperoneError {
  return new ChaperoneError('tls_failed', `malformed DER: ${what}`);
}

/** Reads the TLV at `offset`; throws on a truncated or indefinite-length encoding. */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw malformed('truncated header');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw malformed('multi-byte tags are not used in certificates');
  let len = buf[offset + 1] as number;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw malformed('unsupported length');
    if (start + n > buf.length) throw malformed('truncated length');
    len = buf.readUIntBE(start, n);
    start += n;
  }
  if (start + len > buf.length) throw malformed('value runs past the end');
  return { tag, value: buf.subarray(start, start + len), raw: buf.subarray(offset, start + len) };
}

/** The TLVs inside a constructed value (a SEQUENCE's elements). */
export function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < value.length; ) {
    const t = readTlv(value, at);
    out.push(t);
    at += t.raw.length;
  }
  return out;
}

/** The dotted form of an OBJECT IDENTIFIER's content. */
export function readOid(value: Buffer): string {
  const arcs: number[] = [];
  let v = 0;
  for (const byte of value) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  const first = arcs.shift() ?? 0;
  const a = Math.min(2, Math.floor(first / 40));
  return [a, first - 40 * a, ...arcs].join('.');
}
