/**
 * RFC 6902 JSON Patch: `diff(from, to)` produces operations that turn `from`
 * into `to`; `applyPatch` applies them (the tests and `check-inject` use it to
 * prove the patch the webhook returns gives exactly the injected pod).
 *
 * Objects are compared key by key. Arrays keep their common prefix and
 * suffix, patch the elements in between in place, and remove or add the rest,
 * so adding a container or an env var produces one small `add`, not a
 * rewrite of the list.
 */
import { check } from '@chaperone/shared';
import { cloneJson, jsonEqual, member, setMember, stringifyJson } from './json-value.ts';

const isPlainObject = check.isObject;

export type PatchOperation =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'test'; path: string; value: unknown };

/** RFC 6901: `~` → `~0`, `/` → `~1`. */
function escapePointer(token: string): string {
  if (token.indexOf('~') === -1 && token.indexOf('/') === -1) return token;
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function diff(from: unknown, to: unknown): PatchOperation[] {
  const ops: PatchOperation[] = [];
  walk(from, to, '', ops, 0);
  return ops;
}

function walk(a: unknown, b: unknown, path: string, ops: PatchOperation[], base: number): void {
  if (a === b) return;
  if (isPlainObject(a) && isPlainObject(b)) {
    walkObject(a, b, path, ops, base);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    walkArray(a, b, path, ops, base);
    return;
  }
  // Different scalars, or values of different kinds: never equal.
  ops.push({ op: 'replace', path: path, value: b });
}

/**
 * Members of the objects being compared, on a stack shared by the nested
 * calls (each call uses the slots above its caller's): reading a member by
 * key from the object `for...in` iterates is fast, from the other object it is
 * a generic lookup, so `a`'s members are read once in order and matched with
 * `b`'s by position (a copy keeps its original's key order), falling back to
 * a lookup only where the orders differ.
 */
const stackKeys: string[] = [];
const stackValues: unknown[] = [];

function walkObject(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
  path: string,
  ops: PatchOperation[],
  base: number,
): void {
  let top = base;
  for (const key in a) {
    const v = a[key];
    if (v === undefined) continue;
    stackKeys[top] = key;
    stackValues[top] = v;
    top++;
  }
  const mark = ops.length;
  let kept = 0;
  let next = base;
  for (const key in b) {
    const y = b[key];
    if (y === undefined) continue;
    let x: unknown;
    if (next < top && stackKeys[next] === key) x = stackValues[next++];
    else x = member(a, key);
    if (x !== undefined) kept++;
    // Shared (copy-on-write) subtrees are skipped before any path is built.
    if (x === y) continue;
    const p = `${path}/${escapePointer(key)}`;
    if (x === undefined) ops.push({ op: 'add', path: p, value: y });
    else walk(x, y, p, ops, top);
  }
  // Nothing of the documents stays referenced once the call returns.
  for (let i = base; i < top; i++) stackValues[i] = undefined;
  if (kept === top - base) return;
  // Some members of a are gone: their removals go first.
  const removals: PatchOperation[] = [];
  for (const key in a) {
    if (a[key] !== undefined && member(b, key) === undefined)
      removals.push({ op: 'remove', path: `${path}/${escapePointer(key)}` });
  }
  ops.splice(mark, 0, ...removals);
}

/** Above this length, name lookups use a Map; below it, a linear scan is cheaper. */
const SMALL_LIST = 16;

/** Names of a list of `{name: string, ...}` objects, or undefined when not all are named or names repeat. */
function uniqueNames(list: unknown[]): string[] | undefined {
  const names: string[] = [];
  const seen = list.length > SMALL_LIST ? new Set<string>() : undefined;
  for (let i = 0; i < list.length; i++) {
    const x = list[i];
    const name = isPlainObject(x) ? x.name : undefined;
    if (typeof name !== 'string') return undefined;
    if (seen) {
      if (seen.has(name)) return undefined;
      seen.add(name);
    } else if (names.includes(name)) return undefined;
    names.push(name);
  }
  return names;
}

/**
 * Lists of named objects (containers, volumes, env, volumeMounts) are
 * matched by name, as Kubernetes merges them: adding the sidecar in front of
 * a changed container is one `add` plus the container's own edits, not a
 * rewrite of both. Returns false (nothing emitted) when the lists are not
 * uniquely named or the kept elements change order.
 */
function walkNamedArray(
  a: unknown[],
  b: unknown[],
  path: string,
  ops: PatchOperation[],
  base: number,
): boolean {
  const an = uniqueNames(a);
  if (!an) return false;
  const bn = uniqueNames(b);
  if (!bn) return false;
  const index = an.length > SMALL_LIST ? new Map(an.map((n, i) => [n, i] as const)) : undefined;
  // For each element of b, its index in a (-1: new). Kept elements must keep their relative order.
  const from: number[] = [];
  let last = -1;
  for (let j = 0; j < bn.length; j++) {
    const name = bn[j] as string;
    const i = index ? (index.get(name) ?? -1) : an.indexOf(name);
    if (i !== -1) {
      if (i < last) return false;
      last = i;
    }
    from.push(i);
  }
  // Elements of a that b does not keep go, from the highest index down (kept indices ascend in `from`).
  for (let i = an.length - 1, j = bn.length - 1; i >= 0; i--) {
    while (j >= 0 && ((from[j] as number) > i || from[j] === -1)) j--;
    if (j >= 0 && from[j] === i) continue;
    ops.push({ op: 'remove', path: `${path}/${i}` });
  }
  // The working list now holds the kept elements in b's relative order; insert the rest where they go.
  for (let j = 0; j < bn.length; j++) {
    const i = from[j] as number;
    if (i === -1) ops.push({ op: 'add', path: `${path}/${j}`, value: b[j] });
    else if (a[i] !== b[j]) walk(a[i], b[j], `${path}/${j}`, ops, base);
  }
  return true;
}

function walkArray(a: unknown[], b: unknown[], path: string, ops: PatchOperation[], base: number): void {
  if (a.length > 0 && b.length > 0 && walkNamedArray(a, b, path, ops, base)) return;
  let start = 0;
  while (start < a.length && start < b.length && jsonEqual(a[start], b[start])) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && jsonEqual(a[endA - 1], b[endB - 1])) {
    endA--;
    endB--;
  }
  const changedA = endA - start;
  const changedB = endB - start;
  const common = Math.min(changedA, changedB);
  // Elements present on both sides are patched in place.
  for (let i = 0; i < common; i++) walk(a[start + i], b[start + i], `${path}/${start + i}`, ops, base);
  // Extra old elements go, from the highest index down so indices stay valid.
  for (let i = endA - 1; i >= start + common; i--) ops.push({ op: 'remove', path: `${path}/${i}` });
  // Extra new elements are inserted where they belong (before the common suffix).
  for (let i = start + common; i < endB; i++) ops.push({ op: 'add', path: `${path}/${i}`, value: b[i] });
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`invalid JSON pointer "${path}"`);
  return path.slice(1).split('/').map(unescapePointer);
}

