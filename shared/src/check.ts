/**
 * Small structural checks for validators: each throws a ValidationError that
 * names the exact path of the offending value.
 */
import { ValidationError } from './errors.ts';

export type Obj = Record<string, unknown>;

export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function object(v: unknown, path: string): Obj {
  if (!isObject(v)) throw new ValidationError(path, `must be an object, got ${describeType(v)}`);
  return v;
}

export function str(
  v: unknown,
  path: string,
  opts: { max?: number; pattern?: RegExp; empty?: boolean } = {},
): string {
  if (typeof v !== 'string') throw new ValidationError(path, `must be a string, got ${describeType(v)}`);
  if (!opts.empty && v.length === 0) throw new ValidationError(path, 'must not be empty');
  if (opts.max !== undefined && v.length > opts.max)
    throw new ValidationError(path, `must be at most ${opts.max} characters`);
  if (opts.pattern && !opts.pattern.test(v)) throw new ValidationError(path, `must match ${opts.pattern}`);
  return v;
}

export function optStr(v: unknown, path: string, opts?: Parameters<typeof str>[2]): string | undefined {
  return v === undefined ? undefined : str(v, path, { empty: true, ...opts });
}

export function int(v: unknown, path: string, opts: { min?: number; max?: number } = {}): number {
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new ValidationError(path, `must be an integer, got ${describeType(v)}`);
  if (opts.min !== undefined && v < opts.min) throw new ValidationError(path, `must be at least ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) throw new ValidationError(path, `must be at most ${opts.max}`);
  return v;
}

export function num(v: unknown, path: string, opts: { min?: number } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ValidationError(path, `must be a number, got ${describeType(v)}`);
  if (opts.min !== undefined && v < opts.min) throw new ValidationError(path, `must be at least ${opts.min}`);
  return v;
}

export function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean')
    throw new ValidationError(path, `must be true or false, got ${describeType(v)}`);
  return v;
}

export function oneOf<const T extends string>(v: unknown, values: readonly T[], path: string): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw new ValidationError(path, `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

export function arrayOf<T>(v: unknown, path: string, item: (x: unknown, p: string) => T, max = 10_000): T[] {
  if (!Array.isArray(v)) throw new ValidationError(path, `must be an array, got ${describeType(v)}`);
  if (v.length > max) throw new ValidationError(path, `must have at most ${max} items`);
  return v.map((x, i) => item(x, `${path}/${i}`));
}

export function stringMap(v: unknown, path: string): Record<string, string> {
  const o = object(v, path);
  for (const [k, x] of Object.entries(o)) str(x, `${path}/${k}`, { empty: true });
  return o as Record<string, string>;
}

/** Rejects members not in `allowed`, naming the closest allowed one. */
export function onlyKeys(
  o: Obj,
  allowed: readonly string[],
  path: string,
  suggest?: (k: string) => string,
): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k))
      throw new ValidationError(`${path}/${k}`, `unknown field${suggest ? suggest(k) : ''}`);
  }
}

export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
