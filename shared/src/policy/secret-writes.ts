/**
 * Writes to objects whose values the guard masks (every Secret; whatever a
 * policy masks) must not carry a masked value anywhere the agent can read it
 * back. JSON patch is the one patch format that can refer to a value already
 * stored: `copy` and `move` take one from a `from` path, and `test` answers
 * whether a guess was right. Merge, strategic-merge and apply patches only
 * hold values the writer wrote (their directives — `$patch`, `$retainKeys`,
 * `$setElementOrder/…`, `$deleteFromPrimitiveList/…` — name keys and order,
 * never another field's value). Pure.
 */
import { isObject as isObj } from '../check.ts';
import type { DecisionCause } from './types.ts';

/** JSON patch operations that write only the value they carry. */
const VALUE_FREE_OPS: ReadonlySet<string> = new Set(['add', 'remove', 'replace']);

/** Decoded values shorter than this are matched whole only (a short value is in too many strings). */
const MIN_CONTAINED_LENGTH = 8;

/** Why a JSON patch (the parsed array of operations) may not be applied to a masked object. */
export function maskedJsonPatchEscapes(ops: unknown): DecisionCause[] {
  if (!Array.isArray(ops)) return [];
  const out: DecisionCause[] = [];
  ops.forEach((op, i) => {
    const name = isObj(op) ? op.op : undefined;
    if (typeof name === 'string' && VALUE_FREE_OPS.has(name)) return;
    out.push({
      rule: 'chaperone-no-masked-value-patch',
      field: `patch[${i}].op`,
      message: `a JSON patch of an object whose values are masked may only add, remove or replace (${
        typeof name === 'string' ? `"${name}"` : 'this operation'
      } could copy, move or test a masked value): write the values themselves, or use a merge patch`,
    });
  });
  return out;
}

function decoded(b64: string): string | undefined {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(b64, 'base64'));
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

function member(path: string, key: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Every string in `v`, with its path (keys that are not plain words in brackets). */
function strings(v: unknown, path: string, out: [string, string][], depth = 0): void {
  if (depth > 200) return;
  if (typeof v === 'string') out.push([path, v]);
  else if (Array.isArray(v)) {
    v.forEach((x, i) => {
      strings(x, `${path}[${i}]`, out, depth + 1);
    });
  } else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) strings(x, member(path, k), out, depth + 1);
  }
}

/**
 * Fields the API server writes itself: they change on every write, or (the
 * managers in managedFields) take the request's fieldManager or User-Agent,
 * which the agent could set to a guess: looking there would make this check
 * an oracle for guesses.
 */
const BOOKKEEPING = /^metadata\.(resourceVersion|generation|creationTimestamp|uid|managedFields(\[|$))/;

/**
 * Strings outside `data` and `stringData` of a Secret as it would be stored
 * that hold a value of the stored Secret's `data` (as base64, or decoded)
 * and are new or changed: a masked value moved where masking does not reach.
 * Values the request itself holds (in any of its strings) are the writer's
 * own and do not count.
 */
export function secretValueLeaks(previous: unknown, next: unknown, request: unknown): DecisionCause[] {
  const data = isObj(previous) && isObj(previous.data) ? previous.data : {};
  const values: string[] = [];
  for (const v of Object.values(data)) {
    if (typeof v !== 'string' || v === '') continue;
    values.push(v);
    const text = decoded(v);
    if (text !== undefined) values.push(text);
  }
  if (values.length === 0) return [];
  const own: [string, string][] = [];
  strings(request, '', own);
  const secret = values.filter((v) => !own.some(([, s]) => s.includes(v)));
  if (secret.length === 0) return [];
  const found: [string, string][] = [];
  if (isObj(next)) {
    for (const [k, v] of Object.entries(next)) {
      if (k !== 'data' && k !== 'stringData') strings(v, member('', k), found);
    }
  }
  const before: [string, string][] = [];
  strings(previous, '', before);
  const stored = new Map(before);
  const out: DecisionCause[] = [];
  for (const [path, s] of found) {
    if (BOOKKEEPING.test(path) || stored.get(path) === s) continue;
    const hit = secret.some((v) => s === v || (v.length >= MIN_CONTAINED_LENGTH && s.includes(v)));
    if (!hit) continue;
    out.push({
      rule: 'chaperone-no-masked-value-patch',
      field: path,
      message: `${path} would hold a value of the Secret's data, outside data where it is masked: write only values of your own there`,
    });
  }
  return out;
}
