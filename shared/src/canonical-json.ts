/**
 * Canonical JSON for hashing: object keys sorted by UTF-16 code units (as in
 * RFC 8785), no insignificant white space, `undefined` members omitted,
 * strings and numbers in ECMAScript's JSON form. Non-finite numbers, bigints,
 * functions and cycles are rejected: the same event must always hash the same.
 *
 * This runs for every audit event on both the sidecar and the collector, so
 * it is one pass of string concatenation; the location of a problem is worked
 * out only when there is one.
 */
import { hash } from 'node:crypto';
import { ValidationError } from './errors.ts';

class Unencodable extends Error {}

/**
 * Deepest nesting of objects and arrays encoded. Deeper values are refused
 * (ValidationError naming the path) rather than overflowing the stack;
 * callers that take untrusted values set a much lower limit of their own
 * before encoding (the collector's json-depth.ts).
 */
export const MAX_CANONICAL_DEPTH = 1000;

/**
 * Objects and arrays being encoded, once deeper than CHECK_CYCLES_BELOW (a
 * cycle always gets there). A set, so the check costs the same at any depth.
 */
const onPath = new Set<object>();
const CHECK_CYCLES_BELOW = 32;

/** `"key":` for object keys seen before (events repeat the same few dozen keys). */
const keyPrefixes = new Map<string, string>();
const MAX_CACHED_KEYS = 4096;
const MAX_CACHED_KEY_LENGTH = 64;

function keyPrefix(k: string): string {
  let p = keyPrefixes.get(k);
  if (p === undefined) {
    p = `${JSON.stringify(k)}:`;
    if (k.length <= MAX_CACHED_KEY_LENGTH && keyPrefixes.size < MAX_CACHED_KEYS) keyPrefixes.set(k, p);
  }
  return p;
}

/**
 * The canonical text of deeply frozen objects (an identity's `user` and
 * `source`, carried by every event of a sidecar): such an object cannot
 * change, so it is encoded once. `null` marks a frozen object that is not
 * frozen all the way down (or nests deeper than MAX_FROZEN_HEIGHT): encoded
 * every time. Only objects nested less than CHECK_CYCLES_BELOW deep use it,
 * so the depth limit applies as if each were encoded in place.
 */
const frozenTexts = new WeakMap<object, string | null>();
const MAX_FROZEN_HEIGHT = 8;

/** Whether `value` and everything in it are frozen data (no accessors), at most `height` levels of it. */
function deeplyFrozen(value: object, height: number): boolean {
  if (height === 0 || !Object.isFrozen(value)) return false;
  for (const d of Object.values(Object.getOwnPropertyDescriptors(value))) {
    if (!('value' in d)) return false;
    const v: unknown = d.value;
    if (typeof v === 'object' && v !== null && !deeplyFrozen(v, height - 1)) return false;
  }
  return true;
}

/**
 * Freezes `value` and every object in it, and gives it back: for values
 * every event carries (canonicalJson then encodes them once).
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Whether `keys` are already in canonical order. Objects built member by
 * member in that order (the sidecar's audit events) then need no sort, which
 * would allocate a work array per object.
 */
function inOrder(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++) if ((keys[i - 1] as string) > (keys[i] as string)) return false;
  return true;
}

function enc(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Unencodable();
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw new Unencodable();
  }
  if (value === null) return 'null';
  const frozen = depth < CHECK_CYCLES_BELOW && Object.isFrozen(value);
  if (frozen) {
    const text = frozenTexts.get(value);
    if (text) return text;
  }
  const tracked = depth >= CHECK_CYCLES_BELOW;
  if (tracked) {
    if (depth >= MAX_CANONICAL_DEPTH || onPath.has(value)) throw new Unencodable();
    onPath.add(value);
  }
  let out: string;
  if (Array.isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v = value[i];
      out += v === undefined ? 'null' : enc(v, depth + 1);
    }
    out += ']';
  } else {
    const obj = value as Record<string, unknown>;
    // Default sort order is by UTF-16 code units, which is what RFC 8785 asks for.
    const keys = Object.keys(obj);
    if (!inOrder(keys)) keys.sort();
    out = '{';
    let first = true;
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined) continue;
      if (!first) out += ',';
      first = false;
      out += keyPrefix(k) + enc(v, depth + 1);
    }
    out += '}';
  }
  if (tracked) onPath.delete(value);
  if (frozen && !frozenTexts.has(value))
    frozenTexts.set(value, deeplyFrozen(value, MAX_FROZEN_HEIGHT) ? out : null);
  return out;
}

/** Where and why a value cannot be encoded (the slow path, only after a failure). */
function locate(value: unknown, path: string, seen: Set<object>, depth = 0): ValidationError | undefined {
  const where = path || '/';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value)
        ? undefined
        : new ValidationError(where, 'non-finite number cannot be encoded');
    case 'object':
      break;
    default:
      return new ValidationError(where, `${typeof value} cannot be encoded as JSON`);
  }
  if (value === null) return undefined;
  if (seen.has(value)) return new ValidationError(where, 'cyclic value cannot be encoded');
  if (depth >= MAX_CANONICAL_DEPTH)
    return new ValidationError(
      truncatePath(where),
      `objects and arrays nest more than ${MAX_CANONICAL_DEPTH} levels deep; the limit is ${MAX_CANONICAL_DEPTH}`,
    );
  seen.add(value);
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  for (const [k, v] of entries) {
    if (v === undefined) continue;
    const problem = locate(v, `${path}/${k}`, seen, depth + 1);
    if (problem) return problem;
  }
  seen.delete(value);
  return undefined;
}

function truncatePath(path: string): string {
  return path.length <= 160 ? path : `${path.slice(0, 160)}…`;
}

export function canonicalJson(value: unknown): string {
  try {
    return enc(value, 0);
  } catch (err) {
    onPath.clear();
    if (!(err instanceof Unencodable) && !(err instanceof RangeError)) throw err;
    throw locate(value, '', new Set()) ?? new ValidationError('/', 'value cannot be encoded as JSON');
  }
}

/**
 * The canonical members (`"key":value`) of `obj` without `skip`, split into
 * those sorting before and after it — for building a canonical object with
 * `skip` left out or filled in, encoding the rest once.
 */
export function canonicalMembersAround(obj: object, skip: string): { before: string; after: string } {
  const rec = obj as Record<string, unknown>;
  const keys = Object.keys(rec);
  if (!inOrder(keys)) keys.sort();
  let before = '';
  let after = '';
  for (const k of keys) {
    const v = rec[k];
    if (v === undefined || k === skip) continue;
    const m = keyPrefix(k) + canonicalJson(v);
    if (k < skip) before = before ? `${before},${m}` : m;
    else after = after ? `${after},${m}` : m;
  }
  return { before, after };
}

/** sha256 of the text, hex (one-shot: no Hash object). */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}
