/**
 * Canonical JSON for hashing: object keys sorted by UTF-16 code units (as in
 * RFC 8785), no insignificant white space, `undefined` members omitted,
 * strings and numbers in ECMAScript's JSON form. Non-finite numbers, bigints,
 * functions and cycles are rejected: the same event must always hash the same.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from './errors.ts';

export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, '', parts, new Set());
  return parts.join('');
}

function write(value: unknown, path: string, out: string[], stack: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      out.push(JSON.stringify(value));
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new ValidationError(path || '/', 'non-finite number cannot be encoded');
      out.push(JSON.stringify(value));
      return;
    case 'object':
      break;
    default:
      throw new ValidationError(path || '/', `${typeof value} cannot be encoded as JSON`);
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (stack.has(value)) throw new ValidationError(path || '/', 'cyclic value cannot be encoded');
  stack.add(value);
  if (Array.isArray(value)) {
    out.push('[');
    value.forEach((v, i) => {
      if (i > 0) out.push(',');
      write(v === undefined ? null : v, `${path}/${i}`, out, stack);
    });
    out.push(']');
  } else {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    out.push('{');
    keys.forEach((k, i) => {
      if (i > 0) out.push(',');
      out.push(JSON.stringify(k), ':');
      write(obj[k], `${path}/${k}`, out, stack);
    });
    out.push('}');
  }
  stack.delete(value);
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
