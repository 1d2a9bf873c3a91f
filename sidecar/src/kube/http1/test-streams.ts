/**
 * Generators both HTTP/1.1 decoder property tests use: RFC 9110 tokens,
 * random bytes, and a byte stream cut at arbitrary points (every split must
 * decode the same). Test-only.
 */
import fc from 'fast-check';

/** RFC 9110 §5.6.2 tchar. */
export const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split(
  '',
);

export const token = (max: number) =>
  fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: max });

export const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** Cuts `buf` at the given points (any numbers; taken modulo its length). */
export function splitAt(buf: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...at, buf.length]) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  return out;
}
