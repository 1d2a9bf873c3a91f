/**
 * Masking of Kubernetes responses: the values under the masked fields (by
 * default a Secret's `data` and `stringData`) are replaced, keys kept, in
 * single objects, lists, Tables (kubectl's default format, whose rows may
 * carry objects) and watch events. The `kubectl.kubernetes.io/last-applied-
 * configuration` annotation holds a copy of the object and is masked the same
 * way. Masking works on parsed JSON in place and reports how many values it
 * replaced; it never logs or keeps the originals.
 */

/** What a masked value becomes in plain string fields. */
export const MASKED_TEXT = '**masked**';
/** …and in base64 fields (Secret `data`, ConfigMap `binaryData`): still valid base64, so typed clients can decode it. */
export const MASKED_BASE64 = Buffer.from(MASKED_TEXT).toString('base64');

/** The annotation that holds a copy of the object as JSON: masked like the object. */
export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const BASE64_FIELDS = new Set(['binaryData']);

export interface MaskOptions {
  /** Top-level object fields whose map values are masked, e.g. `data`, `stringData`. */
  readonly fields: readonly string[];
  /** The response is about Secrets: their `data` values are base64. */
  readonly secrets: boolean;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function maskMap(map: Obj, base64: boolean): number {
  let n = 0;
  for (const k of Object.keys(map)) {
    if (map[k] === null || map[k] === undefined) continue;
    map[k] = base64 ? MASKED_BASE64 : MASKED_TEXT;
    n++;
  }
  return n;
}

/**
 * The last-applied annotation's value (a copy of the object as JSON) masked:
 * the copy masked as a resource and encoded again, or, when it is not an
 * object, replaced whole.
 */
export function maskLastApplied(text: string, opts: MaskOptions): { text: string; masked: number } {
  let copy: unknown;
  try {
    copy = JSON.parse(text);
  } catch {
    return { text: MASKED_TEXT, masked: 1 };
  }
  if (!isObj(copy)) return { text: MASKED_TEXT, masked: 1 };
  const masked = maskResource(copy, opts);
  return { text: JSON.stringify(copy), masked };
}

/** Whether the values of masked `field` in an object of `kind` are base64 (and so get MASKED_BASE64). */
export function isBase64Field(field: string, kind: unknown, opts: MaskOptions): boolean {
  return BASE64_FIELDS.has(field) || (field === 'data' && (opts.secrets || kind === 'Secret'));
}

function maskResource(obj: Obj, opts: MaskOptions): number {
  let n = 0;
  for (const field of opts.fields) {
    const v = obj[field];
    const base64 = isBase64Field(field, obj.kind, opts);
    if (isObj(v)) n += maskMap(v, base64);
    else if (typeof v === 'string' && v.length > 0) {
      obj[field] = MASKED_TEXT;
      n++;
    }
  }
  const meta = obj.metadata;
  if (isObj(meta) && isObj(meta.annotations) && typeof meta.annotations[LAST_APPLIED] === 'string') {
    const r = maskLastApplied(meta.annotations[LAST_APPLIED] as string, opts);
    meta.annotations[LAST_APPLIED] = r.text;
    n += r.masked;
  }
  return n;
}

/**
 * Masks a decoded response body in place: a single object, a `*List`, a
 * `Table` (objects in `rows[].object`) or a watch event. Returns the number
 * of values replaced. `Status` objects are left alone.
 */
export function maskBody(body: unknown, opts: MaskOptions): number {
  if (!isObj(body)) return 0;
  const kind = typeof body.kind === 'string' ? body.kind : '';
  if (kind === 'Status') return 0;
  // Watch event: {type, object}.
  if (typeof body.type === 'string' && isObj(body.object) && body.kind === undefined) {
    return maskBody(body.object, opts);
  }
  if (kind === 'Table' && Array.isArray(body.rows)) {
    let n = 0;
    for (const row of body.rows) if (isObj(row) && isObj(row.object)) n += maskBody(row.object, opts);
    return n;
  }
  if (Array.isArray(body.items) && (kind.endsWith('List') || kind === '')) {
    let n = 0;
    for (const item of body.items) if (isObj(item)) n += maskBody(item, opts);
    return n;
  }
  return maskResource(body, opts);
}