function arrayIndex(token: string, length: number, forAdd: boolean): number {
  if (forAdd && token === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`"${token}" is not an array index`);
  const i = Number(token);
  if (i > length || (!forAdd && i === length)) throw new Error(`index ${i} out of bounds (length ${length})`);
  return i;
}

/** Applies `ops` to a deep copy of `doc`; throws on a path that does not exist. */
export function applyPatch<T>(doc: T, ops: readonly PatchOperation[]): T {
  let root: unknown = cloneJson(doc);
  for (const op of ops) {
    const tokens = parsePointer(op.path);
    if (tokens.length === 0) {
      if (op.op === 'remove') throw new Error('cannot remove the document root');
      if (op.op === 'test') {
        if (!jsonEqual(root, op.value)) throw new Error('test failed at the root');
        continue;
      }
      root = cloneJson(op.value);
      continue;
    }
    let parent: unknown = root;
    for (const t of tokens.slice(0, -1)) {
      if (Array.isArray(parent)) parent = parent[arrayIndex(t, parent.length, false)];
      else if (isPlainObject(parent) && Object.hasOwn(parent, t)) parent = parent[t];
      else throw new Error(`path ${op.path} does not exist`);
    }
    const last = tokens[tokens.length - 1] as string;
    if (Array.isArray(parent)) {
      const i = arrayIndex(last, parent.length, op.op === 'add');
      if (op.op === 'add') parent.splice(i, 0, cloneJson(op.value));
      else if (op.op === 'remove') parent.splice(i, 1);
      else if (op.op === 'replace') parent[i] = cloneJson(op.value);
      else if (!jsonEqual(parent[i], op.value)) throw new Error(`test failed at ${op.path}`);
    } else if (isPlainObject(parent)) {
      if (op.op !== 'add' && !Object.hasOwn(parent, last)) throw new Error(`path ${op.path} does not exist`);
      if (op.op === 'add' || op.op === 'replace') setMember(parent, last, cloneJson(op.value));
      else if (op.op === 'remove') delete parent[last];
      else if (!jsonEqual(member(parent, last), op.value)) throw new Error(`test failed at ${op.path}`);
    } else {
      throw new Error(`path ${op.path} does not exist`);
    }
  }
  return root as T;
}

/** The patch as JSON text (what the webhook returns, base64-encoded). */
export function stringifyPatch(ops: readonly PatchOperation[]): string {
  let out = '[';
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as PatchOperation;
    if (i > 0) out += ',';
    out += `{"op":"${op.op}","path":${JSON.stringify(op.path)}`;
    out += 'value' in op ? `,"value":${stringifyJson(op.value)}}` : '}';
  }
  return `${out}]`;
}
