/**
 * Deep equality and cloning for plain JSON values (what JSON.parse returns):
 * much cheaper than util.isDeepStrictEqual and structuredClone, which handle
 * prototypes, cycles and exotic types the admission path never sees. This is
 * the hot path of every admission (see bench/src/injector-admission.ts).
 */
/**
 * A member of a parsed JSON object, or undefined when it has none. Only the
 * key `__proto__` needs care: JSON.parse makes it an own member, but reading
 * it from an object without one gives the prototype, and assigning it sets
 * the prototype instead of a member.
 */
export function member(o: Record<string, unknown>, key: string): unknown {
  return key === '__proto__' && !Object.hasOwn(o, key) ? undefined : o[key];
}

/** Sets an own member, `__proto__` included (see `member`). */
export function setMember(o: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  else o[key] = value;
}

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let count = 0;
  for (const k in ao) {
    if (ao[k] === undefined) continue;
    count++;
    if (!jsonEqual(ao[k], member(bo, k))) return false;
  }
  for (const k in bo) if (bo[k] !== undefined) count--;
  return count === 0;
}

export function cloneJson<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = cloneJson(v[i]);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const k in v as Record<string, unknown>) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) setMember(out, k, cloneJson(x));
  }
  return out as T;
}

const serialized = new WeakMap<object, string>();

/** Freezes a JSON value deeply and remembers its serialisation for `stringifyJson`. */
export function freezeJson<T>(v: T): T {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return v;
  for (const x of Object.values(v)) freezeJson(x);
  Object.freeze(v);
  serialized.set(v, JSON.stringify(v));
  return v;
}

/** JSON.stringify, reusing the remembered text of frozen values (at the top and one level down). */
export function stringifyJson(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  const known = serialized.get(v);
  if (known !== undefined) return known;
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : stringifyJson(x))).join(',')}]`;
  let out = '';
  for (const k in v as Record<string, unknown>) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined) continue;
    const text =
      typeof x === 'object' && x !== null ? (serialized.get(x) ?? JSON.stringify(x)) : JSON.stringify(x);
    out += `${out ? ',' : ''}${JSON.stringify(k)}:${text}`;
  }
  return `{${out}}`;
}
